/**
 * Slow, obvious f64 oracles for mergekit's per-element methods, written from mergekit's tensor
 * expressions (mergekit/merge_methods/nearswap.py, ram.py), not from weightmix's kernels: each takes
 * whole tensors as numbers and returns the merged tensor in f64 (the engine rounds it once).
 */

/** nearswap: w = clamp(t / clamp(|a − b|, min 1e-6), 0, 1); w·b + (1 − w)·a, with torch's NaN-keeping clamps. */
export function nearswapRef(base: number[], model: number[], t: number): number[] {
  const clamp = (x: number, lo: number, hi: number) => (Number.isNaN(x) ? x : Math.min(hi, Math.max(lo, x)));
  return base.map((a, i) => {
    const b = model[i];
    const absdiff = Math.abs(a - b);
    const w = clamp(t / (Number.isNaN(absdiff) ? absdiff : Math.max(absdiff, 1e-6)), 0, 1);
    return w * b + (1 - w) * a;
  });
}

/** RAM's masks: nonzero[k][i] = |fl32(x_k − base)| > fl32(epsilon) (mergekit's f32 task vectors), and the counts per element. */
export function ramMasksRef(base: number[], models: number[][], epsilon: number): { nonzero: boolean[][]; counts: number[] } {
  const eps = Math.fround(epsilon);
  const nonzero = models.map((m) => m.map((x, i) => Math.abs(Math.fround(x - base[i])) > eps));
  const counts = base.map((_, i) => nonzero.reduce((c, nz) => c + (nz[i] ? 1 : 0), 0));
  return { nonzero, counts };
}

/** ramplus_tl's λ per model: 1 + r·clamp(shared / max(unique, epsilon), 0, alpha) over the whole tensor. */
export function ramPlusLambdaRef(base: number[], models: number[][], epsilon: number, r: number, alpha: number): number[] {
  const { nonzero, counts } = ramMasksRef(base, models, epsilon);
  return nonzero.map((nz) => {
    const shared = nz.filter((x, i) => x && counts[i] > 1).length;
    const unique = nz.filter((x, i) => x && counts[i] === 1).length;
    return 1 + r * Math.min(alpha, Math.max(0, shared / Math.max(unique, epsilon)));
  });
}

/**
 * RAM: base + Σ_k (tv_k·m_k·unique·λ_k + tv_k·m_k·overlap / max(count, 1)) with tv_k = x_k − base,
 * unique = (count == 1), overlap = (count > 1), the masks as 0/1 factors (so NaN or Inf times a 0 mask is NaN).
 */
export function ramRef(base: number[], models: number[][], epsilon: number, lambda: number[] = models.map(() => 1)): number[] {
  const { nonzero, counts } = ramMasksRef(base, models, epsilon);
  return base.map((b, i) => {
    const unique = counts[i] === 1 ? 1 : 0;
    const overlap = counts[i] > 1 ? 1 : 0;
    let merged = 0;
    models.forEach((m, k) => {
      const tvz = (m[i] - b) * (nonzero[k][i] ? 1 : 0);
      merged += tvz * unique * lambda[k] + (tvz * overlap) / Math.max(counts[i], 1);
    });
    return b + merged;
  });
}
