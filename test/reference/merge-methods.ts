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

/** DARE's mask as weightmix documents it: splitmix64 keyed by (seed, FNV-1a-64 of the tensor name, model), counter = element. */
export function dareMaskRef(seed: number, tensorName: string, model: number, n: number, density: number): boolean[] {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(tensorName, 'utf8')) h = ((h ^ BigInt(b)) * 0x100000001b3n) & M64;
  const g = 0x9e3779b97f4a7c15n;
  const key = mix64((mix64(BigInt(seed) ^ h) + BigInt(model + 1) * g) & M64);
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) out.push(Number(mix64((key + BigInt(i + 1) * g) & M64) >> 11n) / 2 ** 53 < density);
  return out;
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
