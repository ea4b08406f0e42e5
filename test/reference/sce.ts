/**
 * mergekit's sce (merge_methods/sce.py), slow and obvious in f64: the variance of every element
 * across the task vectors (rounded to f32, as mergekit's f32 variance), the top
 * trunc(nonzero · select_topk) of them by a sort (equal variances: the lower index first; NaN above
 * everything), the weights from mean(t²), the election on the unweighted sum, the weighted mean.
 */

/** Variances (f32) of every element across the task vectors t[k][i]. */
export function sceVariancesRef(t: number[][]): number[] {
  const m = t.length;
  return t[0].map((_, i) => {
    let mean = 0;
    for (let k = 0; k < m; k++) mean += t[k][i];
    mean /= m;
    let v = 0;
    for (let k = 0; k < m; k++) {
      const d = t[k][i] - mean;
      v += d * d;
    }
    return Math.fround(v / m);
  });
}

/** mergekit's sce_mask: the selected elements. */
export function sceMaskRef(t: number[][], selectTopk: number): boolean[] {
  const n = t[0].length;
  if (selectTopk >= 1) return new Array<boolean>(n).fill(true);
  const v = sceVariancesRef(t);
  const nonzero = v.filter((x) => x !== 0).length;
  const k = selectTopk <= 0 ? 0 : Math.trunc(nonzero * selectTopk);
  const rank = (x: number) => (Number.isNaN(x) ? Infinity : x);
  const order = v
    .map((_, i) => i)
    .sort((i, j) => (Number.isNaN(v[i]) && Number.isNaN(v[j]) ? 0 : Number.isNaN(v[j]) ? 1 : Number.isNaN(v[i]) ? -1 : rank(v[j]) - rank(v[i])) || i - j);
  const keep = new Array<boolean>(n).fill(false);
  for (let r = 0; r < k; r++) keep[order[r]] = true;
  return keep;
}

/** The selected task vectors (t · mask) and each model's Σ t² over the finite ones (mergekit's sum would be NaN). */
export function sceSelectedRef(base: number[], models: number[][], selectTopk: number): { t: number[][]; sumSquares: number[] } {
  const raw = models.map((x) => x.map((v, i) => v - base[i]));
  const keep = sceMaskRef(raw, selectTopk);
  const t = raw.map((tk) => tk.map((v, i) => v * (keep[i] ? 1 : 0)));
  return { t, sumSquares: t.map((tk) => tk.reduce((s, v) => (Number.isFinite(v) ? s + v * v : s), 0)) };
}

/** mergekit's sce_weight. */
export function sceWeightsRef(sumSquares: number[], n: number): number[] {
  const means = sumSquares.map((s) => s / n);
  const total = means.reduce((a, b) => a + b, 0);
  return Math.abs(total) < 1e-6 ? means.map(() => 1 / means.length) : means.map((x) => x / total);
}

/** The merge with the given weights: election on Σ t, then Σ t·(w·e) / max(Σ w·e, 1e-6) added to the base. */
export function sceMergeRef(base: number[], t: number[][], weights: number[]): number[] {
  return base.map((b, i) => {
    const s = t.reduce((a, tk) => a + tk[i], 0);
    const majority = s >= 0 ? 1 : -1;
    let num = 0;
    let den = 0;
    t.forEach((tk, k) => {
      const sign = tk[i] > 0 ? 1 : tk[i] < 0 ? -1 : 0;
      const ew = weights[k] * (sign === majority ? 1 : 0);
      num += tk[i] * ew;
      den += ew;
    });
    return b + num / Math.max(den, 1e-6);
  });
}
