/**
 * Slow, obvious oracles for the native kernels, written from the numerics contract and not from the
 * C++: values are decoded with powers of two, rounded by comparing with the two neighbours, and the
 * f32 fused multiply-add is computed exactly. Tensors are arrays of raw bit patterns (numbers), so
 * that NaN payloads and signed zeros survive.
 */

// Built-ins bound once: jest runs tests inside a vm context, where every global lookup is slow.
const { abs, floor, fround, log2, max, sign } = Math;
const { isFinite: isFiniteNumber, isNaN: isNaNNumber } = Number;
const sameValue = Object.is;
const INFINITY = Number.POSITIVE_INFINITY;
const NAN = Number.NaN;

export type Dtype = 'F32' | 'F16' | 'BF16';
export const DTYPES: readonly Dtype[] = ['F32', 'F16', 'BF16'];
export const DTYPE_BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** The NaN that arithmetic results become (PyTorch's canonical quiet NaN). */
export const CANONICAL_NAN: Record<Dtype, number> = { F32: 0x7fc00000, F16: 0x7e00, BF16: 0x7fc0 };

const scratch = new DataView(new ArrayBuffer(4));

// Powers of two from 2^-1074 to 2^1023, built by exact doubling and halving (Math.pow is slow here).
const POW2_BIAS = 1074;
const POW2_TABLE: number[] = (() => {
  const t = new Array<number>(POW2_BIAS + 1024);
  t[POW2_BIAS] = 1;
  for (let e = 1; e <= 1023; e++) t[POW2_BIAS + e] = t[POW2_BIAS + e - 1] * 2;
  for (let e = -1; e >= -POW2_BIAS; e--) t[POW2_BIAS + e] = t[POW2_BIAS + e + 1] / 2;
  return t;
})();

function pow2(e: number): number {
  if (e > 1023) return INFINITY;
  if (e < -POW2_BIAS) return 0;
  return POW2_TABLE[POW2_BIAS + e];
}

/** The number an f32 bit pattern stands for (NaN for every NaN pattern). */
export function f32FromBits(bits: number): number {
  scratch.setUint32(0, bits >>> 0);
  return scratch.getFloat32(0);
}

/** The bit pattern of an f32 value (the caller handles NaN). */
export function f32ToBits(value: number): number {
  scratch.setFloat32(0, value);
  return scratch.getUint32(0);
}

// ---- the formats ---------------------------------------------------------------------------------

interface Format {
  bits: number; // total width
  mantissaBits: number; // stored fraction bits
  exponentBits: number;
}

const FORMATS: Record<Dtype, Format> = {
  F32: { bits: 32, mantissaBits: 23, exponentBits: 8 },
  F16: { bits: 16, mantissaBits: 10, exponentBits: 5 },
  BF16: { bits: 16, mantissaBits: 7, exponentBits: 8 },
};

function fields(t: Dtype, bits: number) {
  const f = FORMATS[t];
  const sign = floor(bits / pow2(f.bits - 1)) & 1;
  const expField = floor(bits / pow2(f.mantissaBits)) & (pow2(f.exponentBits) - 1);
  const mant = bits % pow2(f.mantissaBits);
  return { f, sign, expField, mant, maxExpField: pow2(f.exponentBits) - 1, bias: pow2(f.exponentBits - 1) - 1 };
}

export function isNaNBits(t: Dtype, bits: number): boolean {
  const { expField, mant, maxExpField } = fields(t, bits);
  return expField === maxExpField && mant !== 0;
}

/** Exact value of a pattern: (-1)^s · 2^(e−bias) · (1 + m/2^M), or the subnormal 2^(1−bias−M) · m. */
export function decode(t: Dtype, bits: number): number {
  const { f, sign, expField, mant, maxExpField, bias } = fields(t, bits);
  const s = sign ? -1 : 1;
  if (expField === maxExpField) return mant === 0 ? s * INFINITY : NAN;
  if (expField === 0) return s * mant * pow2(1 - bias - f.mantissaBits);
  return s * (1 + mant / pow2(f.mantissaBits)) * pow2(expField - bias);
}

/** Round a finite or infinite number to the nearest value of `t`, ties to the even significand. */
export function roundToDtype(t: Dtype, v: number): number {
  if (isNaNNumber(v) || v === 0 || !isFiniteNumber(v)) return v;
  const f = FORMATS[t];
  const bias = pow2(f.exponentBits - 1) - 1;
  const a = abs(v);
  let e = floor(log2(a));
  while (pow2(e) > a) e--;
  while (pow2(e + 1) <= a) e++;
  e = max(e, 1 - bias); // below the normal range the spacing stays that of the smallest binade
  const quantum = pow2(e - f.mantissaBits);
  const m = a / quantum; // exact: a scaled by a power of two
  const below = floor(m);
  const frac = m - below;
  const r = frac > 0.5 || (frac === 0.5 && below % 2 === 1) ? below + 1 : below;
  const maxFinite = (2 - pow2(-f.mantissaBits)) * pow2(bias);
  const rounded = r * quantum;
  const out = rounded > maxFinite ? INFINITY : rounded;
  return v < 0 ? -out : out;
}

/** The pattern of a value already representable in `t` (no NaN). */
function patternOf(t: Dtype, v: number): number {
  const f = FORMATS[t];
  const bias = pow2(f.exponentBits - 1) - 1;
  const signBit = v < 0 || sameValue(v, -0) ? pow2(f.bits - 1) : 0;
  const a = abs(v);
  const maxExpField = pow2(f.exponentBits) - 1;
  if (a === INFINITY) return signBit + maxExpField * pow2(f.mantissaBits);
  if (a < pow2(1 - bias)) return signBit + a / pow2(1 - bias - f.mantissaBits); // subnormal or zero
  let e = floor(log2(a));
  while (pow2(e) > a) e--;
  while (pow2(e + 1) <= a) e++;
  const mant = (a / pow2(e) - 1) * pow2(f.mantissaBits);
  return signBit + (e + bias) * pow2(f.mantissaBits) + mant;
}

/** Round-to-nearest-even encoding of a number (NaN → the dtype's canonical NaN). */
export function encode(t: Dtype, v: number): number {
  if (isNaNNumber(v)) return CANONICAL_NAN[t];
  return patternOf(t, roundToDtype(t, v));
}

function asDtype(dtype: string): Dtype {
  if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16') return dtype;
  throw new Error(`no float numerics for dtype ${dtype}`);
}

/** decode() for callers holding a safetensors dtype name (F32, F16 or BF16). */
export function decodeElement(bits: number, dtype: string): number {
  return decode(asDtype(dtype), bits);
}

/** encode() for callers holding a safetensors dtype name; NaN becomes the canonical NaN. */
export function encodeElement(value: number, dtype: string): number {
  return encode(asDtype(dtype), value);
}

/**
 * Element conversion with PyTorch's c10 NaN rules: f32 → bf16 NaN is 0x7FC0; f32 → f16 NaN keeps
 * its sign (| 0x7E00); f16 → f32 quiets a NaN and keeps its payload; bf16 → f32 is exact.
 */
export function convertBits(ts: Dtype, to: Dtype, bits: number): number {
  if (ts === to) return bits;
  if (isNaNBits(ts, bits)) {
    const { sign, mant } = fields(ts, bits);
    if (to === 'BF16') return 0x7fc0;
    if (to === 'F16') return (sign ? 0x8000 : 0) + 0x7e00;
    // to F32
    if (ts === 'BF16') return bits * 0x10000;
    return (sign ? 0x80000000 : 0) + 0x7f800000 + (mant | 0x200) * pow2(13); // quieted, payload kept
  }
  return encode(to, decode(ts, bits));
}

// ---- f32 arithmetic ----------------------------------------------------------------------------------

const F32_MAX = fround(3.4028234663852886e38);
const F32_OVERFLOW_TIE = pow2(128) - pow2(103); // halfway between F32_MAX and 2^128

/** The f32 next to r (an f32) in the direction of s. */
function nextF32Toward(r: number, s: number): number {
  if (r === 0) return s > 0 ? pow2(-149) : -pow2(-149);
  const bits = f32ToBits(r);
  const awayFromZero = s > r === r > 0;
  return f32FromBits(awayFromZero ? bits + 1 : bits - 1);
}

/**
 * fma(a, b, c) on f32 values with one rounding. a·b is exact in f64 (24 + 24 bits); p + c is split
 * exactly into s + err (TwoSum). Rounding s to f32 is right unless s sits exactly halfway between
 * two f32 values while err ≠ 0; then the true sum lies on err's side of the tie.
 */
export function fmaF32(a: number, b: number, c: number): number {
  if (!isFiniteNumber(a) || !isFiniteNumber(b) || !isFiniteNumber(c)) return fround(a * b + c);
  const p = a * b;
  const s = p + c;
  const bv = s - p;
  const err = p - (s - bv) + (c - bv);
  const r = fround(s);
  if (err === 0 || r === s) return r;
  if (!isFiniteNumber(r)) {
    const inward = s > 0 ? err < 0 : err > 0;
    return abs(s) === F32_OVERFLOW_TIE && inward ? sign(s) * F32_MAX : r;
  }
  const other = nextF32Toward(r, s);
  if (s !== (r + other) / 2) return r;
  return err > 0 === other > r ? other : r;
}

export const addF32 = (x: number, y: number) => fround(x + y);
export const subF32 = (x: number, y: number) => fround(x - y);
export const mulF32 = (x: number, y: number) => fround(x * y);

// ---- the kernels ---------------------------------------------------------------------------------------

export interface Tensor {
  dtype: Dtype;
  bits: number[];
}

function values(t: Tensor): number[] {
  return t.bits.map((b) => decode(t.dtype, b));
}

function arithmeticResult(to: Dtype, v: number): number {
  return isNaNNumber(v) ? CANONICAL_NAN[to] : encode(to, v);
}

/** weightmix's `exact` lerp: the endpoints copy an input; else torch.lerp's two FMA forms in f32. */
export function lerpExact(a: Tensor, b: Tensor, to: Dtype, w: number): number[] {
  const wf = fround(w);
  if (wf === 0) return a.bits.map((x) => convertBits(a.dtype, to, x));
  if (wf === 1) return b.bits.map((x) => convertBits(b.dtype, to, x));
  const av = values(a);
  const bv = values(b);
  return av.map((x, i) => {
    const y = bv[i];
    const diff = subF32(y, x);
    const r = abs(wf) < 0.5 ? fmaF32(wf, diff, x) : fmaF32(subF32(wf, 1), diff, y);
    return arithmeticResult(to, r);
  });
}

/** The paper's script: d = R(b − a), p = R(d·w), R(a + p) with R the rounding to the tensors' dtype. */
export function lerpMi(a: Tensor, b: Tensor, to: Dtype, w: number): number[] {
  if (a.dtype !== b.dtype) throw new Error('lerpMi needs one dtype');
  const t = a.dtype;
  const R = (v: number) => (isNaNNumber(v) ? NAN : roundToDtype(t, v));
  const wf = fround(w);
  const av = values(a);
  const bv = values(b);
  return av.map((x, i) => {
    const d = R(subF32(bv[i], x));
    const p = R(mulF32(d, wf));
    return arithmeticResult(to, R(addF32(x, p)));
  });
}

export function convert(src: Tensor, to: Dtype): number[] {
  return src.bits.map((x) => convertBits(src.dtype, to, x));
}

/** acc = w0·x0, then acc = fma(wk, xk, acc) in source order; one rounding to `to`. */
export function linear(srcs: Tensor[], w: number[], to: Dtype, n: number): number[] {
  const vals = srcs.map(values);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let k = 0; k < srcs.length; k++) {
      const wk = fround(w[k]);
      acc = k === 0 ? mulF32(wk, vals[k][i]) : fmaF32(wk, vals[k][i], acc);
    }
    out.push(arithmeticResult(to, acc));
  }
  return out;
}

export interface Moments {
  aa: number;
  bb: number;
  ab: number;
  dd: number;
  absA: number;
  absB: number;
  absD: number;
  maxAbsDiff: number;
  nonFinite: number;
}

/** f64 statistics; element i sums into lane i % 8; lanes combine as ((0+4)+(2+6))+((1+5)+(3+7)). */
export function moments(a: Tensor, b: Tensor): Moments {
  const av = values(a);
  const bv = values(b);
  const lanes = () => new Array<number>(8).fill(0);
  const aa = lanes();
  const bb = lanes();
  const ab = lanes();
  const dd = lanes();
  const absA = lanes();
  const absB = lanes();
  const absD = lanes();
  let maxAbsDiff = 0;
  let nonFinite = 0;
  av.forEach((x, i) => {
    const y = bv[i];
    if (!isFiniteNumber(x) || !isFiniteNumber(y)) {
      nonFinite++;
      return;
    }
    const l = i % 8;
    aa[l] += x * x;
    bb[l] += y * y;
    ab[l] += x * y;
    const d = y - x;
    dd[l] += d * d;
    absA[l] += abs(x);
    absB[l] += abs(y);
    absD[l] += abs(d);
    maxAbsDiff = max(maxAbsDiff, abs(d));
  });
  const combine = (p: number[]) => p[0] + p[4] + (p[2] + p[6]) + (p[1] + p[5] + (p[3] + p[7]));
  return {
    aa: combine(aa),
    bb: combine(bb),
    ab: combine(ab),
    dd: combine(dd),
    absA: combine(absA),
    absB: combine(absB),
    absD: combine(absD),
    maxAbsDiff,
    nonFinite,
  };
}
