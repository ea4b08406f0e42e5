/** mergekit `linear`: Σ w_i·θ_i, divided by Σ w_i unless `normalize: false`. */
import { WeightmixError } from '../../errors';
import { booleanParameter, lookupParameter, numberParameter } from '../recipe-params';
import { linearOrCopy, MergeMethod, normalizedWeights } from './method';

export const linear: MergeMethod = {
  name: 'linear',
  parameters: ['weight', 'normalize'],
  modelParameters: ['weight'],
  coefficients(t) {
    const w = t.models.map((m) => {
      if (m === t.base && lookupParameter(t.scope, 'weight', m) === undefined) {
        throw new WeightmixError(
          'InvalidRecipe',
          `linear: base_model ${t.label(m)} is not among the models, so it joins them (as in mergekit) and needs a weight: give one under parameters:, list it under models:, or drop base_model (tensor ${t.name})`,
        );
      }
      return numberParameter(t.scope, 'weight', m, undefined, t.label(m));
    });
    if (booleanParameter(t.scope, 'normalize', true)) {
      const normalized = normalizedWeights(w);
      if (normalized === null)
        throw new WeightmixError('InvalidRecipe', `linear: the weights of tensor ${t.name} sum to 0 and cannot be normalized (set normalize: false)`);
      return linearOrCopy(t.models, normalized);
    }
    return linearOrCopy(t.models, w);
  },
};
