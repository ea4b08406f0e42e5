/**
 * mergekit's `sce` (SCE: Select, Calculate, Erase; FuseChat, Wan et al. 2024): task vectors
 * t_k = θ_k − θ_base; with `select_topk` < 1 only the elements whose variance across the t_k is in
 * the top fraction (of the elements with nonzero variance) are kept; signs are elected on the
 * unweighted sum; each model weighs mean(t_k²) / Σ mean(t²) over the whole tensor; the agreeing t_k
 * are averaged with those weights (divisor at least 1e-6) and added to the base. The engine's `sce`
 * op (native/kernels/sce.h, f64, one rounding) after two statistics (lib/recipes/sce-statistics.ts).
 * Parameters (mergekit's): `select_topk` (1), `int8_mask` (no effect on the values). No `weight`.
 */
import { WeightmixError } from '../../errors';
import { numberParameter } from '../recipe-params';
import { MergeMethod, TensorCoefficients } from './method';

export const sce: MergeMethod = {
  name: 'sce',
  resultInBaseDtype: true,
  parameters: ['select_topk', 'int8_mask'],
  modelParameters: [],
  needsBase: 'task vectors are differences from it',
  coefficients(t): TensorCoefficients {
    const base = t.base!;
    if (!t.models.includes(base)) throw new WeightmixError('InvalidRecipe', `sce: tensor ${t.name} does not come from the base model`);
    const models = t.models.filter((m) => m !== base);
    // mergekit returns the base tensor when no other model holds it.
    if (models.length === 0) return { op: 'copy', model: base };
    return { op: 'sce', base, models, selectTopk: numberParameter(t.scope, 'select_topk', undefined, 1) };
  },
};
