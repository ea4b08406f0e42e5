/**
 * The native kernels, bit for bit: for every op and dtype combination the SIMD path, the scalar path
 * and the TypeScript oracles (test/reference/numerics.ts) must produce the same bytes, on fresh random
 * inputs salted with ±0, subnormals, ±Inf, NaN payloads, max finite and values next to rounding ties.
 * Replay a failure with WEIGHTMIX_SEED=<seed>; WEIGHTMIX_ADDON=<file.node> tests another build.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rng } from './helpers/models';
import * as ref from './reference/numerics';
import { Dtype, DTYPES, DTYPE_BYTES, Tensor } from './reference/numerics';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log('seed', seed);

interface KernelArgs {
  srcs: Uint8Array[];
  types: string[];
  out?: Uint8Array;
  outType?: string;
  w?: number[];
  n: number;
  simd: boolean;
}
interface KernelAddon {
  runKernelForTest(op: string, args: KernelArgs): unknown;
  info?(): { simd: string };
}

function loadAddon(): KernelAddon {
  const override = process.env.WEIGHTMIX_ADDON;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a .node addon at a path known only at run time
  if (override) return require(path.resolve(override)) as KernelAddon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('../lib/engine/native') as { loadNative(): KernelAddon }).loadNative();
  } catch (first) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a .node addon, not a module import can name
      return require('../build/Release/weightmix.node') as KernelAddon;
    } catch {
      throw new Error(`the native addon is not built, so the kernels cannot be tested: ${(first as Error).message}`);
    }
  }
}

const addon = loadAddon();

const LENGTHS = [0, 1, 7, 8, 9, 33, 1000];
const LAMBDAS = [0, 0.2, 0.45, 0.5, 0.8, 1, 1.3, -0.2];

// ---- inputs ------------------------------------------------------------------------------------------

const SPECIAL: Record<Dtype, number[]> = {
  F32: [
    0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007fffff, 0x00800000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xffc12345,
    0x7fffffff, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0x477fefff, 0x477ff000, 0xc77ff000, 0x33000000, 0x33000001, 0x387fffff, 0x38800000, 0x3f808000, 0x3f818000,
    0x7f7f8000, 0x7f7f7fff, 0x00008000, 0x00018000,
  ],
  F16: [0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x7c01, 0x7d55, 0xff00, 0x3c00],
  BF16: [0x0000, 0x8000, 0x0001, 0x8001, 0x007f, 0x0080, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x7fc0, 0xffc0, 0x7f81, 0x7fa5, 0xffff, 0x3f80],
};

const next = rng(seed);
const randInt = (k: number) => Math.floor(next() * k);
const randBits32 = () => randInt(0x10000) * 0x10000 + randInt(0x10000);

/** One element of `t`: ordinary weights mostly, often special, tie-adjacent or any pattern. */
function randomElement(t: Dtype): number {
  const k = randInt(100);
  if (k < 15) return SPECIAL[t][randInt(SPECIAL[t].length)];
  const sign = randInt(2);
  if (t === 'F32') {
    if (k < 27) return randInt(0x10000) * 0x10000 + [0x8000, 0x7fff, 0x8001][randInt(3)]; // bf16 ties
    if (k < 37) return randInt(0x80000) * 0x2000 + [0x1000, 0x0fff, 0x1001][randInt(3)]; // f16 ties
    if (k < 45) return randBits32();
    if (k < 50) return sign * 0x80000000 + (0x71 + randInt(14)) * 0x800000 + randInt(0x800000); // f16 subnormal range
    return sign * 0x80000000 + (115 + randInt(13)) * 0x800000 + randInt(0x800000); // |x| in 2^-12 .. 2^1
  }
  if (k < 40) return randInt(0x10000);
  if (t === 'F16') return sign * 0x8000 + (3 + randInt(14)) * 0x400 + randInt(0x400);
  return sign * 0x8000 + (115 + randInt(13)) * 0x80 + randInt(0x80);
}

/** A pair of tensors, b often a near neighbour of a (so that b − a and the roundings are delicate). */
function randomPair(ta: Dtype, tb: Dtype, n: number): [Tensor, Tensor] {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = randomElement(ta);
    a.push(x);
    if (ta === tb && randInt(3) === 0) {
      const width = ta === 'F32' ? 0x100000000 : 0x10000;
      b.push((x + randInt(9) - 4 + width) % width);
    } else {
      b.push(randomElement(tb));
    }
  }
  return [
    { dtype: ta, bits: a },
    { dtype: tb, bits: b },
  ];
}

function randomTensor(t: Dtype, n: number): Tensor {
  return { dtype: t, bits: Array.from({ length: n }, () => randomElement(t)) };
}

// ---- buffers -------------------------------------------------------------------------------------------

/** Packs bits little-endian behind a one-byte offset, so that no path may rely on alignment. */
function toBytes(t: Tensor): Uint8Array {
  const size = DTYPE_BYTES[t.dtype];
  const backing = Buffer.alloc(t.bits.length * size + 1);
  t.bits.forEach((x, i) => {
    if (size === 4) backing.writeUInt32LE(x >>> 0, 1 + 4 * i);
    else backing.writeUInt16LE(x, 1 + 2 * i);
  });
  return backing.subarray(1);
}

function fromBytes(buf: Uint8Array, t: Dtype, n: number): number[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return Array.from({ length: n }, (_, i) => (DTYPE_BYTES[t] === 4 ? b.readUInt32LE(4 * i) : b.readUInt16LE(2 * i)));
}

const hex = (x: number, t: Dtype) => '0x' + (x >>> 0).toString(16).padStart(DTYPE_BYTES[t] * 2, '0');

/** Runs op on both paths; returns null when both equal `expected`, else the first difference. */
function mismatch(op: string, srcs: Tensor[], to: Dtype, w: number[] | undefined, expected: number[]): string | null {
  const n = expected.length;
  for (const simd of [true, false]) {
    const out = Buffer.alloc(n * DTYPE_BYTES[to] + 1).subarray(1);
    out.fill(0xa5);
    addon.runKernelForTest(op, { srcs: srcs.map(toBytes), types: srcs.map((s) => s.dtype), out, outType: to, w, n, simd });
    const got = fromBytes(out, to, n);
    const i = got.findIndex((x, j) => x !== expected[j]);
    if (i >= 0) {
      const inputs = srcs.map((s) => hex(s.bits[i], s.dtype)).join(', ');
      return `${op} ${srcs.map((s) => s.dtype).join(',')}->${to} ${simd ? 'simd' : 'scalar'} n=${n} w=${w} at ${i}: inputs ${inputs}, got ${hex(got[i], to)}, oracle ${hex(expected[i], to)}`;
    }
  }
  return null;
}

const triples = DTYPES.flatMap((a) => DTYPES.flatMap((b) => DTYPES.map((o) => [a, b, o] as [Dtype, Dtype, Dtype])));
const pairs = DTYPES.flatMap((a) => DTYPES.map((b) => [a, b] as [Dtype, Dtype]));

// ---- the oracles themselves ----------------------------------------------------------------------------------

/** fma on f32 values with BigInt rationals: m·2^e for each operand, the exact sum, one rounding. */
function exactFmaF32(a: number, b: number, c: number): number {
  const parts = (x: number): [bigint, number] => {
    const bits = ref.f32ToBits(x);
    const e = (bits >>> 23) & 0xff;
    const m = BigInt((bits & 0x7fffff) + (e ? 0x800000 : 0));
    return [bits >>> 31 ? -m : m, (e || 1) - 150];
  };
  const [ma, ea] = parts(a);
  const [mb, eb] = parts(b);
  const [mc, ec] = parts(c);
  const E = Math.min(ea + eb, ec);
  const S = ((ma * mb) << BigInt(ea + eb - E)) + (mc << BigInt(ec - E));
  if (S === 0n) return Object.is(a * b, -0) && Object.is(c, -0) ? -0 : 0;
  const mag = S < 0n ? -S : S;
  const lead = E + mag.toString(2).length - 1;
  const q = Math.max(lead - 23, -149);
  let r = mag;
  if (q > E) {
    const shift = BigInt(q - E);
    r = mag >> shift;
    const rem = mag - (r << shift);
    const half = 1n << (shift - 1n);
    if (rem > half || (rem === half && (r & 1n) === 1n)) r += 1n;
  } else {
    r = mag << BigInt(E - q);
  }
  const v = Number(r) * 2 ** q;
  const out = v > 3.4028234663852886e38 ? Infinity : v;
  return S < 0n ? -out : out;
}

describe('the TypeScript oracles', () => {
  test('fmaF32 agrees with exact rational arithmetic, ties and cancellations included', () => {
    const f = Math.fround;
    const value = () => {
      const bits = randomElement('F32');
      const x = ref.f32FromBits(bits);
      return Number.isFinite(x) ? x : f(next() - 0.5);
    };
    for (let i = 0; i < 20000; i++) {
      const a = value();
      const b = value();
      const p = a * b;
      const choices = [value(), f(-p), f(-p * (1 + 2 ** -(1 + randInt(30)))), f(p * 2 ** -(24 + randInt(4))), f(-f(p) / 2)];
      for (const c of choices.filter(Number.isFinite)) {
        const got = ref.fmaF32(a, b, c);
        const want = exactFmaF32(a, b, c);
        if (!Object.is(got, want)) throw new Error(`fmaF32(${a}, ${b}, ${c}) = ${got}, exact ${want}`);
      }
    }
  });

  test('f16 and bf16 decode/encode round-trip every non-NaN pattern', () => {
    const wrong: string[] = [];
    for (const t of ['F16', 'BF16'] as Dtype[]) {
      for (let h = 0; h < 0x10000; h++) {
        if (!ref.isNaNBits(t, h) && ref.encode(t, ref.decode(t, h)) !== h) wrong.push(`${t} ${hex(h, t)}`);
      }
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });

  test('rounding boundaries land where IEEE puts them', () => {
    expect(ref.encode('F16', 65504)).toBe(0x7bff);
    expect(ref.encode('F16', 65519.99)).toBe(0x7bff);
    expect(ref.encode('F16', 65520)).toBe(0x7c00); // the tie goes to even, which is infinity
    expect(ref.encode('F16', 2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal
    expect(ref.encode('F16', -(2 ** -25) * 1.5)).toBe(0x8001);
    expect(ref.encode('F16', 2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up into the normals
    expect(ref.encode('BF16', ref.f32FromBits(0x3f808000))).toBe(0x3f80); // tie, even stays
    expect(ref.encode('BF16', ref.f32FromBits(0x3f818000))).toBe(0x3f82); // tie, odd rounds up
    expect(ref.encode('BF16', ref.f32FromBits(0x7f7f8000))).toBe(0x7f80); // overflows to infinity
    expect(ref.encode('BF16', -0)).toBe(0x8000);
    expect(ref.convertBits('F32', 'BF16', 0xffc12345)).toBe(0x7fc0);
    expect(ref.convertBits('F32', 'F16', 0xffc12345)).toBe(0xfe00);
    expect(ref.convertBits('F16', 'F32', 0x7c01)).toBe(0x7fc02000);
    expect(ref.convertBits('BF16', 'F32', 0x7f81)).toBe(0x7f810000);
  });
});

// ---- the kernels ---------------------------------------------------------------------------------------------

describe('native kernels match the oracles bit for bit on both paths', () => {
  test('the SIMD path is the one this CPU supports', () => {
    const info = addon.info?.();
    const cpuinfo = process.platform === 'linux' && fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
    const flags = new Set((/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/));
    console.log('SIMD path', info?.simd);
    if (process.arch === 'x64' && ['avx2', 'fma', 'f16c'].every((f) => flags.has(f)) && info) {
      const avx512 = ['avx512f', 'avx512dq', 'avx512bw', 'avx512vl'].every((f) => flags.has(f));
      expect(info.simd).toBe(avx512 ? 'avx2+fma+f16c+avx512' : 'avx2+fma+f16c');
    }
  });

  test('WEIGHTMIX_NO_AVX512 and WEIGHTMIX_NO_SIMD narrow the path for a process', () => {
    const file = path.resolve(process.env.WEIGHTMIX_ADDON ?? path.join(__dirname, '../build/Release/weightmix.node'));
    if (!fs.existsSync(file)) {
      console.log(`skipped: no addon at ${file} to load in a child process`);
      return;
    }
    const simdWith = (env: Record<string, string>) =>
      execFileSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(file)}).info().simd)`], {
        env: { ...process.env, ...env },
        encoding: 'utf8',
      });
    const plain = simdWith({});
    expect(plain).toBe(addon.info?.().simd);
    expect(simdWith({ WEIGHTMIX_NO_AVX512: '1' })).toBe(plain.replace('+avx512', ''));
    expect(simdWith({ WEIGHTMIX_NO_AVX512: '0' })).toBe(plain);
    expect(simdWith({ WEIGHTMIX_NO_SIMD: '1' })).toBe('scalar');
  });

  test.each(triples)('lerpExact %s,%s -> %s', (ta, tb, to) => {
    for (const n of LENGTHS) {
      const [a, b] = randomPair(ta, tb, n);
      for (const w of LAMBDAS) {
        expect(mismatch('lerpExact', [a, b], to, [w], ref.lerpExact(a, b, to, w))).toBeNull();
      }
    }
  });

  test.each(pairs)('lerpMi %s -> %s', (t, to) => {
    for (const n of LENGTHS) {
      const [a, b] = randomPair(t, t, n);
      for (const w of LAMBDAS) {
        expect(mismatch('lerpMi', [a, b], to, [w], ref.lerpMi(a, b, to, w))).toBeNull();
      }
    }
  });

  test.each(pairs)('convert %s -> %s', (ts, to) => {
    for (const n of LENGTHS) {
      const src = randomTensor(ts, n);
      expect(mismatch('convert', [src], to, undefined, ref.convert(src, to))).toBeNull();
    }
  });

  const linearCases: [Dtype[], Dtype][] = [
    ...DTYPES.flatMap((s) => DTYPES.map((o) => [[s], o] as [Dtype[], Dtype])),
    ...triples.map(([s1, s2, o]) => [[s1, s2], o] as [Dtype[], Dtype]),
    ...DTYPES.map((o) => [['BF16', 'F32', 'F16'], o] as [Dtype[], Dtype]),
    ...DTYPES.map((o) => [['F16', 'BF16', 'BF16', 'F32'], o] as [Dtype[], Dtype]),
  ];
  test.each(linearCases)('linear %j -> %s', (types, to) => {
    for (const n of LENGTHS) {
      const srcs = types.map((t) => randomTensor(t, n));
      if (types.length >= 2 && types[0] === types[1]) srcs[1] = randomPair(types[0], types[1], n)[1];
      for (const l of LAMBDAS) {
        const w = [l, Math.fround(1 - l), 0.25, -0.125].slice(0, types.length);
        expect(mismatch('linear', srcs, to, w, ref.linear(srcs, w, to, n))).toBeNull();
      }
    }
  });

  test.each(pairs)('moments %s,%s', (ta, tb) => {
    for (const n of LENGTHS) {
      const [a, b] = randomPair(ta, tb, n);
      const want = ref.moments(a, b);
      for (const simd of [true, false]) {
        const got = addon.runKernelForTest('moments', { srcs: [toBytes(a), toBytes(b)], types: [ta, tb], n, simd }) as ref.Moments;
        for (const key of Object.keys(want) as (keyof ref.Moments)[]) {
          if (!Object.is(got[key], want[key])) {
            throw new Error(`moments ${ta},${tb} n=${n} ${simd ? 'simd' : 'scalar'}: ${key} = ${got[key]}, oracle ${want[key]}`);
          }
        }
      }
    }
  });

  test('conversions of every f16 and bf16 pattern, and of 2^18 random f32 patterns', () => {
    const all16 = Array.from({ length: 0x10000 }, (_, i) => i);
    for (const t of ['F16', 'BF16'] as Dtype[]) {
      const src = { dtype: t, bits: all16 };
      for (const to of DTYPES) expect(mismatch('convert', [src], to, undefined, ref.convert(src, to))).toBeNull();
    }
    const f32 = { dtype: 'F32' as Dtype, bits: [...SPECIAL.F32, ...Array.from({ length: 1 << 18 }, randBits32)] };
    for (const to of ['F16', 'BF16'] as Dtype[]) {
      expect(mismatch('convert', [f32], to, undefined, ref.convert(f32, to))).toBeNull();
    }
  });
});

describe('runKernelForTest rejects bad arguments with a TypeError', () => {
  const a = Buffer.alloc(16);
  const b = Buffer.alloc(16);
  const out = Buffer.alloc(16);
  const good = { srcs: [a, b], types: ['BF16', 'BF16'], out, outType: 'BF16', w: [0.5], n: 8, simd: true };
  const cases: [string, string, Partial<KernelArgs> & Record<string, unknown>][] = [
    ['an unknown op', 'lerpFast', {}],
    ['a short source', 'lerpExact', { n: 9 }],
    ['a short output', 'lerpExact', { outType: 'F32' }],
    ['an unknown dtype', 'lerpExact', { types: ['BF16', 'F8'] }],
    ['a fractional n', 'lerpExact', { n: 2.5 }],
    ['a negative n', 'lerpExact', { n: -1 }],
    ['a missing simd flag', 'lerpExact', { simd: undefined }],
    ['a missing weight', 'lerpExact', { w: [] }],
    ['mixed dtypes for lerpMi', 'lerpMi', { types: ['BF16', 'F16'] }],
    ['too many sources for convert', 'convert', {}],
    ['a weight count unlike the source count for linear', 'linear', { w: [0.5] }],
    ['a source that is no buffer', 'lerpExact', { srcs: [a, 'b' as unknown as Uint8Array] }],
    ['an output overlapping a source', 'lerpExact', { out: a.subarray(2), n: 7 }],
  ];
  test.each(cases)('%s', (_name, op, change) => {
    // The addon's TypeError comes from Node's realm, not jest's sandbox: compare by name.
    let thrown: unknown;
    try {
      addon.runKernelForTest(op, { ...good, ...change } as KernelArgs);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toMatchObject({ name: 'TypeError', message: expect.stringMatching(/^runKernelForTest: /) });
  });

  test('a well-formed call runs in place', () => {
    const x = Buffer.from([0x80, 0x3f, 0x00, 0x40]); // bf16 1, 2
    const y = Buffer.from([0x00, 0x40, 0x80, 0x40]); // bf16 2, 4
    addon.runKernelForTest('lerpExact', { srcs: [x, y], types: ['BF16', 'BF16'], out: x, outType: 'BF16', w: [0.5], n: 2, simd: true });
    expect([...x]).toEqual([0xc0, 0x3f, 0x40, 0x40]); // 1.5, 3
  });
});
