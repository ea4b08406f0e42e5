/**
 * The `sparse` op's parameters: thresholds, mask keys and factors once resolved (recipes/sparsify.ts
 * resolves them), and their flat encoding, native/kernels/sparsify.h's layout.
 */

export interface ResolvedSparseModel {
  model: number;
  weight: number;
  lowKey: bigint;
  highKey: bigint;
  /** In (0, 1): the Bernoulli mask applies; otherwise none. */
  density: number;
  seedKey: bigint;
  scale: number;
  /**
   * Statistics the engine resolves from the tensor in memory (a tensor-local job, native/local_job.h):
   * `select`: lowKey/highKey become the cuts with exactly lowRank/highRank rank keys at or above them;
   * `l1`: scale becomes the L1 rescale factor. Absent: the keys and scale above are final.
   */
  open?: SparseOpen;
}

export interface SparseOpen {
  select: boolean;
  lowRank: number;
  highRank: number;
  l1: boolean;
}

export interface ResolvedSparse {
  base: number;
  consensus: 'sum' | 'count' | null;
  normalize: boolean;
  lambda: number;
  indexBits: number;
  models: ResolvedSparseModel[];
}

/** The high and low 32 bits of a 64-bit key: the engine takes plan numbers as doubles. */
export const keyHigh = (k: bigint) => Number(k >> 32n);
export const keyLow = (k: bigint) => Number(k & 0xffffffffn);

/** One model's ten numbers in the flat layout, reading job source `source`. */
export function sparseModelParams(source: number, m: ResolvedSparseModel): number[] {
  return [
    source,
    m.weight,
    keyHigh(m.lowKey),
    keyLow(m.lowKey),
    keyHigh(m.highKey),
    keyLow(m.highKey),
    m.density,
    keyHigh(m.seedKey),
    keyLow(m.seedKey),
    m.scale,
  ];
}

/** The `sparse` dest's flat parameters, with recipe models mapped to the job's source indices. */
export function encodeSparseParams(r: ResolvedSparse, sourceOf: (model: number) => number): number[] {
  const consensus = r.consensus === null ? 0 : r.consensus === 'sum' ? 1 : 2;
  const out = [consensus, r.normalize ? 1 : 0, r.lambda, r.indexBits, sourceOf(r.base), r.models.length];
  for (const m of r.models) out.push(...sparseModelParams(sourceOf(m.model), m));
  // The optional tail of open statistics, one entry per model (native/kernels/sparsify.h's SparseOpen).
  if (r.models.some((m) => m.open)) {
    for (const { open } of r.models) out.push(open?.select ? 1 : 0, open?.lowRank ?? 0, open?.highRank ?? 0, open?.l1 ? 1 : 0);
  }
  return out;
}

/** Numbers per model in the flat layout (its first is the model's source index). */
const MODEL_PARAMS = 10;

/** Whether the dest leaves statistics open (the optional tail): a tensor-local job, its job's sources held whole. */
export function sparseParamsOpen(params: readonly number[]): boolean {
  return params.length > 6 + MODEL_PARAMS * params[5];
}

/** The same parameters for a job whose sources are renumbered (`to(old index)` = new index): a fused batch plan's jobs. */
export function remapSparseSources(params: readonly number[], to: (source: number) => number): number[] {
  const out = [...params];
  out[4] = to(out[4]);
  for (let k = 0; k < out[5]; k++) out[6 + MODEL_PARAMS * k] = to(out[6 + MODEL_PARAMS * k]);
  return out;
}
