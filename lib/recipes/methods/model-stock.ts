/**
 * mergekit `model_stock` (Jang et al., 2024): with N fine-tuned models around a base and cos θ the
 * mean pairwise cosine of their task vectors, t = N·cos θ / (1 + (N − 1)·cos θ) and the result is
 * t·mean(θ_i) + (1 − t)·θ_base. The cosines come from the moments pass: ‖δ_i‖² = Σ(θ_i − θ_base)² and
 * ⟨δ_i, δ_j⟩ = (‖δ_i‖² + ‖δ_j‖² − ‖θ_i − θ_j‖²) / 2. `filter_wise: true` (mergekit's) takes one t per row
 * of the last dimension, from per-row moments, and writes θ_base + Σ (t_r/N)·δ_i in f64 (`rows`).
 */
import { WeightmixError } from '../../errors';
import { booleanParameter } from '../recipe-params';
import { baseOf, linearOrCopy, MergeMethod, MethodTensor, RowMoments } from './method';

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

/**
 * t, or 0 (the base's values, with a notice) where 1 + (N − 1)·cos θ = 0: the task vectors' directions
 * cancel, t is undefined and mergekit writes Inf or NaN. Where their norms are equal too, Σδ_i = 0 and
 * every t gives the base; otherwise the formula has no finite value and the base is its anchor.
 */
function definedT(t: number, where: string, notice: (message: string) => void): number {
  if (Number.isFinite(t)) return t;
  notice(`model_stock: ${where}: the task vectors point in opposite directions (mean cosine 1/(1 − N), t undefined): the base model's values are kept there`);
  return 0;
}

/** (base, θ_i) for each model, then every (θ_i, θ_j), i < j: what the cosines read. */
function modelStockPairs(base: number, os: number[]): [number, number][] {
  const pairs: [number, number][] = os.map((m) => [base, m]);
  for (let i = 0; i < os.length; i++) for (let j = i + 1; j < os.length; j++) pairs.push([os[i], os[j]]);
  return pairs;
}

function others(t: Pick<MethodTensor, 'models' | 'base' | 'name'>): number[] {
  if (t.base === null || !t.models.includes(t.base))
    throw new WeightmixError('InvalidRecipe', `model_stock: tensor ${t.name} does not come from the base model`);
  return t.models.filter((m) => m !== t.base);
}

export const modelStock: MergeMethod = {
  name: 'model_stock',
  parameters: ['filter_wise'],
  modelParameters: [],
  needsBase: '',
  validate(recipe) {
    for (const s of recipe.slices) {
      const n = s.sources.filter((x) => x.model !== baseOf(recipe, s)).length;
      if (n < 2) throw new WeightmixError('InvalidRecipe', `model_stock needs at least two models besides the base, a slice has ${n}`);
    }
  },
  momentPairs(t) {
    if (booleanParameter(t.scope, 'filter_wise', false) && t.shape.length >= 2) return [];
    return modelStockPairs(t.base!, others(t));
  },
  linearFromMoments: (t) => !(booleanParameter(t.scope, 'filter_wise', false) && t.shape.length >= 2),
  coefficients(t) {
    const os = others(t);
    if (os.length < 2)
      throw new WeightmixError('InvalidRecipe', `model_stock: tensor ${t.name} has ${os.length} models besides the base; it needs two or more`);
    // filter_wise: one t per row (the last dimension); a 1-D tensor is one row, the tensor-wise form.
    if (booleanParameter(t.scope, 'filter_wise', false) && t.shape.length >= 2) {
      const weights = (rows: RowMoments) =>
        rows(t.base!, os[0]).map((_, r) => {
          const f = modelStockT(
            os.map((m) => rows(t.base!, m)[r].sumSqDiff),
            (i, j) => rows(os[i], os[j])[r].sumSqDiff,
          );
          const defined = definedT(f, `row ${r} of ${t.name}`, t.notice);
          return os.map(() => defined / os.length);
        });
      return {
        op: 'rows',
        base: t.base!,
        models: os,
        rowLength: t.shape[t.shape.length - 1],
        interleaved: false,
        pairs: modelStockPairs(t.base!, os),
        weights,
      };
    }
    const deltaSq = os.map((m) => t.moments(t.base!, m).sumSqDiff);
    const f = definedT(
      modelStockT(deltaSq, (i, j) => t.moments(os[i], os[j]).sumSqDiff),
      t.name,
      t.notice,
    );
    return linearOrCopy([t.base!, ...os], [1 - f, ...os.map(() => f / os.length)]);
  },
};
