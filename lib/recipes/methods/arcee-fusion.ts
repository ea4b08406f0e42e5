/**
 * mergekit's `arcee_fusion` (Arcee Fusion): a base model and one other; per element the importance
 * |δ|·KL(softmax(θ) ‖ softmax(θ_base)) of its row (the last dimension), and δ kept where the
 * importance reaches median + 1.5·IQR of the tensor's importances, the base's value elsewhere. The
 * engine's `arcee_fusion` op (native/kernels/arcee_fusion.h, f64, one rounding) after the quantile
 * passes of lib/recipes/arcee-fusion-statistics.ts. No parameters (mergekit's has none).
 */
import { WeightmixError } from '../../errors';
import { baseOf, loneSource, MergeMethod, TensorCoefficients } from './method';

export const arceeFusion: MergeMethod = {
  name: 'arcee_fusion',
  resultInBaseDtype: true,
  parameters: [],
  modelParameters: [],
  needsBase: '',
  loneSourceCopied: true,
  validate(recipe) {
    for (const s of recipe.slices) {
      if (loneSource(recipe, s)) continue;
      const n = new Set(s.sources.map((x) => x.model).filter((m) => m !== baseOf(recipe, s))).size;
      if (n !== 1) throw new WeightmixError('InvalidRecipe', `arcee_fusion merges exactly one model with the base_model, a slice names ${n}`);
    }
  },
  coefficients(t): TensorCoefficients {
    if (t.models.length === 1) return { op: 'copy', model: t.models[0] };
    const base = t.base!;
    if (!t.models.includes(base)) throw new WeightmixError('InvalidRecipe', `arcee_fusion: tensor ${t.name} does not come from the base model`);
    const other = t.models.find((m) => m !== base);
    // mergekit returns the one tensor it has when only one model holds it.
    if (other === undefined) return { op: 'copy', model: base };
    return { op: 'arcee_fusion', base, model: other, rowLength: t.shape.length === 0 ? 1 : t.shape[t.shape.length - 1] };
  },
};
