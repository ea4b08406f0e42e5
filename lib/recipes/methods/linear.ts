/** mergekit `linear`: Σ w_i·θ_i, divided by Σ w_i unless `normalize: false`. */
import { WeightmixError } from '../../errors';
import { booleanParameter, numberParameter } from '../recipe-params';
import { linearOrCopy, MergeMethod } from './method';

export const linear: MergeMethod = {
  name: 'linear',
  parameters: ['weight', 'normalize'],
  validate() {},
  coefficients(t) {
    const w = t.models.map((m) => numberParameter(t.scope, 'weight', m, undefined, t.label(m)));
    if (booleanParameter(t.scope, 'normalize', true)) {
      const sum = w.reduce((s, x) => s + x, 0);
      if (sum === 0)
        throw new WeightmixError('InvalidRecipe', `linear: the weights of tensor ${t.name} sum to 0 and cannot be normalized (set normalize: false)`);
      return linearOrCopy(
        t.models,
        w.map((x) => x / sum),
      );
    }
    return linearOrCopy(t.models, w);
  },
};
