/**
 * mergekit's arcee_fusion (merge_methods/arcee_fusion.py), slow and obvious in f64: per row of the
 * last dimension the KL divergence of the softmaxes (plus 1e-8), the importance |δ|·kl rounded to f32,
 * the quantiles at ⌊q·(n − 1)⌋ of all importances by a sort (NaN last), the threshold
 * median + 1.5·IQR in f32 steps, and base + δ where the importance reaches it.
 */

function rowKl(a: number[], b: number[]): number {
  const ma = Math.max(...a.filter((x) => !Number.isNaN(x)));
  const mb = Math.max(...b.filter((x) => !Number.isNaN(x)));
  const sa = a.reduce((s, x) => s + Math.exp(x - ma), 0);
  const sb = b.reduce((s, x) => s + Math.exp(x - mb), 0);
  let kl = 0;
  for (let j = 0; j < a.length; j++) {
    const p = Math.exp(b[j] - mb) / sb + 1e-8;
    const q = Math.exp(a[j] - ma) / sa + 1e-8;
    kl += p * Math.log(p / q);
  }
  return kl;
}

/** The importance of every element (f32 values), rows of `rowLength`. */
export function importanceRef(base: number[], model: number[], rowLength: number): number[] {
  const out: number[] = [];
  for (let r0 = 0; r0 < base.length; r0 += rowLength) {
    const kl = rowKl(base.slice(r0, r0 + rowLength), model.slice(r0, r0 + rowLength));
    for (let i = r0; i < r0 + rowLength; i++) out.push(Math.fround(Math.abs(model[i] - base[i]) * kl));
  }
  return out;
}

/** mergekit's approximate_quantiles on a tensor it does not sample, and calculate_dynamic_threshold. */
export function thresholdRef(importance: number[]): number {
  const sorted = [...importance].sort((x, y) => (Number.isNaN(x) ? (Number.isNaN(y) ? 0 : 1) : Number.isNaN(y) ? -1 : x - y));
  const at = (q: number) => sorted[Math.floor(q * (sorted.length - 1))];
  const f = Math.fround;
  return f(at(0.5) + f(1.5 * f(at(0.75) - at(0.25))));
}

/** The fused tensor for a given threshold. */
export function fusionRef(base: number[], model: number[], importance: number[], threshold: number): number[] {
  return base.map((b, i) => b + (model[i] - b) * (importance[i] >= threshold ? 1 : 0));
}
