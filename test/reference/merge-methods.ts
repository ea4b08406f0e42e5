/**
 * Slow, obvious f64 oracles for the merge methods, written from mergekit's definitions (not from
 * weightmix's code): each takes whole tensors as f64 arrays and returns the merged tensor in f64.
 */

export function linearRef(xs: number[][], w: number[], normalize: boolean): number[] {
  const sum = w.reduce((s, x) => s + x, 0);
  return xs[0].map((_, i) => {
    let acc = 0;
    xs.forEach((x, k) => (acc += w[k] * x[i]));
    return normalize ? acc / sum : acc;
  });
}

/** mergekit's slerp: angle from normalized copies, lerp when |cos| > 0.9995, coefficients on the originals. */
export function slerpRef(t: number, a: number[], b: number[]): { out: number[]; lerped: boolean } {
  const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const na = norm(a) > 1e-8 ? norm(a) : 1;
  const nb = norm(b) > 1e-8 ? norm(b) : 1;
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += (a[i] / na) * (b[i] / nb);
  if (Math.abs(dot) > 0.9995) return { out: a.map((x, i) => (1 - t) * x + t * b[i]), lerped: true };
  const theta0 = Math.acos(dot);
  const s0 = Math.sin((1 - t) * theta0) / Math.sin(theta0);
  const s1 = Math.sin(t * theta0) / Math.sin(theta0);
  return { out: a.map((x, i) => s0 * x + s1 * b[i]), lerped: false };
}

export function taskArithmeticRef(base: number[], models: number[][], w: number[], lambda: number, normalize: boolean): number[] {
  const sum = w.reduce((s, x) => s + x, 0);
  return base.map((b, i) => {
    let delta = 0;
    models.forEach((m, k) => (delta += w[k] * (m[i] - b)));
    if (normalize) delta /= sum;
    return b + lambda * delta;
  });
}

/** Model Stock (Jang et al., 2024) as mergekit computes it (not filter-wise): one angle per tensor. */
export function modelStockRef(base: number[], models: number[][]): number[] {
  const deltas = models.map((m) => m.map((x, i) => x - base[i]));
  const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const cos: number[] = [];
  for (let i = 0; i < deltas.length; i++) {
    for (let j = i + 1; j < deltas.length; j++) {
      let dot = 0;
      for (let k = 0; k < base.length; k++) dot += deltas[i][k] * deltas[j][k];
      cos.push(Math.min(1, Math.max(-1, dot / Math.max(norm(deltas[i]) * norm(deltas[j]), 1e-6))));
    }
  }
  const c = cos.reduce((s, x) => s + x, 0) / cos.length;
  const n = models.length;
  const t = (n * c) / (1 + (n - 1) * c);
  return base.map((b, i) => t * (models.reduce((s, m) => s + m[i], 0) / n) + (1 - t) * b);
}

/** Distance in units of the output dtype's spacing at the reference value. */
export function ulpDistance(out: number, ref: number, dtype: string): number {
  const mant = dtype === 'BF16' ? 7 : dtype === 'F16' ? 10 : 23;
  const minExp = dtype === 'F16' ? -14 : -126;
  const e = Math.max(Math.floor(Math.log2(Math.abs(ref) || 2 ** minExp)), minExp);
  return Math.abs(out - ref) / 2 ** (e - mant);
}

// ---- sparsified task arithmetic (TIES, DARE, breadcrumbs), from mergekit's generalized_task_arithmetic

/** mergekit's counts: keep int(density·n) after dropping int(gamma·n) of the largest (shrunk to fit). */
export function magnitudeCountsRef(n: number, density: number, gamma: number): { top: number; keep: number } {
  if (density >= 1) return { top: 0, keep: n };
  const keep = Math.trunc(density * n);
  const top = Math.min(Math.trunc(gamma * n), n - keep);
  return { top, keep };
}

/** Sort-based selection: rank by |δ| descending, equal magnitudes by element index ascending; keep ranks [top, top + keep). */
export function magnitudeMaskRef(delta: number[], top: number, keep: number): boolean[] {
  const order = delta.map((_, i) => i).sort((i, j) => Math.abs(delta[j]) - Math.abs(delta[i]) || i - j);
  const mask = new Array<boolean>(delta.length).fill(false);
  for (let r = top; r < top + keep && r < order.length; r++) mask[order[r]] = true;
  return mask;
}

const M64 = (1n << 64n) - 1n;
function mix64(x: bigint): bigint {
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M64;
  return x ^ (x >> 31n);
}

/** The random masks' uniform draws as weightmix documents them: splitmix64 keyed by (seed, FNV-1a-64 of the tensor name, model), counter = element; u(i) in [0, 1). */
export function maskUniformRef(seed: number, tensorName: string, model: number): (i: number) => number {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(tensorName, 'utf8')) h = ((h ^ BigInt(b)) * 0x100000001b3n) & M64;
  const g = 0x9e3779b97f4a7c15n;
  const key = mix64((mix64(BigInt(seed) ^ h) + BigInt(model + 1) * g) & M64);
  return (i) => Number(mix64((key + BigInt(i + 1) * g) & M64) >> 11n) / 2 ** 53;
}

/** DARE's mask: element i kept when u(i) < density. */
export function dareMaskRef(seed: number, tensorName: string, model: number, n: number, density: number): boolean[] {
  const u = maskUniformRef(seed, tensorName, model);
  return Array.from({ length: n }, (_, i) => u(i) < density);
}

/** mergekit's rescaled_masked_tensor with the L1 norm. */
export function l1ScaleRef(delta: number[], keep: boolean[]): number {
  let before = 0;
  let after = 0;
  delta.forEach((d, i) => {
    before += Math.abs(d);
    if (keep[i]) after += Math.abs(d);
  });
  return before < 1e-7 || after < 1e-7 ? 1 : before / after;
}

export interface SparseRefModel {
  /** f32 task vector (x − base rounded to f32, as the engine computes it). */
  delta: number[];
  weight: number;
  keep: boolean[];
  scale: number;
}

/** GTATask.execute: weighted sparse deltas, optional sign consensus (sum or count), disjoint mean, λ. */
export function sparseMergeRef(base: number[], models: SparseRefModel[], consensus: 'sum' | 'count' | null, normalize: boolean, lambda: number): number[] {
  return base.map((b, i) => {
    const v = models.map((m) => m.weight * (m.keep[i] ? m.delta[i] * m.scale : 0));
    let mask = v.map(() => true);
    if (consensus) {
      const s = consensus === 'sum' ? v.reduce((a, x) => a + x, 0) : v.reduce((a, x) => a + Math.sign(x), 0);
      const majority = s >= 0 ? 1 : -1;
      mask = v.map((x) => Math.sign(x) === majority);
    }
    let mixed = 0;
    let div = 0;
    v.forEach((x, k) => {
      if (!mask[k]) return;
      mixed += x;
      div += models[k].weight;
    });
    if (consensus ? div === 0 : Math.abs(div) < 1e-8) div = 1;
    if (normalize) mixed /= div;
    return b + lambda * mixed;
  });
}

// ---- spherical means (mergekit's karcher and multislerp), on whole tensors as mergekit computes them

const dotRef = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
const normRef = (a: number[]) => Math.sqrt(dotRef(a, a));

/** mergekit's karcher_merge_tensors with equal weights, in f64. */
export function karcherRef(tensors: number[][], maxIter = 10, tol = 1e-5): number[] {
  if (tensors.length === 1) return tensors[0].slice();
  const alphas = tensors.map(() => 1 / tensors.length);
  const norms = tensors.map(normRef);
  const units = tensors.map((t, i) => (norms[i] === 0 ? t.map(() => 0) : t.map((x) => x / norms[i])));
  const valid = norms.map((_, i) => i).filter((i) => norms[i] > tol);
  if (valid.length === 0) return tensors[0].map(() => 0);
  const alphaSum = valid.reduce((s, i) => s + alphas[i], 0);
  const a = valid.map((i) => alphas[i] / alphaSum);
  const us = valid.map((i) => units[i]);
  let u = us[0].map((_, k) => us.reduce((s, ui, j) => s + a[j] * ui[k], 0));
  const nu = normRef(u);
  u = nu < tol ? us[0].slice() : u.map((x) => x / nu);
  for (let it = 0; it < maxIter; it++) {
    const T = u.map(() => 0);
    us.forEach((ui, j) => {
      const dot = Math.min(1, Math.max(-1, dotRef(u, ui)));
      const theta = Math.acos(dot);
      if (theta < tol) return;
      for (let k = 0; k < T.length; k++) T[k] += a[j] * (theta / Math.sin(theta)) * (ui[k] - dot * u[k]);
    });
    const nT = normRef(T);
    if (nT < tol) break;
    u = u.map((x, k) => Math.cos(nT) * x + Math.sin(nT) * (T[k] / nT));
    const un = normRef(u);
    if (un > tol) u = u.map((x) => x / un);
  }
  const s = alphas.reduce((acc, al, i) => acc + al * norms[i], 0);
  return u.map((x) => s * x);
}

/** mergekit's multislerp in f64: tangent-space barycentre of the (task-vector, with a base) tensors. */
export function multislerpRef(tensors: number[][], weight: number[], base: number[] | null, normalize = true, eps = 1e-8): number[] {
  if (tensors.length === 1) return tensors[0].slice();
  const xs = base ? tensors.map((t) => t.map((x, k) => x - base[k])) : tensors;
  const sum = weight.reduce((s, x) => s + x, 0);
  const w = normalize ? weight.map((x) => x / sum) : weight;
  const norms = xs.map(normRef);
  const units = xs.map((x, i) => x.map((v) => v / (norms[i] + eps)));
  let mean = units[0].map((_, k) => units.reduce((s, ui, i) => s + ui[k] * w[i], 0));
  const mn = normRef(mean);
  if (mn < eps) throw new Error('multislerpRef: zero mean');
  mean = mean.map((x) => x / mn);
  const dots = units.map((ui) => dotRef(ui, mean));
  const tangent = mean.map((_, k) => units.reduce((s, ui, i) => s + (ui[k] - dots[i] * mean[k]) * w[i], 0));
  const tn = normRef(tangent) + eps;
  const avg = norms.reduce((s, x, i) => s + x * w[i], 0);
  return mean.map((m, k) => (m * Math.cos(tn) + tangent[k] * (Math.sin(tn) / tn)) * avg + (base ? base[k] : 0));
}

/**
 * mergekit's nuslerp in f64 on whole tensors (`nuslerp_flatten: true`): t = w₁ / (w₀ + w₁), the angle
 * between the normalized (task-vector, with a base) tensors, lerp when |sin θ| < 1e-8.
 */
export function nuslerpRef(v0: number[], v1: number[], weights: [number, number], base: number[] | null): number[] {
  const t = Math.abs(weights[0] + weights[1]) < 1e-6 ? 0.5 : weights[1] / (weights[0] + weights[1]);
  const a = base ? v0.map((x, k) => x - base[k]) : v0;
  const b = base ? v1.map((x, k) => x - base[k]) : v1;
  const [na, nb] = [Math.max(normRef(a), 1e-7), Math.max(normRef(b), 1e-7)];
  const ua = a.map((x) => x / na);
  const ub = b.map((x) => x / nb);
  const theta = Math.acos(Math.min(1, Math.max(-1, dotRef(ua, ub))));
  const sin = Math.sin(theta);
  const out =
    Math.abs(sin) < 1e-8 ? a.map((x, k) => (1 - t) * x + t * b[k]) : a.map((x, k) => (Math.sin((1 - t) * theta) * x + Math.sin(t * theta) * b[k]) / sin);
  return base ? out.map((x, k) => x + base[k]) : out;
}
