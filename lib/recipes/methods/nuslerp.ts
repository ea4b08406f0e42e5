/**
 * mergekit `nuslerp`: spherical interpolation of two models (or, with a base model, of their task
 * vectors) at t = w₁ / (w₀ + w₁) (0.5 when |w₀ + w₁| < 1e-6). With `nuslerp_flatten: true` (the
 * default) the angle is one per tensor, so the result is one combination whose coefficients come from
 * the moments pass; with `nuslerp_flatten: false` one per row (the last dimension), from per-row
 * moments (`rows`), or with `nuslerp_row_wise: true` one per vector along the first dimension (a
 * column of a matrix). Parameters (mergekit's): `weight` per model (required), `nuslerp_flatten` (true),
 * `nuslerp_row_wise` (false; ignored when flattened, as in mergekit).
 */
import { WeightmixError } from '../../errors';
import { booleanParameter, numberParameter } from '../recipe-params';
import { deltaGramMatrix, gramMatrix } from './gram';
import { baseOf, loneSource, linearOrCopy, MergeMethod, MethodTensor, normalizedWeights, RowMoments, TensorCoefficients } from './method';

const NORM_FLOOR = 1e-7;
const COLINEAR_SIN = 1e-8;

/** mergekit's nuslerp coefficients (on v₀, on v₁) from ‖v₀‖², ‖v₁‖² and ⟨v₀, v₁⟩. */
export function nuslerpCoefficients(t: number, sq0: number, sq1: number, dot: number): [number, number] {
  const cos = dot / (Math.max(Math.sqrt(Math.max(sq0, 0)), NORM_FLOOR) * Math.max(Math.sqrt(Math.max(sq1, 0)), NORM_FLOOR));
  const theta = Math.acos(Math.min(1, Math.max(-1, cos)));
  const sin = Math.sin(theta);
  if (Math.abs(sin) < COLINEAR_SIN) return [1 - t, t];
  return [Math.sin((1 - t) * theta) / sin, Math.sin(t * theta) / sin];
}

/** mergekit's t from the two weights. */
export function nuslerpT(w0: number, w1: number): number {
  // normalizedWeights: w1 / (w0 + w1), also where the sum overflows (1e308 each: 0.5, not 0).
  return Math.abs(w0 + w1) < 1e-6 ? 0.5 : normalizedWeights([w0, w1])![1];
}

function pair(t: Pick<MethodTensor, 'models' | 'base'>): { base: number | null; ends: number[] } {
  const withBase = t.base !== null && t.models.includes(t.base);
  return { base: withBase ? t.base : null, ends: withBase ? t.models.filter((m) => m !== t.base) : t.models };
}

/** Unflattened (one angle per row); a 1-D tensor is one row, the tensor-wise form. */
function rowWise(t: Pick<MethodTensor, 'scope' | 'shape'>): boolean {
  return !booleanParameter(t.scope, 'nuslerp_flatten', true) && t.shape.length >= 2;
}

export const nuslerp: MergeMethod = {
  name: 'nuslerp',
  parameters: ['weight', 'nuslerp_flatten', 'nuslerp_row_wise'],
  modelParameters: ['weight'],
  loneSourceCopied: true,
  validate(recipe) {
    for (const s of recipe.slices) {
      if (loneSource(recipe, s)) continue;
      const n = new Set(s.sources.map((x) => x.model).filter((m) => m !== baseOf(recipe, s))).size;
      if (n !== 2) throw new WeightmixError('InvalidRecipe', `nuslerp merges exactly two models (plus an optional base_model), a slice names ${n}`);
    }
  },
  momentPairs(t) {
    const { base, ends } = pair(t);
    if (ends.length !== 2 || rowWise(t)) return [];
    return base === null
      ? [[ends[0], ends[1]]]
      : [
          [base, ends[0]],
          [base, ends[1]],
          [ends[0], ends[1]],
        ];
  },
  // The flattened form without a base: a linear combination (with a base: the sparse op, as multislerp's).
  linearFromMoments: (t) => pair(t).base === null && !rowWise(t),
  coefficients(t): TensorCoefficients {
    const { base, ends } = pair(t);
    // mergekit returns a tensor only one model holds as it is.
    if (t.models.length === 1) return { op: 'copy', model: t.models[0] };
    if (ends.length !== 2) throw new WeightmixError('InvalidRecipe', `nuslerp: tensor ${t.name} is in ${ends.length} of the models to merge; it needs two`);
    const lambda = nuslerpT(...(ends.map((m) => numberParameter(t.scope, 'weight', m, undefined, t.label(m))) as [number, number]));
    if (rowWise(t)) {
      const pairs: [number, number][] =
        base === null
          ? [[ends[0], ends[1]]]
          : [
              [base, ends[0]],
              [base, ends[1]],
              [ends[0], ends[1]],
            ];
      const weights = (rows: RowMoments) =>
        rows(...pairs[0]).map((_, r) => {
          const g = base === null ? gramMatrix(ends, (a, b) => rows(a, b)[r]) : deltaGramMatrix(base, ends, (a, b) => rows(a, b)[r]);
          return nuslerpCoefficients(lambda, g[0][0], g[1][1], g[0][1]);
        });
      // nuslerp_row_wise: mergekit's dim 0, the vectors along the first dimension (count / shape[0] of them, interleaved).
      const interleaved = booleanParameter(t.scope, 'nuslerp_row_wise', false);
      const rowLength = interleaved ? t.shape.slice(1).reduce((x, y) => x * y, 1) : t.shape[t.shape.length - 1];
      return { op: 'rows', base, models: ends, rowLength, interleaved, pairs, weights };
    }
    const g = base === null ? gramMatrix(ends, t.moments) : deltaGramMatrix(base, ends, t.moments);
    const [c0, c1] = nuslerpCoefficients(lambda, g[0][0], g[1][1], g[0][1]);
    if (base === null) return linearOrCopy(ends, [c0, c1]);
    return {
      op: 'sparse',
      spec: {
        base,
        models: ends.map((m, i) => ({ model: m, weight: i === 0 ? c0 : c1, selection: 'none', density: 1, gamma: 0, rescale: 'none' })),
        consensus: null,
        normalize: false,
        lambda: 1,
        seed: 0,
      },
    };
  },
};
