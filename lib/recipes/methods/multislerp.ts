/**
 * mergekit `multislerp`: barycentric interpolation on the sphere. The (task-vector, with a base model)
 * tensors are projected to the tangent space at their weighted mean direction, mixed there, mapped
 * back and scaled by the weighted mean norm. Every step is a combination of the inputs, so weightmix
 * finds the coefficients in f64 from the Gram matrix of the moments pass; the engine computes one
 * combination (with a base: base + Σ r_i·(θ_i − base) on the sparse op's f64 delta form).
 * Parameters (mergekit's): `weight` per model (required), `normalize_weights` (true), `eps` (1e-8).
 */
import { WeightmixError } from '../../errors';
import { booleanParameter, numberParameter } from '../recipe-params';
import { allPairs, deltaGramMatrix, gramMatrix, innerProduct } from './gram';
import { linearOrCopy, MergeMethod, normalizedWeights, TensorCoefficients } from './method';

/** Coefficients r with result = Σ r_i x_i (x_i: the tensors, or task vectors with a base), mergekit's multislerp on G. */
export function multislerpWeights(g: number[][], weights: number[], normalize: boolean, eps: number, name: string): number[] {
  const n = g.length;
  const w = normalize ? normalizedWeights(weights) : weights;
  // mergekit divides by the 0 sum, and writes NaN everywhere.
  if (w === null)
    throw new WeightmixError('InvalidRecipe', `multislerp: the weights of tensor ${name} sum to 0 and cannot be normalized (set normalize_weights: false)`);
  const norms = g.map((row, i) => Math.sqrt(Math.max(row[i], 0)));
  let mean = w.map((x, i) => x / (norms[i] + eps));
  const meanNorm = Math.sqrt(Math.max(innerProduct(g, mean, mean), 0));
  if (meanNorm < eps) {
    if (n === 2) return w.slice();
    throw new WeightmixError(
      'InvalidRecipe',
      `multislerp: the weighted sum of the unit tensors of ${name} is zero (antipodal tensors with balancing weights), as mergekit refuses it; change the weights`,
    );
  }
  mean = mean.map((x) => x / meanNorm);
  const tangent = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    let dot = 0;
    for (let j = 0; j < n; j++) dot += g[i][j] * mean[j];
    dot /= norms[i] + eps;
    tangent[i] += w[i] / (norms[i] + eps);
    for (let j = 0; j < n; j++) tangent[j] -= w[i] * dot * mean[j];
  }
  const tn = Math.sqrt(Math.max(innerProduct(g, tangent, tangent), 0)) + eps;
  const avgNorm = norms.reduce((s, x, i) => s + x * w[i], 0);
  return mean.map((m, i) => (m * Math.cos(tn) + (tangent[i] * Math.sin(tn)) / tn) * avgNorm);
}

export const multislerp: MergeMethod = {
  name: 'multislerp',
  parameters: ['weight', 'normalize_weights', 'eps'],
  modelParameters: ['weight'],
  momentPairs(t) {
    const others = t.base !== null && t.models.includes(t.base) ? t.models.filter((m) => m !== t.base) : t.models;
    return [...(others === t.models ? [] : others.map((m): [number, number] => [t.base!, m])), ...allPairs(others)];
  },
  // With a base the result is base + Σ r·δ in f64 (the sparse op), which the write pass cannot take from a callback yet.
  linearFromMoments: (t) => !(t.base !== null && t.models.includes(t.base)),
  coefficients(t): TensorCoefficients {
    const withBase = t.base !== null && t.models.includes(t.base);
    const others = withBase ? t.models.filter((m) => m !== t.base) : t.models;
    // mergekit returns a lone tensor as it is (with a base too: the model's, not base + its task vector).
    if (others.length <= 1) return { op: 'copy', model: others[0] ?? t.base! };
    const weights = others.map((m) => numberParameter(t.scope, 'weight', m, undefined, t.label(m)));
    const normalize = booleanParameter(t.scope, 'normalize_weights', true);
    const eps = numberParameter(t.scope, 'eps', undefined, 1e-8);
    const g = withBase ? deltaGramMatrix(t.base!, others, t.moments) : gramMatrix(others, t.moments);
    const r = multislerpWeights(g, weights, normalize, eps, t.name);
    if (!withBase) return linearOrCopy(others, r);
    return {
      op: 'sparse',
      spec: {
        base: t.base!,
        models: others.map((m, i) => ({ model: m, weight: r[i], selection: 'none', density: 1, gamma: 0, rescale: 'none' })),
        consensus: null,
        normalize: false,
        lambda: 1,
        seed: 0,
      },
    };
  },
};
