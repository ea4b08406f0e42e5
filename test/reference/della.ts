/**
 * mergekit's della / della_linear (sparsify.py della_magprune + generalized_task_arithmetic), slow and
 * obvious in f64: every row sorted on its own, the probability from the rank, the draw from the
 * documented counter-based generator, then GTATask's mix (sparseMergeRef).
 */
import { maskUniformRef, SparseRefModel, sparseMergeRef } from './merge-methods';

/** Rows along dim 1 (mergekit's argsort(dim=1)); a 1-D tensor is one row, a scalar one element. */
export function dellaRowsRef(shape: readonly number[]): number[][] {
  const n = shape.reduce((a, b) => a * b, 1);
  const L = shape.length === 0 ? 1 : shape.length === 1 ? shape[0] : shape[1];
  const S = shape.length <= 2 ? 1 : shape.slice(2).reduce((a, b) => a * b, 1);
  const rows: number[][] = [];
  for (let block = 0; block < n; block += L * S) {
    for (let s = 0; s < S; s++) rows.push(Array.from({ length: L }, (_, j) => block + j * S + s));
  }
  return rows;
}

/** Ascending |d| as the ranking sees it: every NaN one value above Infinity. */
const byMagnitude = (a: number, b: number) => (Number.isNaN(a) ? (Number.isNaN(b) ? 0 : 1) : Number.isNaN(b) ? -1 : Math.abs(a) - Math.abs(b));

/**
 * MAGPRUNE's mask of one model: per row, ranks r = 0..L−1 by ascending |d| (equal |d|: the higher
 * element index first, so the lower index ranks higher), p = (density − ε) + ((r / (L − 1))·2)·ε
 * (a one-element row: p = density), kept when u(i) < p; density ≥ 1 keeps all, ≤ 0 none.
 */
export function dellaMaskRef(delta: number[], shape: readonly number[], density: number, epsilon: number, u: (i: number) => number): boolean[] {
  const keep = new Array<boolean>(delta.length).fill(density >= 1);
  if (density >= 1 || density <= 0) return keep;
  for (const row of dellaRowsRef(shape)) {
    const order = [...row].sort((i, j) => byMagnitude(delta[i], delta[j]) || j - i);
    const L = row.length;
    order.forEach((i, r) => {
      const p = L === 1 ? density : density - epsilon + (r / (L - 1)) * 2 * epsilon;
      keep[i] = u(i) < p;
    });
  }
  return keep;
}

export interface DellaRefModel {
  values: number[];
  weight: number;
  density: number;
  epsilon: number;
  /** The recipe's index of the model (it keys the mask). */
  index: number;
}

/**
 * The whole merge: d = fl32(x − base) ranks; a dropped element's task vector is base − base (0, NaN
 * at a ±Inf base), a kept one x − base in f64; `scales` per model (the L1 factors, or 1).
 */
export function dellaMergeRef(
  base: number[],
  models: DellaRefModel[],
  shape: readonly number[],
  opts: { seed: number; tensorName: string; consensus: boolean; normalize: boolean; lambda: number; scales: number[] },
): number[] {
  const refModels: SparseRefModel[] = models.map((m, k) => {
    const d32 = m.values.map((x, i) => Math.fround(x - base[i]));
    const keep = dellaMaskRef(d32, shape, m.density, m.epsilon, maskUniformRef(opts.seed, opts.tensorName, m.index));
    const delta = m.values.map((x, i) => (keep[i] ? x - base[i] : base[i] - base[i]));
    return { delta, weight: m.weight, keep: delta.map(() => true), scale: opts.scales[k] };
  });
  return sparseMergeRef(base, refModels, opts.consensus ? 'sum' : null, opts.normalize, opts.lambda);
}

/** The kept fraction and the L1 factor of one model's mask (mergekit's rescaled_masked_tensor, f64). */
export function dellaKeptRef(delta: number[], keep: boolean[]): { before: number; after: number } {
  let before = 0;
  let after = 0;
  delta.forEach((d, i) => {
    if (!Number.isFinite(d)) return;
    before += Math.abs(d);
    if (keep[i]) after += Math.abs(d);
  });
  return { before, after };
}
