/**
 * The `sce` op's parameters (native/kernels/sce.h's flat layouts): the dest's
 * [base, cutHi, cutLo, indexBits, m, m × (source, weight) [, selectTopk, sumPiece [, 1]]] (the tail: statistics
 * left open for the engine, native/local_sce.h; the 1: its variances computed again in each pass, not stored), and its statistics' `sce_histogram`
 * [base, m, m sources, indexBits, shift, bits, prefixHi, prefixLo] and `sce_sum_squares`
 * [base, m, m sources, cutHi, cutLo, indexBits], every source an index into the job's sources.
 */
import { keyHigh, keyLow } from './sparse-params';

/** An `sce` tensor recipe's parameters (its `models` list the base first, then `models` in order). */
export interface SceRecipe {
  base: number;
  models: number[];
  /** mergekit's sce_weight per model (lib/recipes/sce-statistics.ts), equal until resolved. */
  weights: number[];
  /** Elements whose variance rank key is ≥ cut are selected: 0n all, 2^63 none. */
  cut: bigint;
  indexBits: number;
  /** A tensor-local job's: cut and weights resolved by the engine from select_topk, the sums of squares added in pieces of `sumPiece` elements as the streaming pass's. */
  open?: { selectTopk: number; sumPiece: number; recomputeVariances?: boolean };
}

export function encodeSceParams(r: SceRecipe, sourceOf: (model: number) => number): number[] {
  const out = [sourceOf(r.base), keyHigh(r.cut), keyLow(r.cut), r.indexBits, r.models.length];
  r.models.forEach((m, k) => out.push(sourceOf(m), r.weights[k]));
  if (r.open) out.push(r.open.selectTopk, r.open.sumPiece);
  if (r.open?.recomputeVariances) out.push(1);
  return out;
}

/** The selection statistic's parameters over job sources [base, models…] in order. */
export function sceHistogramParams(models: number, indexBits: number, shift: number, bits: number, prefix: bigint): number[] {
  return [0, models, ...Array.from({ length: models }, (_, k) => k + 1), indexBits, shift, bits, keyHigh(prefix), keyLow(prefix)];
}

/** The sums of squares' parameters over job sources [base, models…] in order. */
export function sceSumSquaresParams(models: number, cut: bigint, indexBits: number): number[] {
  return [0, models, ...Array.from({ length: models }, (_, k) => k + 1), keyHigh(cut), keyLow(cut), indexBits];
}

/** Whether the dest leaves its cut and weights open (the optional tail): a tensor-local job, its job's sources held whole. */
export function sceParamsOpen(params: readonly number[]): boolean {
  return params.length > 5 + 2 * params[4];
}

/** The same dest parameters for a job whose sources are renumbered (a fused batch plan's jobs). */
export function remapSceSources(params: readonly number[], to: (source: number) => number): number[] {
  const end = 5 + 2 * params[4]; // the open tail holds no source
  return params.map((x, i) => (i === 0 || (i >= 5 && i < end && (i - 5) % 2 === 0) ? to(x) : x));
}
