/**
 * The `arcee_fusion` op's parameters (native/kernels/arcee_fusion.h's flat layouts): the dest's
 * [row length, base, model, threshold] and its `arcee_histogram` statistic's
 * [row length, base, model, shift, bits, prefix × 3], sources as indices into the job's sources.
 */

/** An `arcee_fusion` tensor recipe's parameters (its `models` are [base, model]). */
export interface ArceeFusionRecipe {
  base: number;
  model: number;
  /** Elements per row (the last dimension; a 1-D tensor is one row). */
  rowLength: number;
  /** median + 1.5·IQR of the importance (lib/recipes/arcee-fusion-statistics.ts), an f32 value. */
  threshold: number;
}

export function encodeArceeFusionParams(r: ArceeFusionRecipe, sourceOf: (model: number) => number): number[] {
  return [r.rowLength, sourceOf(r.base), sourceOf(r.model), r.threshold];
}

/** The statistic's parameters over job sources [base, model]. */
export function arceeHistogramParams(rowLength: number, shift: number, bits: number, prefixes: readonly number[]): number[] {
  return [rowLength, 0, 1, shift, bits, ...prefixes];
}

/** The same dest parameters for a job whose sources are renumbered (a fused batch plan's jobs). */
export function remapArceeFusionSources(params: readonly number[], to: (source: number) => number): number[] {
  return [params[0], to(params[1]), to(params[2]), params[3]];
}
