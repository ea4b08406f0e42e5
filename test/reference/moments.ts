/**
 * The f64 reference for `weightmix diff`, written apart from the native engine and lib/: element
 * decoding from the bit fields by arithmetic, and sums in plain element order with Neumaier
 * compensation (the engine sums 8 lanes per block, then blocks), so agreement is not an accident
 * of a shared summation order.
 */

export type ReferenceDtype = 'F32' | 'F16' | 'BF16';

const FORMATS: Record<ReferenceDtype, { bytes: number; expBits: number; mantBits: number }> = {
  F32: { bytes: 4, expBits: 8, mantBits: 23 },
  F16: { bytes: 2, expBits: 5, mantBits: 10 },
  BF16: { bytes: 2, expBits: 8, mantBits: 7 },
};

/** 2^k for every exponent a field of these formats can produce (k from −160 to 160). */
const POW2 = Array.from({ length: 321 }, (_, i) => 2 ** (i - 160));
const pow2 = (k: number) => POW2[k + 160];

/** The value of a `dtype` bit pattern, from its sign, exponent and mantissa fields. */
export function decodeBits(bits: number, dtype: ReferenceDtype): number {
  const { expBits, mantBits } = FORMATS[dtype];
  const mantissa = bits & ((1 << mantBits) - 1);
  const exponent = (bits >>> mantBits) & ((1 << expBits) - 1);
  const negative = (bits >>> (expBits + mantBits)) & 1;
  const bias = (1 << (expBits - 1)) - 1;
  let magnitude: number;
  if (exponent === (1 << expBits) - 1) magnitude = mantissa === 0 ? Infinity : NaN;
  else if (exponent === 0)
    magnitude = mantissa * pow2(1 - bias - mantBits); // zero or subnormal
  else magnitude = (1 + mantissa * pow2(-mantBits)) * pow2(exponent - bias);
  return negative ? -magnitude : magnitude;
}

// 16-bit formats: every pattern decoded once, by decodeBits.
const TABLES16 = new Map<ReferenceDtype, Float64Array>();
function table16(dtype: ReferenceDtype): Float64Array {
  let t = TABLES16.get(dtype);
  if (!t) {
    t = new Float64Array(1 << 16);
    for (let bits = 0; bits < 1 << 16; bits++) t[bits] = decodeBits(bits, dtype);
    TABLES16.set(dtype, t);
  }
  return t;
}

/** The values of a little-endian `dtype` buffer. */
export function decodeAll(data: Buffer, dtype: ReferenceDtype): Float64Array {
  const n = data.length / FORMATS[dtype].bytes;
  const out = new Float64Array(n);
  if (FORMATS[dtype].bytes === 4) {
    for (let i = 0; i < n; i++) out[i] = decodeBits(data.readUInt32LE(4 * i), dtype);
  } else {
    const table = table16(dtype);
    for (let i = 0; i < n; i++) out[i] = table[data.readUInt16LE(2 * i)];
  }
  return out;
}

export interface ReferenceMoments {
  elements: number;
  sumSqA: number;
  sumSqB: number;
  sumAB: number;
  sumSqDiff: number;
  sumAbsA: number;
  sumAbsB: number;
  sumAbsDiff: number;
  maxAbsDiff: number;
  nonFinite: number;
}

/** Neumaier's compensated sum: accurate to about one rounding whatever the order of the terms. */
class CompensatedSum {
  private sum = 0;
  private carry = 0;
  add(x: number): void {
    const t = this.sum + x;
    this.carry += Math.abs(this.sum) >= Math.abs(x) ? this.sum - t + x : x - t + this.sum;
    this.sum = t;
  }
  value(): number {
    return this.sum + this.carry;
  }
}

/**
 * Σa², Σb², Σab, Σ(b−a)², Σ|a|, Σ|b|, Σ|b−a|, max|b−a| over the pairs where both are finite, and the count of the others.
 * Each term is formed as the engine's contract says (a·a and a·b exact in f64, b−a rounded, then squared).
 */
export function referenceMoments(a: Buffer, dtypeA: ReferenceDtype, b: Buffer, dtypeB: ReferenceDtype): ReferenceMoments {
  const xs = decodeAll(a, dtypeA);
  const ys = decodeAll(b, dtypeB);
  const n = xs.length;
  if (ys.length !== n) throw new Error(`reference: ${n} elements in a but ${ys.length} in b`);
  const aa = new CompensatedSum();
  const bb = new CompensatedSum();
  const ab = new CompensatedSum();
  const dd = new CompensatedSum();
  const absA = new CompensatedSum();
  const absB = new CompensatedSum();
  const absD = new CompensatedSum();
  let maxAbsDiff = 0;
  let nonFinite = 0;
  for (let i = 0; i < n; i++) {
    const x = xs[i];
    const y = ys[i];
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      nonFinite++;
      continue;
    }
    aa.add(x * x);
    bb.add(y * y);
    ab.add(x * y);
    const d = y - x;
    dd.add(d * d);
    absA.add(Math.abs(x));
    absB.add(Math.abs(y));
    absD.add(Math.abs(d));
    maxAbsDiff = Math.max(maxAbsDiff, Math.abs(d));
  }
  return {
    elements: n,
    sumSqA: aa.value(),
    sumSqB: bb.value(),
    sumAB: ab.value(),
    sumSqDiff: dd.value(),
    sumAbsA: absA.value(),
    sumAbsB: absB.value(),
    sumAbsDiff: absD.value(),
    maxAbsDiff,
    nonFinite,
  };
}

/** Adds moments (for aggregates): compensated sums of the parts, max of maxima. */
export function sumReferenceMoments(parts: readonly ReferenceMoments[]): ReferenceMoments {
  const keys = ['sumSqA', 'sumSqB', 'sumAB', 'sumSqDiff', 'sumAbsA', 'sumAbsB', 'sumAbsDiff'] as const;
  const sums = keys.map(() => new CompensatedSum());
  let elements = 0;
  let nonFinite = 0;
  let maxAbsDiff = 0;
  for (const p of parts) {
    keys.forEach((k, i) => sums[i].add(p[k]));
    elements += p.elements;
    nonFinite += p.nonFinite;
    maxAbsDiff = Math.max(maxAbsDiff, p.maxAbsDiff);
  }
  const [sumSqA, sumSqB, sumAB, sumSqDiff, sumAbsA, sumAbsB, sumAbsDiff] = sums.map((s) => s.value());
  return { elements, sumSqA, sumSqB, sumAB, sumSqDiff, sumAbsA, sumAbsB, sumAbsDiff, maxAbsDiff, nonFinite };
}

/** ‖B−A‖/‖A‖, cosine and Σ|b−a|/(Σ|a|+Σ|b|) as `weightmix diff` defines them, edge cases included. */
export function referenceFigures(m: ReferenceMoments): { relDistance: number | null; cosine: number | null; l1Ratio: number | null } {
  if (m.elements === m.nonFinite) return { relDistance: null, cosine: null, l1Ratio: null };
  const relDistance = m.sumSqA > 0 ? Math.sqrt(m.sumSqDiff) / Math.sqrt(m.sumSqA) : m.sumSqDiff === 0 ? 0 : null;
  let cosine: number | null;
  if (m.sumSqA > 0 && m.sumSqB > 0) cosine = Math.max(-1, Math.min(1, m.sumAB / (Math.sqrt(m.sumSqA) * Math.sqrt(m.sumSqB))));
  else cosine = m.sumSqA === 0 && m.sumSqB === 0 ? 1 : null;
  const l1Ratio = m.sumAbsA + m.sumAbsB > 0 ? m.sumAbsDiff / (m.sumAbsA + m.sumAbsB) : 0;
  return { relDistance, cosine, l1Ratio };
}
