/**
 * mergekit `ram` and `ramplus_tl` (Reinforced Agent Merging): per element, the task vectors δ_k whose
 * |δ_k| > epsilon count; where one model alone passes, its δ is kept (ramplus_tl: scaled by λ_k),
 * where several do, their mean; the base elsewhere. On the engine's `ram` op (f64, one rounding;
 * native/kernels/elementwise.h spells out mergekit's expression, NaN and Inf included). ramplus_tl's
 * λ_k = 1 + r·clamp(shared_k / max(unique_k, epsilon), 0, alpha) comes from a counting pass over the
 * whole tensor (elements where model k passes with others, and alone). Parameters (mergekit's):
 * `epsilon` (1e-5); ramplus_tl also `r` (0.1) and `alpha` (0.2).
 */
import { WeightmixError } from '../../errors';
import { numberParameter } from '../recipe-params';
import { MergeMethod, MethodTensor, TensorCoefficients } from './method';

function ramCoefficients(t: MethodTensor, plus: boolean): TensorCoefficients {
  const base = t.base!;
  if (!t.models.includes(base)) throw new WeightmixError('InvalidRecipe', `${plus ? 'ramplus_tl' : 'ram'}: tensor ${t.name} does not come from the base model`);
  const models = t.models.filter((m) => m !== base);
  if (models.length === 0) return { op: 'copy', model: base };
  const epsilon = numberParameter(t.scope, 'epsilon', undefined, 1e-5);
  const r = plus ? numberParameter(t.scope, 'r', undefined, 0.1) : 0;
  const alpha = plus ? numberParameter(t.scope, 'alpha', undefined, 0.2) : 0;
  return { op: 'ram', base, models, epsilon, plus: plus ? { r, alpha } : null };
}

/** ramplus_tl's λ_k from its whole-tensor counts (mergekit's formula, in f64). */
export function ramPlusLambda(shared: number, unique: number, r: number, alpha: number, epsilon: number): number {
  const rho = shared / Math.max(unique, epsilon);
  return 1 + r * Math.min(alpha, Math.max(0, rho));
}

export const ram: MergeMethod = {
  name: 'ram',
  parameters: ['epsilon'],
  modelParameters: [],
  needsBase: 'task vectors are differences from it',
  coefficients: (t) => ramCoefficients(t, false),
};

export const ramplusTl: MergeMethod = {
  name: 'ramplus_tl',
  parameters: ['epsilon', 'r', 'alpha'],
  modelParameters: [],
  needsBase: 'task vectors are differences from it',
  coefficients: (t) => ramCoefficients(t, true),
};
