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
