/**
 * mergekit's `della` and `della_linear` (DELLA-Merging, Deep et al. 2024): task vectors δ = θ − θ_base
 * thinned by MAGPRUNE — per row (mergekit's dim 1), each element kept with a probability that grows
 * with the rank of its |δ| in the row, from density − epsilon to density + epsilon — then, as
 * mergekit does it, rescaled to the L1 norm of the whole task vector (`rescale`, not the paper's 1/p),
 * sign-elected as TIES does (della) or not (della_linear), mixed and added to the base. The engine's
 * `della` op (native/kernels/della.h), its rescale factors resolved from the tensor in memory or, above
 * the local budget, by its `della_l1` statistic (lib/recipes/della-rescale.ts); masks from the counter-based generator DARE uses, keyed by
 * random_seed, tensor and model. Parameters and defaults are mergekit's: `weight` (required), `density`
 * (1), `epsilon` (0.15), `lambda` (1), `normalize` (della true, della_linear false), `rescale` (true),
 * `int8_mask` (no effect on the values, as in mergekit).
 */
import type { MergeMethodName } from '../../merge-method-names';
import { WeightmixError } from '../../errors';
import { dellaRows, DellaModel } from '../../engine/della-params';
import { booleanParameter, numberParameter } from '../recipe-params';
import { MergeMethod, MethodTensor, TensorCoefficients } from './method';

function dellaModel(t: MethodTensor, m: number, name: string): DellaModel {
  const density = numberParameter(t.scope, 'density', m, 1, t.label(m));
  const epsilon = numberParameter(t.scope, 'epsilon', m, 0.15, t.label(m));
  // mergekit's della_magprune raises for these before it draws a mask (density ≥ 1 and ≤ 0 return first).
  if (density > 0 && density < 1 && !(density + epsilon < 1 && density - epsilon > 0)) {
    throw new WeightmixError(
      'InvalidRecipe',
      `${name}: density ± epsilon must lie in (0, 1), got density ${density} and epsilon ${epsilon} for ${t.label(m)} (tensor ${t.name})`,
    );
  }
  return { model: m, weight: numberParameter(t.scope, 'weight', m, undefined, t.label(m)), density, epsilon, seedKey: 0n, scale: 1 };
}

function dellaMethod(name: MergeMethodName, consensus: boolean, normalize: boolean): MergeMethod {
  return {
    name,
    resultInBaseDtype: true,
    parameters: ['weight', 'density', 'epsilon', 'normalize', 'rescale', 'lambda', 'int8_mask'],
    modelParameters: ['weight', 'density', 'epsilon'],
    needsBase: 'task vectors are differences from it',
    coefficients(t): TensorCoefficients {
      const base = t.base!;
      if (!t.models.includes(base)) throw new WeightmixError('InvalidRecipe', `${name}: tensor ${t.name} does not come from the base model`);
      const models = t.models.filter((m) => m !== base).map((m) => dellaModel(t, m, name));
      // mergekit returns the base tensor when no other model holds it.
      if (models.length === 0) return { op: 'copy', model: base };
      return {
        op: 'della',
        rescale: booleanParameter(t.scope, 'rescale', true),
        della: {
          base,
          consensus,
          normalize: booleanParameter(t.scope, 'normalize', normalize),
          lambda: numberParameter(t.scope, 'lambda', undefined, 1),
          rows: dellaRows(t.shape),
          models,
        },
      };
    },
  };
}

export const della = dellaMethod('della', true, true);
export const dellaLinear = dellaMethod('della_linear', false, false);
