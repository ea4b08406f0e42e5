/**
 * mergekit `task_arithmetic`: θ_base + λ·Σ w_i (θ_i − θ_base), in mergekit's delta form on the engine's
 * `sparse` op with nothing thinned: δ_i = θ_i − θ_base first, so that the weighted task vectors are
 * small next to θ_base and the sum does not cancel (the expanded form (1 − Σw)·θ_base + Σ w_i·θ_i lost
 * up to half the f32 elements' correct rounding). `normalize` (default false) divides by Σ w_i
 * (unless |Σ w_i| < 1e-8); `lambda` (default 1) scales the summed task vector. `int8_mask`,
 * `rescale` and `density` are accepted and, as in mergekit, change nothing without sparsification.
 */
import { WeightmixError } from '../../errors';
import { booleanParameter, numberParameter } from '../recipe-params';
import { MergeMethod } from './method';

export const taskArithmetic: MergeMethod = {
  name: 'task_arithmetic',
  resultInBaseDtype: true,
  parameters: ['weight', 'normalize', 'lambda', 'int8_mask', 'rescale', 'density'],
  modelParameters: ['weight', 'density'],
  needsBase: 'task vectors are differences from it',
  coefficients(t) {
    const base = t.base!;
    if (!t.models.includes(base)) throw new WeightmixError('InvalidRecipe', `task_arithmetic: tensor ${t.name} does not come from the base model`);
    const others = t.models.filter((m) => m !== base);
    if (others.length === 0) return { op: 'copy', model: base };
    return {
      op: 'sparse',
      spec: {
        base,
        models: others.map((m) => ({
          model: m,
          weight: numberParameter(t.scope, 'weight', m, undefined, t.label(m)),
          selection: 'none',
          density: 1,
          gamma: 0,
          rescale: 'none',
        })),
        consensus: null,
        normalize: booleanParameter(t.scope, 'normalize', false),
        lambda: numberParameter(t.scope, 'lambda', undefined, 1),
        seed: 0,
      },
    };
  },
};
