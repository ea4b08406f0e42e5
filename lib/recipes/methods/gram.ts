/**
 * Inner products between one tensor's copies in several models, from the engine's f64 moments pass:
 * methods that live on the sphere (karcher, multislerp, nuslerp) need only these to find their coefficients,
 * so their result is one linear combination computed by the engine.
 */
import type { PairMoments } from './method';

/** Every pair (i < j) of `models`, the moments the Gram matrices below read. */
export function allPairs(models: readonly number[]): [number, number][] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < models.length; i++) for (let j = i + 1; j < models.length; j++) pairs.push([models[i], models[j]]);
  return pairs;
}

/** G[i][j] = ⟨x_i, x_j⟩ (needs two or more models: every model's norm comes from one of its pairs). */
export function gramMatrix(models: readonly number[], moments: (a: number, b: number) => PairMoments): number[][] {
  const n = models.length;
  const g = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const m = moments(models[i], models[j]);
      g[i][i] = m.sumSqA;
      g[j][j] = m.sumSqB;
      g[i][j] = g[j][i] = m.sumAB;
    }
  }
  return g;
}

/** G[i][j] = ⟨x_i − b, x_j − b⟩ from ‖x_i − b‖² and ‖x_i − x_j‖² (pairs (base, i) and allPairs(models)). */
export function deltaGramMatrix(base: number, models: readonly number[], moments: (a: number, b: number) => PairMoments): number[][] {
  const n = models.length;
  const sq = models.map((m) => moments(base, m).sumSqDiff);
  const g = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (__, j) => (i === j ? sq[i] : 0)));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) g[i][j] = g[j][i] = (sq[i] + sq[j] - moments(models[i], models[j]).sumSqDiff) / 2;
  }
  return g;
}

/** ⟨Σ c_i x_i, Σ d_j x_j⟩ for coefficient vectors c, d over the Gram matrix's models. */
export function innerProduct(g: number[][], c: readonly number[], d: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < c.length; i++) for (let j = 0; j < d.length; j++) s += c[i] * g[i][j] * d[j];
  return s;
}
