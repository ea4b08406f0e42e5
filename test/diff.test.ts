import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { diff, type DiffReport, type DiffStats, type TensorDiff } from '../lib/analysis/diff';
import { formatDiffReport, layerProfileRows } from '../lib/analysis/diff-output';
import { main } from '../lib/cli';
import { register } from '../lib/commands/diff';
import { WeightmixError } from '../lib/errors';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { encodeFloat } from '../lib/format/float-bits';
import { nextUint32, streamState } from '../lib/fixtures/random';
import { writeSafetensorsFile, type SafetensorsDtype } from '../lib/format/safetensors';
import { classifyTensor } from '../lib/model/tensor-names';
import { decodeBits, referenceFigures, referenceMoments, sumReferenceMoments, type ReferenceDtype, type ReferenceMoments } from './reference/moments';

// Random data: a fresh seed per run unless WEIGHTMIX_SEED is set; it is printed and in the test names.
const SEED = process.env.WEIGHTMIX_SEED !== undefined ? Number(process.env.WEIGHTMIX_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;

/**
 * Tolerance: the engine and the reference both sum in f64, in different orders (engine: 8 lanes per
 * 2M-element block, then blocks, then tensors; reference: element order, compensated). A sum may
 * differ by 1e-12 of its scale: the sum itself for Σa², Σb², Σ(b−a)², and sqrt(Σa²·Σb²) ≥ Σ|ab| for
 * Σab. ‖B−A‖/‖A‖ may differ by 1e-12 relative, the cosine by 2e-12 absolute; max |b−a| and the
 * non-finite count are exact.
 */
const REL = 1e-12;

const FLOAT_DTYPES: ReferenceDtype[] = ['BF16', 'F16', 'F32'];
const DTYPE_PAIRS: [ReferenceDtype, ReferenceDtype][] = FLOAT_DTYPES.flatMap((x) => FLOAT_DTYPES.map((y): [ReferenceDtype, ReferenceDtype] => [x, y]));
const BYTES: Record<ReferenceDtype, number> = { BF16: 2, F16: 2, F32: 4 };

// Bit patterns of special values per dtype.
const NON_FINITE: Record<ReferenceDtype, number[]> = {
  BF16: [0x7fc0, 0xffc1, 0x7f81, 0x7f80, 0xff80], // qNaN, −NaN with payload, sNaN, +Inf, −Inf
  F16: [0x7e00, 0xfc01, 0x7d00, 0x7c00, 0xfc00],
  F32: [0x7fc00000, 0xff800001, 0x7fa00000, 0x7f800000, 0xff800000],
};
const ZEROS_AND_SUBNORMALS: Record<ReferenceDtype, number[]> = {
  BF16: [0x0000, 0x8000, 0x0001, 0x807f, 0x0040, 0x0080], // ±0, subnormals, smallest normal
  F16: [0x0000, 0x8000, 0x0001, 0x83ff, 0x0200, 0x0400],
  F32: [0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00400000, 0x00800000],
};
const LARGEST: Record<ReferenceDtype, number[]> = {
  BF16: [0x7f7f, 0xff7f],
  F16: [0x7bff, 0xfbff],
  F32: [0x7f7fffff, 0xff7fffff],
};

class Rng {
  private state: Uint32Array;
  constructor(name: string) {
    this.state = streamState(SEED, name);
  }
  uniform(): number {
    return (nextUint32(this.state) + 0.5) / 2 ** 32;
  }
  /** Roughly normal (Irwin–Hall of 4), mean 0, sd 1. */
  normal(): number {
    return (this.uniform() + this.uniform() + this.uniform() + this.uniform() - 2) * Math.sqrt(3);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.uniform() * xs.length)];
  }
}

/** Values to `dtype` bits, rounded to nearest (the reference decodes whatever bits result). */
function encode(values: readonly number[] | Float64Array, dtype: ReferenceDtype): Buffer {
  const buf = Buffer.alloc(values.length * BYTES[dtype]);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'F32') {
      buf.writeFloatLE(values[i], 4 * i);
    } else if (dtype === 'BF16' && Number.isFinite(values[i])) {
      // f32 bits rounded to their top half, nearest-even (fast path for the large tensor)
      f32[0] = values[i];
      const bits = u32[0];
      buf.writeUInt16LE(((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff, 2 * i);
    } else {
      buf.writeUInt16LE(encodeFloat(values[i], dtype), 2 * i);
    }
  }
  return buf;
}

function fromBits(bits: readonly number[], dtype: ReferenceDtype): Buffer {
  const buf = Buffer.alloc(bits.length * BYTES[dtype]);
  bits.forEach((b, i) => (dtype === 'F32' ? buf.writeUInt32LE(b, 4 * i) : buf.writeUInt16LE(b, 2 * i)));
  return buf;
}

function setBits(buf: Buffer, i: number, dtype: ReferenceDtype, bits: number): void {
  if (dtype === 'F32') buf.writeUInt32LE(bits, 4 * i);
  else buf.writeUInt16LE(bits, 2 * i);
}

interface PairTensor {
  name: string;
  shape: number[];
  dtypeA: SafetensorsDtype;
  dtypeB: SafetensorsDtype;
  a: Buffer;
  b: Buffer;
}

const count = (shape: number[]) => shape.reduce((n, d) => n * d, 1);

/** A's values ~ N(0, scale²) (N(1, scale²) for norms), B = A·(1 + 0.03·z) + 0.005·scale·z'; 1% specials on either side. */
function randomPair(
  name: string,
  shape: number[],
  dtypeA: ReferenceDtype,
  dtypeB: ReferenceDtype,
  options: { scale?: number; mean?: number; specials?: boolean } = {},
): PairTensor {
  const rng = new Rng(name);
  const n = count(shape);
  const scale = options.scale ?? 0.02;
  const va = new Float64Array(n);
  const vb = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    va[i] = (options.mean ?? 0) + scale * rng.normal();
    vb[i] = va[i] * (1 + 0.03 * rng.normal()) + 0.005 * scale * rng.normal();
  }
  const a = encode(va, dtypeA);
  const b = encode(vb, dtypeB);
  if (options.specials ?? true) {
    for (let i = 0; i < n; i++) {
      const r = rng.uniform();
      if (r < 0.004) setBits(a, i, dtypeA, rng.pick(NON_FINITE[dtypeA]));
      else if (r < 0.008) setBits(b, i, dtypeB, rng.pick(NON_FINITE[dtypeB]));
      else if (r < 0.01) {
        setBits(a, i, dtypeA, rng.pick(ZEROS_AND_SUBNORMALS[dtypeA]));
        setBits(b, i, dtypeB, rng.pick(ZEROS_AND_SUBNORMALS[dtypeB]));
      }
    }
  }
  return { name, shape, dtypeA, dtypeB, a, b };
}

async function writeModel(
  dir: string,
  shards: { file: string; tensors: { name: string; dtype: SafetensorsDtype; shape: number[]; data: Buffer }[] }[],
): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  for (const s of shards) await writeSafetensorsFile(path.join(dir, s.file), s.tensors);
  return dir;
}

/** Writes A in two shards and B in one file (layouts may differ; names and shapes must not). */
async function writePair(dir: string, tensors: PairTensor[], extra: { name: string; dtype: SafetensorsDtype; shape: number[]; data: Buffer }[] = []) {
  const half = Math.ceil(tensors.length / 2);
  const aTensors = tensors.map((t) => ({ name: t.name, dtype: t.dtypeA, shape: t.shape, data: t.a }));
  const bTensors = tensors.map((t) => ({ name: t.name, dtype: t.dtypeB, shape: t.shape, data: t.b }));
  const a = await writeModel(path.join(dir, 'a'), [
    { file: 'model-00001-of-00002.safetensors', tensors: [...aTensors.slice(0, half), ...extra] },
    { file: 'model-00002-of-00002.safetensors', tensors: aTensors.slice(half) },
  ]);
  const b = await writeModel(path.join(dir, 'b'), [{ file: 'model.safetensors', tensors: [...bTensors].reverse().concat(extra) }]);
  return { a, b };
}

function expectSum(actual: number, expected: number, scale: number, what: string): void {
  const err = Math.abs(actual - expected);
  if (!(err <= REL * scale)) throw new Error(`${what}: ${actual} vs reference ${expected} (error ${err}, allowed ${REL * scale})`);
}

/** Every figure of `actual` against reference moments, at the stated tolerance. */
function expectMatchesReference(actual: DiffStats, ref: ReferenceMoments, what: string): void {
  expect({ what, elements: actual.elements, nonFinite: actual.nonFinite, maxAbsDiff: actual.maxAbsDiff }).toEqual({
    what,
    elements: ref.elements,
    nonFinite: ref.nonFinite,
    maxAbsDiff: ref.maxAbsDiff,
  });
  expectSum(actual.sumSqA, ref.sumSqA, ref.sumSqA, `${what} Σa²`);
  expectSum(actual.sumSqB, ref.sumSqB, ref.sumSqB, `${what} Σb²`);
  expectSum(actual.sumAB, ref.sumAB, Math.sqrt(ref.sumSqA * ref.sumSqB), `${what} Σab`);
  expectSum(actual.sumSqDiff, ref.sumSqDiff, ref.sumSqDiff, `${what} Σ(b−a)²`);
  const fig = referenceFigures(ref);
  if (fig.relDistance === null) expect({ what, relDistance: actual.relDistance }).toEqual({ what, relDistance: null });
  else expectSum(actual.relDistance!, fig.relDistance, fig.relDistance, `${what} ‖B−A‖/‖A‖`);
  if (fig.cosine === null) expect({ what, cosine: actual.cosine }).toEqual({ what, cosine: null });
  else expectSum(actual.cosine!, fig.cosine, 2, `${what} cosine`);
  expect(actual.normA).toBe(Math.sqrt(actual.sumSqA));
  expect(actual.normDiff).toBe(Math.sqrt(actual.sumSqDiff));
}

async function captureStdout(fn: () => Promise<unknown>): Promise<string> {
  let out = '';
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await fn();
  } finally {
    spy.mockRestore();
  }
  return out;
}

/** `weightmix diff ...args` through the subcommand alone; resolves to stdout. */
async function runCommand(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  register(program);
  return captureStdout(() => program.parseAsync(['node', 'weightmix', 'diff', ...args]));
}

/** The whole CLI (error printing, exit status); resolves to { status, stdout, stderr }. */
async function runCli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stderr = '';
  const errSpy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  let status = -1;
  try {
    const stdout = await captureStdout(async () => {
      status = await main(['node', 'weightmix', ...args]);
    });
    return { status, stdout, stderr };
  } finally {
    errSpy.mockRestore();
  }
}

// ---- the zoo: every dtype pair, special values, edge-case tensors ------------------------------

const LAYERS = 3;
const HAND_A = [NaN, 1, Infinity, -Infinity, 0, -0, 3, -2];
const HAND_B = [1, NaN, Infinity, 5, -0, 0, 4, 2];

function zooTensors(): PairTensor[] {
  const tensors: PairTensor[] = [];
  let combo = 0;
  const nextPair = () => DTYPE_PAIRS[combo++ % DTYPE_PAIRS.length];
  const add = (name: string, shape: number[], options?: Parameters<typeof randomPair>[4]) => {
    const [x, y] = nextPair();
    tensors.push(randomPair(name, shape, x, y, options));
  };
  // More than one 2M-element engine block (BF16 against F32: the encoders' fast paths).
  tensors.push(randomPair('model.layers.2.mlp.up_proj.weight', [2049, 1024], 'BF16', 'F32'));
  add('model.embed_tokens.weight', [64, 16]);
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [16], { mean: 1, scale: 0.05 });
    add(`${p}.self_attn.q_proj.weight`, [16, 16]);
    add(`${p}.self_attn.k_proj.weight`, [8, 16]);
    add(`${p}.self_attn.v_proj.weight`, [8, 16]);
    add(`${p}.self_attn.o_proj.weight`, [16, 16]);
    add(`${p}.post_attention_layernorm.weight`, [16], { mean: 1, scale: 0.05 });
    add(`${p}.mlp.gate_proj.weight`, [32, 16]);
    if (l !== 2) add(`${p}.mlp.up_proj.weight`, [32, 16]);
    add(`${p}.mlp.down_proj.weight`, [16, 32]);
  }
  add('model.layers.1.extra.scale', [4], { specials: false }); // a layer tensor of class 'other'
  add('model.norm.weight', [16], { mean: 1, scale: 0.05 });
  add('lm_head.weight', [64, 16]);
  add('vision_tower.proj.weight', [8, 8]); // outside the decoder and unnamed by the rules: 'other'

  // Hand-checked: finite pairs (0,−0), (−0,0), (3,4), (−2,2); Σa² = 13, Σb² = 20, Σab = 8, Σ(b−a)² = 17, max 4, 4 non-finite.
  tensors.push({ name: 'model.layers.0.self_attn.hand.weight', shape: [8], dtypeA: 'F32', dtypeB: 'F32', a: encode(HAND_A, 'F32'), b: encode(HAND_B, 'F32') });
  tensors.push({ name: 'model.layers.0.mlp.hand.weight', shape: [2, 4], dtypeA: 'BF16', dtypeB: 'F16', a: encode(HAND_A, 'BF16'), b: encode(HAND_B, 'F16') });
  // Only zeros and subnormals: sums near 1e-90 that a flush-to-zero would lose.
  for (const [x, y] of DTYPE_PAIRS) {
    const rng = new Rng(`subnormal ${x} ${y}`);
    const bitsA = Array.from({ length: 64 }, () => rng.pick(ZEROS_AND_SUBNORMALS[x].slice(0, 5)));
    const bitsB = Array.from({ length: 64 }, () => rng.pick(ZEROS_AND_SUBNORMALS[y].slice(0, 5)));
    bitsA[0] = ZEROS_AND_SUBNORMALS[x][2]; // at least one non-zero on each side
    bitsB[1] = ZEROS_AND_SUBNORMALS[y][3];
    tensors.push({ name: `model.layers.1.mlp.subnormal_${x}_${y}.weight`, shape: [64], dtypeA: x, dtypeB: y, a: fromBits(bitsA, x), b: fromBits(bitsB, y) });
  }
  // The largest finite values of each dtype, against each other: differences up to 6.8e38, squares 4.6e77, all finite in f64.
  for (const [x, y] of DTYPE_PAIRS) {
    const bitsA = [...LARGEST[x], ...LARGEST[x], ZEROS_AND_SUBNORMALS[x][0]];
    const bitsB = [...LARGEST[y], ...[...LARGEST[y]].reverse(), LARGEST[y][0]];
    tensors.push({ name: `extreme_${x}_${y}.weight`, shape: [5], dtypeA: x, dtypeB: y, a: fromBits(bitsA, x), b: fromBits(bitsB, y) });
  }
  // ‖A‖ = 0 with B ≠ 0; both zero (±0); all pairs non-finite; empty.
  tensors.push({
    name: 'model.layers.2.self_attn.zero_a.weight',
    shape: [4],
    dtypeA: 'F16',
    dtypeB: 'BF16',
    a: fromBits([0, 0x8000, 0, 0], 'F16'),
    b: encode([0, 0.5, -0.25, 0], 'BF16'),
  });
  tensors.push({
    name: 'model.layers.2.self_attn.zero_both.weight',
    shape: [4],
    dtypeA: 'F32',
    dtypeB: 'F16',
    a: fromBits([0, 0x80000000, 0, 0x80000000], 'F32'),
    b: fromBits([0x8000, 0, 0, 0x8000], 'F16'),
  });
  tensors.push({
    name: 'model.layers.2.self_attn.all_nan.weight',
    shape: [3],
    dtypeA: 'BF16',
    dtypeB: 'BF16',
    a: fromBits([0x7fc0, 0x3f80, 0x7f80], 'BF16'),
    b: fromBits([0x3f80, 0xffc0, 0x7f80], 'BF16'),
  });
  tensors.push({ name: 'model.layers.2.self_attn.o_proj.bias', shape: [0], dtypeA: 'F32', dtypeB: 'BF16', a: Buffer.alloc(0), b: Buffer.alloc(0) });
  return tensors;
}

let root: string;
let zoo: PairTensor[];
let zooDirs: { a: string; b: string };
let zooReport: DiffReport;
let zooRef: Map<string, ReferenceMoments>;
const progress: { bytesDone: number; bytesTotal: number }[] = [];

beforeAll(async () => {
  console.log(`diff tests: random data from seed ${SEED} (rerun with WEIGHTMIX_SEED=${SEED})`);
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'weightmix-diff-'));
  zoo = zooTensors();
  const skippedTensors = [
    { name: 'model.layers.0.self_attn.rotary.positions', dtype: 'I64' as const, shape: [4], data: Buffer.alloc(32, 1) },
    { name: 'token_type_flags', dtype: 'U8' as const, shape: [3], data: Buffer.from([1, 2, 3]) },
  ];
  zooDirs = await writePair(path.join(root, 'zoo'), zoo, skippedTensors);
  zooReport = await diff({ a: zooDirs.a, b: zooDirs.b, threads: 2, onProgress: (p) => progress.push(p) });
  zooRef = new Map(zoo.map((t) => [t.name, referenceMoments(t.a, t.dtypeA as ReferenceDtype, t.b, t.dtypeB as ReferenceDtype)]));
}, 180_000); // a few seconds on an idle machine; generous for shared CI cores

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('the reference decoder', () => {
  test('agrees with the platform f32 on every bf16 pattern and 100,000 random f32 patterns; f16 landmarks', () => {
    const dv = new DataView(new ArrayBuffer(4));
    const same = (x: number, y: number) => Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y));
    let mismatches = 0;
    for (let bits = 0; bits < 1 << 16; bits++) {
      dv.setUint32(0, (bits << 16) >>> 0);
      if (!same(decodeBits(bits, 'BF16'), dv.getFloat32(0))) mismatches++;
    }
    const rng = new Rng('reference decoder');
    for (let k = 0; k < 100_000; k++) {
      const bits = (rng.uniform() * 2 ** 32) >>> 0;
      dv.setUint32(0, bits);
      if (!same(decodeBits(bits, 'F32'), dv.getFloat32(0))) mismatches++;
    }
    expect(mismatches).toBe(0);
    const f16 = [0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00].map((b) => decodeBits(b, 'F16'));
    expect(f16).toEqual([1, -2, 65504, 2 ** -14, 2 ** -24, 1023 * 2 ** -24, -0, Infinity, -Infinity]);
    expect(decodeBits(0x7e00, 'F16')).toBeNaN();
  });
});

describe(`weightmix diff: figures against the f64 reference (seed ${SEED})`, () => {
  test('every per-tensor figure matches the reference: sums within 1e-12 of their scale, max |b−a| and non-finite count exact', () => {
    expect(zooReport.tensors.map((t) => t.name).sort()).toEqual(zoo.map((t) => t.name).sort());
    for (const t of zooReport.tensors) expectMatchesReference(t, zooRef.get(t.name)!, t.name);
    // the big tensor really spans several engine blocks
    expect(zooReport.tensors.find((t) => t.name === 'model.layers.2.mlp.up_proj.weight')!.elements).toBeGreaterThan((8 << 20) / 4);
  });

  test('every dtype pair is covered, mixed ones included; dtypes and shapes are reported', () => {
    const pairs = new Set(zooReport.tensors.map((t) => `${t.dtypeA}/${t.dtypeB}`));
    for (const [x, y] of DTYPE_PAIRS) expect(pairs).toContain(`${x}/${y}`);
    const q = zooReport.tensors.find((t) => t.name === 'model.layers.1.self_attn.k_proj.weight')!;
    const src = zoo.find((t) => t.name === q.name)!;
    expect([q.dtypeA, q.dtypeB, q.shape]).toEqual([src.dtypeA, src.dtypeB, [8, 16]]);
  });

  test('NaN and ±Inf on either side are counted as non-finite and left out; ±0 are zeros (hand-checked values)', () => {
    for (const name of ['model.layers.0.self_attn.hand.weight', 'model.layers.0.mlp.hand.weight']) {
      const t = zooReport.tensors.find((x) => x.name === name)!;
      expect({ name, elements: t.elements, nonFinite: t.nonFinite, aa: t.sumSqA, bb: t.sumSqB, ab: t.sumAB, dd: t.sumSqDiff, max: t.maxAbsDiff }).toEqual({
        name,
        elements: 8,
        nonFinite: 4,
        aa: 13,
        bb: 20,
        ab: 8,
        dd: 17,
        max: 4,
      });
      expect(t.relDistance).toBe(Math.sqrt(17) / Math.sqrt(13));
      expect(t.cosine).toBeCloseTo(8 / Math.sqrt(260), 15);
    }
    const allNaN = zooReport.tensors.find((t) => t.name === 'model.layers.2.self_attn.all_nan.weight')!;
    expect(allNaN).toMatchObject({ elements: 3, nonFinite: 3, sumSqA: 0, sumSqB: 0, maxAbsDiff: 0, relDistance: null, cosine: null });
  });

  test('subnormals count at their value (no flush to zero), in every dtype pair', () => {
    const subs = zooReport.tensors.filter((t) => t.name.includes('.subnormal_'));
    expect(subs).toHaveLength(9);
    for (const t of subs) {
      expect(t.sumSqA).toBeGreaterThan(0);
      expect(t.sumSqB).toBeGreaterThan(0);
      expect(t.sumSqA).toBeLessThan(1e-6); // 64 elements below f16's largest subnormal, 6.1e-5
      expect(t.relDistance).not.toBeNull();
    }
  });

  test('the largest finite values do not overflow: max |b−a| of f32 max against −max is 2·3.4028235e38', () => {
    const t = zooReport.tensors.find((x) => x.name === 'extreme_F32_F32.weight')!;
    expect(t.maxAbsDiff).toBe(2 * 3.4028234663852886e38);
    expect(t.nonFinite).toBe(0);
    expect(Number.isFinite(t.sumSqDiff)).toBe(true);
  });

  test('edge cases: ‖A‖ = 0 gives no relative distance; two zero tensors are at distance 0, cosine 1; an empty tensor has neither', () => {
    const byName = (n: string) => zooReport.tensors.find((t) => t.name === n)!;
    expect(byName('model.layers.2.self_attn.zero_a.weight')).toMatchObject({ sumSqA: 0, sumSqB: 0.3125, relDistance: null, cosine: null, maxAbsDiff: 0.5 });
    expect(byName('model.layers.2.self_attn.zero_both.weight')).toMatchObject({ elements: 4, relDistance: 0, cosine: 1, maxAbsDiff: 0 });
    expect(byName('model.layers.2.self_attn.o_proj.bias')).toMatchObject({ elements: 0, nonFinite: 0, relDistance: null, cosine: null });
  });

  test('non-float tensors are skipped and listed, in the report and in the table', () => {
    expect(zooReport.skipped).toEqual([
      { name: 'model.layers.0.self_attn.rotary.positions', dtypeA: 'I64', dtypeB: 'I64', reason: 'not a F32, F16 or BF16 tensor' },
      { name: 'token_type_flags', dtypeA: 'U8', dtypeB: 'U8', reason: 'not a F32, F16 or BF16 tensor' },
    ]);
    expect(zooReport.tensors.some((t) => t.name === 'token_type_flags')).toBe(false);
    expect(formatDiffReport(zooReport)).toContain(
      'skipped 2 non-float tensors (only F32, F16 and BF16 are compared): model.layers.0.self_attn.rotary.positions (I64), token_type_flags (U8)',
    );
  });

  test('per layer × module class, per layer, per module class and σ are the sums of the per-tensor reference', () => {
    const groupKey = (layer: number | null, module: string) => `${layer ?? '-'}/${module}`;
    const expectGroups = new Map<string, ReferenceMoments[]>();
    const expectLayers = new Map<number, ReferenceMoments[]>();
    const expectModules = new Map<string, ReferenceMoments[]>();
    const push = <K>(m: Map<K, ReferenceMoments[]>, k: K, v: ReferenceMoments) => m.set(k, [...(m.get(k) ?? []), v]);
    for (const t of zoo) {
      const { layer, module } = classifyTensor(t.name);
      const ref = zooRef.get(t.name)!;
      push(expectGroups, groupKey(layer, module), ref);
      if (layer !== null) push(expectLayers, layer, ref);
      push(expectModules, module, ref);
    }
    expect(zooReport.groups.map((g) => groupKey(g.layer, g.module)).sort()).toEqual([...expectGroups.keys()].sort());
    for (const g of zooReport.groups) {
      expect(g.tensors).toBe(expectGroups.get(groupKey(g.layer, g.module))!.length);
      expectMatchesReference(g, sumReferenceMoments(expectGroups.get(groupKey(g.layer, g.module))!), `group ${groupKey(g.layer, g.module)}`);
    }
    expect(zooReport.layers.map((l) => l.layer)).toEqual([0, 1, 2]);
    for (const l of zooReport.layers) expectMatchesReference(l, sumReferenceMoments(expectLayers.get(l.layer)!), `layer ${l.layer}`);
    expect(zooReport.modules.map((m) => m.module)).toEqual(['attn', 'mlp', 'norm', 'embed', 'head', 'final_norm', 'other']);
    for (const m of zooReport.modules) expectMatchesReference(m, sumReferenceMoments(expectModules.get(m.module)!), `module ${m.module}`);
    const all = sumReferenceMoments([...zooRef.values()]);
    expectMatchesReference(zooReport.summary, all, 'summary');
    expect(zooReport.summary.tensors).toBe(zoo.length);
    expect(zooReport.sigma).toBe(zooReport.summary.relDistance);
    expectSum(zooReport.sigma!, Math.sqrt(all.sumSqDiff) / Math.sqrt(all.sumSqA), Math.sqrt(all.sumSqDiff / all.sumSqA), 'σ');
  });

  test('groups come in layer order, module order within a layer, then the non-layer classes', () => {
    const keys = zooReport.groups.map((g) => `${g.layer ?? '-'}/${g.module}`);
    expect(keys).toEqual([
      '0/attn',
      '0/mlp',
      '0/norm',
      '1/attn',
      '1/mlp',
      '1/norm',
      '1/other',
      '2/attn',
      '2/mlp',
      '2/norm',
      '-/embed',
      '-/head',
      '-/final_norm',
      '-/other',
    ]);
  });

  test('the figures do not depend on the thread count (bit for bit)', async () => {
    const one = await diff({ a: zooDirs.a, b: zooDirs.b, threads: 1 });
    const strip = (r: DiffReport) => ({ ...r, seconds: 0, threads: 0 });
    expect(strip(one)).toEqual(strip(zooReport));
  });

  test('progress reports bytes read, ending at the total of both models', () => {
    expect(progress.length).toBeGreaterThan(0);
    const last = progress[progress.length - 1];
    expect(last).toMatchObject({ bytesDone: zooReport.bytesRead, bytesTotal: zooReport.bytesRead });
    const expected = zoo.reduce((n, t) => n + t.a.length + t.b.length, 0);
    expect(zooReport.bytesRead).toBe(expected);
  });

  test('identical models: σ = 0, every distance 0, every cosine exactly 1, max 0', async () => {
    const r = await diff({ a: zooDirs.a, b: zooDirs.a, threads: 2 });
    expect(r.sigma).toBe(0);
    expect(r.summary).toMatchObject({ relDistance: 0, cosine: 1, maxAbsDiff: 0, sumSqDiff: 0 });
    for (const t of r.tensors) {
      if (t.elements === t.nonFinite) continue; // empty and all-NaN tensors have no figures
      expect({ name: t.name, relDistance: t.relDistance, cosine: t.cosine, max: t.maxAbsDiff }).toEqual({ name: t.name, relDistance: 0, cosine: 1, max: 0 });
    }
    for (const g of [...r.groups, ...r.layers, ...r.modules]) expect([g.relDistance, g.cosine]).toEqual([0, 1]);
  });
});

describe(`weightmix diff on a tiny Qwen3-shaped pair (seed ${SEED})`, () => {
  let pair: { instruct: string; thinking: string };
  let report: DiffReport;
  beforeAll(async () => {
    pair = await makeCheckpointPair({ dir: path.join(root, 'tiny'), shape: 'tiny', seed: SEED, delta: 0.027 });
    report = await diff({ a: pair.instruct, b: pair.thinking, threads: 2 });
  }, 120_000);

  test('a pair made at relative distance 0.027 per tensor measures σ ≈ 0.027 (fixture calibration, within 10%)', () => {
    expect(report.sigma!).toBeGreaterThan(0.027 * 0.9);
    expect(report.sigma!).toBeLessThan(0.027 * 1.1);
    expect(report.summary.cosine!).toBeGreaterThan(0.999);
    expect(report.skipped).toEqual([]);
  });

  test('identical copies: σ = 0 and cosine 1 in every row', async () => {
    const copy = path.join(root, 'tiny-copy');
    fs.cpSync(pair.instruct, copy, { recursive: true });
    const r = await diff({ a: pair.instruct, b: copy });
    expect(r.sigma).toBe(0);
    for (const row of [r.summary, ...r.tensors, ...r.groups, ...r.layers, ...r.modules]) {
      expect([row.relDistance, row.cosine, row.maxAbsDiff]).toEqual([0, 1, 0]);
    }
  });

  test('the table: summary with σ, one row per layer with a column per module class, module classes; --tensors lists tensors', async () => {
    const out = await runCommand([pair.instruct, pair.thinking, '--threads', '2']);
    const lines = out.split('\n');
    expect(lines[0]).toBe(`A: ${pair.instruct}`);
    expect(lines[1]).toBe(`B: ${pair.thinking}`);
    expect(out).toMatch(/^σ = ‖B−A‖\/‖A‖ over all float tensors: 0\.0\d{4}$/m);
    expect(out).toMatch(/^cosine\(A, B\): 0\.999\d{3} {3}max \|B−A\|: \S+ {3}non-finite pairs: 0$/m);
    const header = lines.findIndex((l) => l.startsWith('layer '));
    expect(lines[header]).toMatch(/^layer\s+attn\s+mlp\s+norm\s+all\s+cosine\s+max \|B−A\|\s+non-finite$/);
    const rows = lines.slice(header + 2, header + 2 + 7).map((l) => l.split(/\s+/)[0]);
    expect(rows).toEqual(['embed', '0', '1', '2', '3', 'final_norm', 'head']);
    expect(lines[header + 3]).toMatch(/^0\s+(\d\.\d+(e-\d+)?\s+){4}0\.99\d{4}\s+\S+\s+0$/);
    expect(out).toContain('per module class (all layers):');
    expect(out).not.toContain('model.layers.0.mlp.up_proj.weight');
    const withTensors = await runCommand([pair.instruct, pair.thinking, '--tensors']);
    expect(withTensors).toMatch(/^model\.layers\.0\.mlp\.up_proj\.weight\s+BF16\s+8192\s+0\.0\d{4}\s+0\.99\d{4}/m);
  });

  test('--json prints the whole report with stable keys', async () => {
    const json = JSON.parse(await runCommand([pair.instruct, pair.thinking, '--json']));
    expect(Object.keys(json)).toEqual([
      'format',
      'a',
      'b',
      'sigma',
      'summary',
      'groups',
      'layers',
      'modules',
      'tensors',
      'skipped',
      'bytesRead',
      'seconds',
      'threads',
    ]);
    expect(json.format).toBe('weightmix-diff/1');
    const stats = ['elements', 'nonFinite', 'sumSqA', 'sumSqB', 'sumAB', 'sumSqDiff', 'maxAbsDiff', 'normA', 'normB', 'normDiff', 'relDistance', 'cosine'];
    expect(Object.keys(json.summary)).toEqual(['tensors', ...stats]);
    expect(Object.keys(json.groups[0])).toEqual(['layer', 'module', 'tensors', ...stats]);
    expect(Object.keys(json.layers[0])).toEqual(['layer', 'tensors', ...stats]);
    expect(Object.keys(json.modules[0])).toEqual(['module', 'tensors', ...stats]);
    expect(Object.keys(json.tensors[0])).toEqual(['name', 'layer', 'module', 'dtypeA', 'dtypeB', 'shape', ...stats]);
    expect(json.sigma).toBe(report.sigma);
    expect(json.tensors).toHaveLength(report.tensors.length);
    expect(json.groups.find((g: { layer: number | null; module: string }) => g.layer === null && g.module === 'embed')).toBeDefined();
  });

  test('--plot x.svg draws the per-layer profile: a layer axis and one line per module class', async () => {
    const file = path.join(root, 'profile.svg');
    const out = await runCommand([pair.instruct, pair.thinking, '--plot', file]);
    expect(out).toContain(`chart: ${file}`);
    const svg = fs.readFileSync(file, 'utf8');
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain("X-axis titled 'layer'");
    const texts = (role: string) =>
      [...svg.matchAll(new RegExp(`<g class="mark-text role-${role}"[^>]*>(.*?)</g>`, 'gs'))].flatMap((m) =>
        [...m[1].matchAll(/<text[^>]*>(.*?)<\/text>/g)].map((t) => t[1]),
      );
    expect(texts('axis-title')).toEqual(expect.arrayContaining(['layer', '‖B−A‖ / ‖A‖']));
    expect(texts('legend-label')).toEqual(['attn', 'mlp', 'norm']);
    const xAxis = svg.slice(svg.indexOf("X-axis titled 'layer'"));
    expect(texts('axis-label').length).toBeGreaterThan(0);
    expect([...xAxis.slice(0, xAxis.indexOf('role-axis-title')).matchAll(/<text[^>]*>(.*?)<\/text>/g)].map((m) => m[1])).toEqual(['0', '1', '2', '3']);
    expect(layerProfileRows(report)).toHaveLength(4 * 3);
  });

  test('--plot x.png writes a PNG', async () => {
    const file = path.join(root, 'profile.png');
    await runCommand([pair.instruct, pair.thinking, '--plot', file, '--json']);
    expect(fs.readFileSync(file).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  });
});

describe('weightmix diff: errors', () => {
  async function writeSimple(dir: string, tensors: { name: string; dtype: SafetensorsDtype; shape: number[] }[]): Promise<string> {
    return writeModel(dir, [
      {
        file: 'model.safetensors',
        tensors: tensors.map((t) => ({ ...t, data: Buffer.alloc(count(t.shape) * (t.dtype === 'F32' || t.dtype === 'I32' ? 4 : t.dtype === 'I64' ? 8 : 2)) })),
      },
    ]);
  }

  test('models with different tensors: one error line, exit status 1', async () => {
    const a = await writeSimple(path.join(root, 'err', 'names-a'), [{ name: 'x.weight', dtype: 'BF16', shape: [2] }]);
    const b = await writeSimple(path.join(root, 'err', 'names-b'), [{ name: 'y.weight', dtype: 'BF16', shape: [2] }]);
    const r = await runCli(['diff', a, b]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`weightmix: error: the models hold different tensors: only in ${a}: x.weight; only in ${b}: y.weight\n`);
  });

  test('different shapes or non-float dtypes: one error line each', async () => {
    const a = await writeSimple(path.join(root, 'err', 'shape-a'), [{ name: 'x.weight', dtype: 'BF16', shape: [2, 3] }]);
    const b = await writeSimple(path.join(root, 'err', 'shape-b'), [{ name: 'x.weight', dtype: 'F32', shape: [3, 2] }]);
    const r = await runCli(['diff', a, b]);
    expect([r.status, r.stderr]).toEqual([1, `weightmix: error: tensor x.weight has shape [2,3] in ${a} but [3,2] in ${b}\n`]);
    const c = await writeSimple(path.join(root, 'err', 'dtype-c'), [{ name: 'x.weight', dtype: 'I32', shape: [2, 3] }]);
    await expect(diff({ a, b: c })).rejects.toMatchObject({ code: 'DtypeMismatch' });
  });

  test('a missing folder, bad options: WeightmixError before any work', async () => {
    await expect(diff({ a: path.join(root, 'absent'), b: zooDirs.b })).rejects.toMatchObject({ code: 'ModelNotFound' });
    await expect(diff({ a: '', b: zooDirs.b })).rejects.toMatchObject({ code: 'Usage', message: expect.stringContaining("option 'a'") });
    await expect(diff({ a: zooDirs.a, b: zooDirs.b, threads: 0 })).rejects.toMatchObject({
      code: 'Usage',
      message: 'threads must be an integer from 1 to 1024, got 0',
    });
    await expect(runCommand([zooDirs.a, zooDirs.b, '--plot', path.join(root, 'chart.pdf')])).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/must end in \.svg or \.png/),
    });
    const plot = await runCli(['diff', zooDirs.a, zooDirs.b, '--plot', path.join(root, 'st.jpg')]);
    expect([plot.status, plot.stderr]).toEqual([2, `weightmix: error: chart file '${path.join(root, 'st.jpg')}' must end in .svg or .png\n`]);
    const r = await runCli(['diff', zooDirs.a, zooDirs.b, '--threads', 'many']);
    expect([r.status, r.stderr]).toEqual([2, 'weightmix: error: --threads must be an integer from 1 to 1024, got "many"\n']);
  });

  test('an aborted signal rejects with code Aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const err = await diff({ a: zooDirs.a, b: zooDirs.b, signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightmixError);
    expect(err).toMatchObject({ code: 'Aborted', message: 'the diff was aborted' });
  });

  test('--plot with no decoder-layer tensors says there is nothing to plot', async () => {
    const a = await writeSimple(path.join(root, 'err', 'flat-a'), [{ name: 'lm_head.weight', dtype: 'BF16', shape: [2] }]);
    await expect(runCommand([a, a, '--plot', path.join(root, 'flat.svg')])).rejects.toMatchObject({ code: 'NothingToPlot' });
  });
});

// Type-level check that the report rows are what the docs say they are.
const _typeCheck: (t: TensorDiff) => [string, number | null] = (t) => [t.name, t.layer];
void _typeCheck;
