/**
 * mergekit `model_stock` (Jang et al., 2024): with N fine-tuned models around a base and cos θ the
 * mean pairwise cosine of their task vectors, t = N·cos θ / (1 + (N − 1)·cos θ) and the result is
 * t·mean(θ_i) + (1 − t)·θ_base. The cosines come from the moments pass: ‖δ_i‖² = Σ(θ_i − θ_base)² and
 * ⟨δ_i, δ_j⟩ = (‖δ_i‖² + ‖δ_j‖² − ‖θ_i − θ_j‖²) / 2.
 */
import { WeightmixError } from '../../errors';
import { booleanParameter } from '../recipe-params';
import { baseOf, lacksBase, linearOrCopy, MergeMethod, MethodTensor } from './method';

/** The interpolation factor t for these squared distances (mergekit's clamps included). */
export function modelStockT(deltaSq: number[], pairSq: (i: number, j: number) => number): number {
  const n = deltaSq.length;
  const cos: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dot = (deltaSq[i] + deltaSq[j] - pairSq(i, j)) / 2;
      const norms = Math.max(Math.sqrt(deltaSq[i]) * Math.sqrt(deltaSq[j]), 1e-6);
      cos.push(Math.min(1, Math.max(-1, dot / norms)));
    }
  }
  const c = cos.reduce((s, x) => s + x, 0) / cos.length;
  return (n * c) / (1 + (n - 1) * c);
}

function others(t: Pick<MethodTensor, 'models' | 'base' | 'name'>): number[] {
  if (t.base === null || !t.models.includes(t.base))
    throw new WeightmixError('InvalidRecipe', `model_stock: tensor ${t.name} does not come from the base model`);
  return t.models.filter((m) => m !== t.base);
}

export const modelStock: MergeMethod = {
  name: 'model_stock',
  parameters: ['filter_wise'],
  validate(recipe) {
    if (lacksBase(recipe)) throw new WeightmixError('InvalidRecipe', 'model_stock needs a base_model');
    for (const s of recipe.slices) {
      const n = s.sources.filter((x) => x.model !== baseOf(recipe, s)).length;
      if (n < 2) throw new WeightmixError('InvalidRecipe', `model_stock needs at least two models besides the base, a slice has ${n}`);
    }
  },
  momentPairs(t) {
    const os = others(t);
    const pairs: [number, number][] = os.map((m) => [t.base!, m]);
    for (let i = 0; i < os.length; i++) for (let j = i + 1; j < os.length; j++) pairs.push([os[i], os[j]]);
    return pairs;
  },
  coefficients(t) {
    if (booleanParameter(t.scope, 'filter_wise', false)) {
      throw new WeightmixError(
        'UnsupportedRecipe',
        'model_stock: filter_wise: true is not supported: it takes one angle per row of each tensor, and the engine plans one linear combination (and one set of moments) per tensor',
      );
    }
    const os = others(t);
    if (os.length < 2)
      throw new WeightmixError('InvalidRecipe', `model_stock: tensor ${t.name} has ${os.length} models besides the base; it needs two or more`);
    const deltaSq = os.map((m) => t.moments(t.base!, m).sumSqDiff);
    const f = modelStockT(deltaSq, (i, j) => t.moments(os[i], os[j]).sumSqDiff);
    return linearOrCopy([t.base!, ...os], [1 - f, ...os.map(() => f / os.length)]);
  },
};
