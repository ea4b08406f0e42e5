/** mergekit `passthrough`: each tensor from its one source (layer stacking), times `scale` when given. */
import { WeightmixError } from '../../errors';
import { numberParameter } from '../recipe-params';
import { MergeMethod } from './method';

export const passthrough: MergeMethod = {
  name: 'passthrough',
  parameters: ['scale'],
  modelParameters: ['scale'],
  validate(recipe) {
    // mergekit's models: form adds an unlisted base_model as a second source, which passthrough then refuses.
    if (recipe.form === 'models' && recipe.base !== null && !recipe.slices[0].sources.some((s) => s.model === recipe.base)) {
      throw new WeightmixError(
        'InvalidRecipe',
        `passthrough takes exactly one model; base_model ${recipe.modelNames[recipe.base]} is not among the models (drop base_model)`,
      );
    }
    recipe.slices.forEach((s, i) => {
      if (s.sources.length !== 1)
        throw new WeightmixError('InvalidRecipe', `passthrough takes exactly one source per slice, slice ${i} has ${s.sources.length}`);
    });
  },
  coefficients(t) {
    if (t.models.length !== 1) throw new WeightmixError('InvalidRecipe', `passthrough: tensor ${t.name} has ${t.models.length} sources; it takes one`);
    const scale = numberParameter(t.scope, 'scale', t.models[0], 1);
    return scale === 1 ? { op: 'copy', model: t.models[0] } : { op: 'linear', models: t.models, w: [scale] };
  },
};
