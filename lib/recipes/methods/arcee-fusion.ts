/**
 * mergekit's `arcee_fusion` (Arcee Fusion): a base model and one other; per element the importance
 * |δ|·KL(softmax(θ) ‖ softmax(θ_base)) of its row (the last dimension), and δ kept where the
 * importance reaches median + 1.5·IQR of the tensor's importances, the base's value elsewhere. The
 * engine's `arcee_fusion` op (native/kernels/arcee_fusion.h, f64, one rounding) after the quantile
 * passes of lib/recipes/arcee-fusion-statistics.ts. No parameters (mergekit's has none).
 */
import { baseAndOther, MergeMethod, TensorCoefficients, validateOneBesideBase } from './method';

export const arceeFusion: MergeMethod = {
  name: 'arcee_fusion',
  resultInBaseDtype: true,
  parameters: [],
  modelParameters: [],
  needsBase: '',
  loneSourceCopied: true,
  validate: validateOneBesideBase('arcee_fusion'),
  coefficients(t): TensorCoefficients {
    const pair = baseAndOther(t, 'arcee_fusion');
    if ('op' in pair) return pair;
    return { op: 'arcee_fusion', base: pair.base, model: pair.other, rowLength: t.shape.length === 0 ? 1 : t.shape[t.shape.length - 1] };
  },
};
