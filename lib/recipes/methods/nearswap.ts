/**
 * mergekit `nearswap` (alchemonaut's NearSwap): the base model's value where the other model is far
 * from it, the other's where it is near: per element w = clamp(t / max(|base − θ|, 1e-6), 0, 1) and
 * out = w·θ + (1 − w)·base, on the engine's `nearswap` op (f64, one rounding). Parameters (mergekit's):
 * `t` (required). Exactly one model besides the base.
 */
import { WeightmixError } from '../../errors';
import { numberParameter } from '../recipe-params';
import { baseOf, loneSource, MergeMethod, TensorCoefficients } from './method';

export const nearswap: MergeMethod = {
  name: 'nearswap',
  parameters: ['t'],
  modelParameters: [],
  needsBase: '',
  loneSourceCopied: true,
  validate(recipe) {
    for (const s of recipe.slices) {
      if (loneSource(recipe, s)) continue;
      const n = new Set(s.sources.map((x) => x.model).filter((m) => m !== baseOf(recipe, s))).size;
      if (n !== 1) throw new WeightmixError('InvalidRecipe', `nearswap merges exactly one model with the base_model, a slice names ${n}`);
    }
  },
  coefficients(t): TensorCoefficients {
    if (t.models.length === 1) return { op: 'copy', model: t.models[0] };
    const base = t.base!;
    if (!t.models.includes(base)) throw new WeightmixError('InvalidRecipe', `nearswap: tensor ${t.name} does not come from the base model`);
    const other = t.models.find((m) => m !== base);
    // mergekit returns the base tensor when no other model holds it.
    if (other === undefined) return { op: 'copy', model: base };
    return { op: 'nearswap', base, model: other, t: numberParameter(t.scope, 't', undefined) };
  },
};
