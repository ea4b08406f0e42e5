/**
 * The `arcee_fusion` op's parameters (native/kernels/arcee_fusion.h's flat layouts): the dest's
 * [row length, base, model, threshold, row KLs…] (or [row length, base, model]: the threshold left open for a
 * tensor-local job, native/local_arcee.h; [−row length, base, model]: open, its order keys computed again in each pass) and its `arcee_histogram` statistic's
 * [row length, base, model, shift, bits, prefix × 3, row KLs…], sources as indices into the job's sources.
 * The row KLs (each row's divergence, two exps and a log per element) come from the first histogram
 * pass, which returns them when they are not given, so that later passes and the merge do not compute them again.
 */

/** An `arcee_fusion` tensor recipe's parameters (its `models` are [base, model]). */
export interface ArceeFusionRecipe {
  base: number;
  model: number;
  /** Elements per row (the last dimension; a 1-D tensor is one row). */
  rowLength: number;
  /** median + 1.5·IQR of the importance (lib/recipes/arcee-fusion-statistics.ts), an f32 value. */
  threshold: number;
  /** Each row's KL divergence, as the first statistics pass returned it (absent or empty before: the engine computes it). */
  rowDivergence?: Float64Array;
  /** A tensor-local job's: threshold and row KLs resolved by the engine from the tensor read once (native/local_arcee.h). */
  open?: boolean;
  /** With `open`: the order keys computed again in each of the engine's passes instead of stored (encoded as a negative row length). */
  recomputeKeys?: boolean;
}

export function encodeArceeFusionParams(r: ArceeFusionRecipe, sourceOf: (model: number) => number): number[] {
  if (r.open) return [r.recomputeKeys ? -r.rowLength : r.rowLength, sourceOf(r.base), sourceOf(r.model)];
  return [r.rowLength, sourceOf(r.base), sourceOf(r.model), r.threshold, ...(r.rowDivergence ?? [])];
}

/** The statistic's parameters over job sources [base, model]. */
export function arceeHistogramParams(rowLength: number, shift: number, bits: number, prefixes: readonly number[], rowDivergence?: Float64Array): number[] {
  return [rowLength, 0, 1, shift, bits, ...prefixes, ...(rowDivergence ?? [])];
}

/** Whether the dest leaves its threshold open ([row length, base, model] alone): a tensor-local job, its job's sources held whole. */
export function arceeFusionParamsOpen(params: readonly number[]): boolean {
  return params.length === 3;
}

/** The same dest parameters for a job whose sources are renumbered (a fused batch plan's jobs). */
export function remapArceeFusionSources(params: readonly number[], to: (source: number) => number): number[] {
  return [params[0], to(params[1]), to(params[2]), ...params.slice(3)];
}
