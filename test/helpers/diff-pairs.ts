/** Shared setup of the diff tests (test/diff*.test.ts): the seeded random pairs, the f64 reference checks, the CLI runners and the tensor zoo. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { diff, type DiffReport, type DiffStats } from '../../lib/analysis/diff';
import { main } from '../../lib/cli';
import { register } from '../../lib/commands/diff';
import { encodeFloat } from '../../lib/format/float-bits';
import { nextUint32, streamState } from '../../lib/fixtures/random';
import { writeSafetensorsFile, type SafetensorsDtype } from '../../lib/format/safetensors';
import { referenceFigures, referenceMoments, type ReferenceDtype, type ReferenceMoments } from '../reference/moments';
import { dir, useTempDir } from './temp-dir';

// Random data: a fresh seed per run unless WEIGHTMIX_SEED is set; it is printed and in the test names.
export const SEED = process.env.WEIGHTMIX_SEED !== undefined ? Number(process.env.WEIGHTMIX_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;

/**
 * Tolerance: the engine and the reference both sum in f64, in different orders (engine: 8 lanes per
 * 2M-element block, then blocks, then tensors; reference: element order, compensated). A sum may
 * differ by 1e-12 of its scale: the sum itself for Σa², Σb², Σ(b−a)², and sqrt(Σa²·Σb²) ≥ Σ|ab| for
 * Σab. ‖B−A‖/‖A‖ may differ by 1e-12 relative, the cosine by 2e-12 absolute; max |b−a| and the
 * non-finite count are exact.
 */
export const REL = 1e-12;

export const FLOAT_DTYPES: ReferenceDtype[] = ['BF16', 'F16', 'F32'];
export const DTYPE_PAIRS: [ReferenceDtype, ReferenceDtype][] = FLOAT_DTYPES.flatMap((x) => FLOAT_DTYPES.map((y): [ReferenceDtype, ReferenceDtype] => [x, y]));
export const BYTES: Record<ReferenceDtype, number> = { BF16: 2, F16: 2, F32: 4 };

// Bit patterns of special values per dtype.
export const NON_FINITE: Record<ReferenceDtype, number[]> = {
  BF16: [0x7fc0, 0xffc1, 0x7f81, 0x7f80, 0xff80], // qNaN, −NaN with payload, sNaN, +Inf, −Inf
  F16: [0x7e00, 0xfc01, 0x7d00, 0x7c00, 0xfc00],
  F32: [0x7fc00000, 0xff800001, 0x7fa00000, 0x7f800000, 0xff800000],
};
export const ZEROS_AND_SUBNORMALS: Record<ReferenceDtype, number[]> = {
  BF16: [0x0000, 0x8000, 0x0001, 0x807f, 0x0040, 0x0080], // ±0, subnormals, smallest normal
  F16: [0x0000, 0x8000, 0x0001, 0x83ff, 0x0200, 0x0400],
  F32: [0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00400000, 0x00800000],
};
export const LARGEST: Record<ReferenceDtype, number[]> = {
  BF16: [0x7f7f, 0xff7f],
  F16: [0x7bff, 0xfbff],
  F32: [0x7f7fffff, 0xff7fffff],
};

export class Rng {
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
export function encode(values: readonly number[] | Float64Array, dtype: ReferenceDtype): Buffer {
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

export function fromBits(bits: readonly number[], dtype: ReferenceDtype): Buffer {
  const buf = Buffer.alloc(bits.length * BYTES[dtype]);
  bits.forEach((b, i) => (dtype === 'F32' ? buf.writeUInt32LE(b, 4 * i) : buf.writeUInt16LE(b, 2 * i)));
  return buf;
}

export function setBits(buf: Buffer, i: number, dtype: ReferenceDtype, bits: number): void {
  if (dtype === 'F32') buf.writeUInt32LE(bits, 4 * i);
  else buf.writeUInt16LE(bits, 2 * i);
}

export interface PairTensor {
  name: string;
  shape: number[];
  dtypeA: SafetensorsDtype;
  dtypeB: SafetensorsDtype;
  a: Buffer;
  b: Buffer;
}

export const count = (shape: number[]) => shape.reduce((n, d) => n * d, 1);

/** A's values ~ N(0, scale²) (N(1, scale²) for norms), B = A·(1 + 0.03·z) + 0.005·scale·z'; 1% specials on either side. */
export function randomPair(
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

export async function writeModel(
  dir: string,
  shards: { file: string; tensors: { name: string; dtype: SafetensorsDtype; shape: number[]; data: Buffer }[] }[],
): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  for (const s of shards) await writeSafetensorsFile(path.join(dir, s.file), s.tensors);
  return dir;
}

/** Writes A in two shards and B in one file (layouts may differ; names and shapes must not). */
export async function writePair(dir: string, tensors: PairTensor[], extra: { name: string; dtype: SafetensorsDtype; shape: number[]; data: Buffer }[] = []) {
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

export function expectSum(actual: number, expected: number, scale: number, what: string): void {
  const err = Math.abs(actual - expected);
  if (!(err <= REL * scale)) throw new Error(`${what}: ${actual} vs reference ${expected} (error ${err}, allowed ${REL * scale})`);
}

/** Every figure of `actual` against reference moments, at the stated tolerance. */
export function expectMatchesReference(actual: DiffStats, ref: ReferenceMoments, what: string): void {
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
  expectSum(actual.sumAbsA, ref.sumAbsA, ref.sumAbsA, `${what} Σ|a|`);
  expectSum(actual.sumAbsB, ref.sumAbsB, ref.sumAbsB, `${what} Σ|b|`);
  expectSum(actual.sumAbsDiff, ref.sumAbsDiff, ref.sumAbsDiff, `${what} Σ|b−a|`);
  const fig = referenceFigures(ref);
  if (fig.relDistance === null) expect({ what, relDistance: actual.relDistance }).toEqual({ what, relDistance: null });
  else expectSum(actual.relDistance!, fig.relDistance, fig.relDistance, `${what} ‖B−A‖/‖A‖`);
  if (fig.cosine === null) expect({ what, cosine: actual.cosine }).toEqual({ what, cosine: null });
  else expectSum(actual.cosine!, fig.cosine, 2, `${what} cosine`);
  if (fig.l1Ratio === null) expect({ what, l1Ratio: actual.l1Ratio }).toEqual({ what, l1Ratio: null });
  else expectSum(actual.l1Ratio!, fig.l1Ratio, fig.l1Ratio, `${what} Σ|b−a|/(Σ|a|+Σ|b|)`);
  expect(actual.normA).toBe(Math.sqrt(actual.sumSqA));
  expect(actual.normDiff).toBe(Math.sqrt(actual.sumSqDiff));
}

export async function captureStdout(fn: () => Promise<unknown>): Promise<string> {
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
export async function runCommand(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  register(program);
  return captureStdout(() => program.parseAsync(['node', 'weightmix', 'diff', ...args]));
}

/** The whole CLI (error printing, exit status); resolves to { status, stdout, stderr }. */
export async function runCli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
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

export const LAYERS = 3;
export const HAND_A = [NaN, 1, Infinity, -Infinity, 0, -0, 3, -2];
export const HAND_B = [1, NaN, Infinity, 5, -0, 0, 4, 2];

export function zooTensors(): PairTensor[] {
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

/** The file's temporary root for its pairs (temp-dir's `dir`, under the name these tests use). */
export { dir as root };
export let zoo: PairTensor[];
export let zooDirs: { a: string; b: string };
export let zooReport: DiffReport;
export let zooRef: Map<string, ReferenceMoments>;
export const progress: { bytesDone: number; bytesTotal: number }[] = [];

/** A temporary root for the file's pairs (removed after the file), the seed logged. */
export function setUpRoot(): void {
  beforeAll(() => {
    console.log(`diff tests: random data from seed ${SEED} (rerun with WEIGHTMIX_SEED=${SEED})`);
  });
  useTempDir('weightmix-diff-');
}

/** setUpRoot, then the tensor zoo written under it, diffed, and its f64 reference figures. */
export function setUpZoo(): void {
  setUpRoot();
  beforeAll(async () => {
    zoo = zooTensors();
    const skippedTensors = [
      { name: 'model.layers.0.self_attn.rotary.positions', dtype: 'I64' as const, shape: [4], data: Buffer.alloc(32, 1) },
      { name: 'token_type_flags', dtype: 'U8' as const, shape: [3], data: Buffer.from([1, 2, 3]) },
    ];
    zooDirs = await writePair(path.join(dir, 'zoo'), zoo, skippedTensors);
    zooReport = await diff({ a: zooDirs.a, b: zooDirs.b, threads: 2, onProgress: (p) => progress.push(p) });
    zooRef = new Map(zoo.map((t) => [t.name, referenceMoments(t.a, t.dtypeA as ReferenceDtype, t.b, t.dtypeB as ReferenceDtype)]));
  }, 180_000); // a few seconds on an idle machine; generous for shared CI cores
}
