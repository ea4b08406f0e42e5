/**
 * mergekit `task_arithmetic`: θ_base + λ·Σ w_i (θ_i − θ_base), expressed as one linear combination over
 * [base, θ_i] so that it is computed in f32 and rounded once. `normalize` (default false) divides
 * by Σ w_i; `lambda` (default 1) scales the summed task vector.
 */
import { WeightmixError } from '../../errors';
import { booleanParameter, numberParameter } from '../recipe-params';
import { linearOrCopy, MergeMethod } from './method';

export const taskArithmetic: MergeMethod = {
  name: 'task_arithmetic',
  parameters: ['weight', 'normalize', 'lambda'],
  validate(recipe) {
    if (recipe.base === null) throw new WeightmixError('InvalidRecipe', 'task_arithmetic needs a base_model (task vectors are differences from it)');
  },
  coefficients(t) {
    const base = t.base!;
    if (!t.models.includes(base)) throw new WeightmixError('InvalidRecipe', `task_arithmetic: tensor ${t.name} does not come from the base model`);
    const others = t.models.filter((m) => m !== base);
    let w = others.map((m) => numberParameter(t.scope, 'weight', m, undefined, t.label(m)));
    if (booleanParameter(t.scope, 'normalize', false)) {
      const sum = w.reduce((s, x) => s + x, 0);
      if (Math.abs(sum) >= 1e-8) w = w.map((x) => x / sum);
    }
    const lambda = numberParameter(t.scope, 'lambda', undefined, 1);
    w = w.map((x) => x * lambda);
    const baseWeight = 1 - w.reduce((s, x) => s + x, 0);
    return linearOrCopy([base, ...others], [baseWeight, ...w]);
  },
};
