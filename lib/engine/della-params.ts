/**
 * The `della` op's parameters (native/kernels/della.h's flat layout) and the rows it ranks within:
 * [consensus, normalize, λ, base source, L, S, m, m × (source, weight, density, epsilon, seedHi, seedLo, scale)
 * [, m × (L1 factor open)]].
 * Its `della_l1` statistic takes [L, S, density, epsilon, seedHi, seedLo] over the sources [base, model].
 */
import { keyHigh, keyLow } from './sparse-params';

/** Rows of `length` elements, `stride` apart: mergekit ranks along dim 1 (a 1-D tensor is one row). */
export interface DellaRows {
  length: number;
  stride: number;
}

export interface DellaModel {
  model: number;
  weight: number;
  density: number;
  epsilon: number;
  seedKey: bigint;
  /** The L1 rescale factor (lib/recipes/della-rescale.ts), 1 until resolved or without rescale. */
  scale: number;
  /** The factor is left for the engine to resolve from the tensor in memory (a tensor-local job); `scale` is then a placeholder. */
  open?: boolean;
}

/** A `della` tensor recipe's parameters (its `models` list the base first, then `models` in order). */
export interface DellaRecipe {
  base: number;
  /** Sign election as TIES's (della) or none (della_linear). */
  consensus: boolean;
  normalize: boolean;
  lambda: number;
  rows: DellaRows;
  models: DellaModel[];
}

/** mergekit's della_magprune rows: dim 1 of a tensor of 2 or more dimensions, the whole of a 1-D one (unsqueezed), one element for a scalar. */
export function dellaRows(shape: readonly number[]): DellaRows {
  if (shape.length === 0) return { length: 1, stride: 1 };
  if (shape.length === 1) return { length: shape[0], stride: 1 };
  return { length: shape[1], stride: shape.slice(2).reduce((a, b) => a * b, 1) };
}

/** The model's numbers after its source: density, epsilon and mask key (the statistic's tail too). */
function keepParams(m: DellaModel): number[] {
  return [m.density, m.epsilon, keyHigh(m.seedKey), keyLow(m.seedKey)];
}

export function encodeDellaParams(r: DellaRecipe, sourceOf: (model: number) => number): number[] {
  const out = [r.consensus ? 1 : 0, r.normalize ? 1 : 0, r.lambda, sourceOf(r.base), r.rows.length, r.rows.stride, r.models.length];
  for (const m of r.models) out.push(sourceOf(m.model), m.weight, ...keepParams(m), m.scale);
  // The optional tail: which models' L1 factors are open (native/kernels/della.h's DellaModel::openL1).
  if (r.models.some((m) => m.open)) for (const m of r.models) out.push(m.open ? 1 : 0);
  return out;
}

/** The `della_l1` statistic's parameters for one model. */
export function dellaStatParams(rows: DellaRows, m: DellaModel): number[] {
  return [rows.length, rows.stride, ...keepParams(m)];
}

const HEADER = 7;
const PER_MODEL = 7;

/** Whether the dest leaves L1 factors open (the optional tail): a tensor-local job, its job's sources held whole. */
export function dellaParamsOpen(params: readonly number[]): boolean {
  return params.length > HEADER + PER_MODEL * params[6];
}

/** The same parameters for a job whose sources are renumbered (a fused batch plan's jobs). */
export function remapDellaSources(params: readonly number[], to: (source: number) => number): number[] {
  const out = [...params];
  out[3] = to(out[3]);
  for (let k = 0; k < out[6]; k++) out[HEADER + PER_MODEL * k] = to(out[HEADER + PER_MODEL * k]);
  return out;
}
