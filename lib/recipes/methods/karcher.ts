/**
 * mergekit `karcher`: the Riemannian (Karcher) mean of the models' tensors on the unit sphere, with
 * equal weights, scaled by their mean norm. mergekit iterates on whole tensors; every iterate is a
 * combination of the unit tensors, so weightmix iterates on the coefficients in f64 over the Gram
 * matrix from the moments pass and the engine computes the one combination. Parameters (mergekit's):
 * `max_iter` (10), `tol` (1e-5).
 */
import { WeightmixError } from '../../errors';
import { numberParameter } from '../recipe-params';
import { allPairs, gramMatrix, innerProduct } from './gram';
import { linearOrCopy, MergeMethod } from './method';

/** The most iterations a recipe may ask for. */
const MAX_ITERATIONS = 10_000;

/** Coefficients w with result = Σ w_i x_i, mergekit's karcher_merge_tensors on the Gram matrix G of the x_i. */
export function karcherWeights(g: number[][], maxIter: number, tol: number): number[] {
  const n = g.length;
  const alphas = new Array<number>(n).fill(1 / n);
  const norms = g.map((row, i) => Math.sqrt(Math.max(row[i], 0)));
  const valid = norms.map((x, i) => i).filter((i) => norms[i] > tol);
  if (valid.length === 0) return new Array<number>(n).fill(0);
  const k = valid.length;
  // Gram matrix of the valid unit tensors.
  const u = valid.map((i) => valid.map((j) => g[i][j] / (norms[i] * norms[j])));
  const alphaSum = valid.reduce((s, i) => s + alphas[i], 0);
  const a = valid.map((i) => alphas[i] / alphaSum);
  let c = a.slice();
  const normU = Math.sqrt(Math.max(innerProduct(u, c, c), 0));
  if (normU < tol) c = c.map((_, i) => (i === 0 ? 1 : 0));
  else c = c.map((x) => x / normU);
  for (let it = 0; it < maxIter; it++) {
    const t = new Array<number>(k).fill(0);
    for (let i = 0; i < k; i++) {
      let dot = 0;
      for (let j = 0; j < k; j++) dot += c[j] * u[j][i];
      dot = Math.min(1, Math.max(-1, dot));
      const theta = Math.acos(dot);
      if (theta < tol) continue;
      const f = (a[i] * theta) / Math.sin(theta);
      t[i] += f;
      for (let j = 0; j < k; j++) t[j] -= f * dot * c[j];
    }
    const normT = Math.sqrt(Math.max(innerProduct(u, t, t), 0));
    if (normT < tol) break;
    c = c.map((x, j) => Math.cos(normT) * x + (Math.sin(normT) * t[j]) / normT);
    const un = Math.sqrt(Math.max(innerProduct(u, c, c), 0));
    if (un > tol) c = c.map((x) => x / un);
  }
  const scale = alphas.reduce((s, al, i) => s + al * norms[i], 0);
  const w = new Array<number>(n).fill(0);
  valid.forEach((i, j) => (w[i] = (scale * c[j]) / norms[i]));
  return w;
}

export const karcher: MergeMethod = {
  name: 'karcher',
  parameters: ['max_iter', 'tol'],
  modelParameters: [],
  momentPairs: (t) => allPairs(t.models),
  linearFromMoments: () => true,
  coefficients(t) {
    if (t.models.length === 1) return { op: 'copy', model: t.models[0] };
    const maxIter = numberParameter(t.scope, 'max_iter', undefined, 10);
    const tol = numberParameter(t.scope, 'tol', undefined, 1e-5);
    // Each tensor's iterations run at once, between two abort checks: a bound keeps Ctrl-C answered (mergekit's default is 10).
    if (!Number.isInteger(maxIter) || maxIter < 0 || maxIter > MAX_ITERATIONS)
      throw new WeightmixError('InvalidRecipe', `karcher: parameter 'max_iter' must be an integer from 0 to ${MAX_ITERATIONS}, got ${maxIter}`);
    return linearOrCopy(t.models, karcherWeights(gramMatrix(t.models, t.moments), maxIter, tol));
  },
};
