/**
 * The numerics contract of native/kernels/numerics.h, written again in TypeScript from the contract
 * (f32 upcast, torch.lerp with one fused multiply-add, one round-to-nearest-even; the paper's bf16
 * script for `mi`), bits in and bits out: `verify --recompute` checks the engine's output against it.
 */
import { encodeFloat } from '../format/float-bits';
import type { FloatDtype } from '../format/dtypes';

const view = new DataView(new ArrayBuffer(8));

/** The f32 number of a bit pattern (only for non-NaN patterns: NaN payloads do not survive a JS number). */
function f32Value(bits: number): number {
  view.setUint32(0, bits);
  return view.getFloat32(0);
}

function f32Bits(value: number): number {
  view.setFloat32(0, value);
  return view.getUint32(0);
}

const F32_NAN = 0x7fc00000;
const F32_MAX = 3.4028234663852886e38;
const isNaN32 = (bits: number) => (bits & 0x7fffffff) > 0x7f800000;

/** Upcast to f32 bits: bf16 exactly (payload kept); f16 exactly, a NaN quieted with sign and payload kept. */
export function toF32Bits(bits: number, t: FloatDtype): number {
  if (t === 'F32') return bits >>> 0;
  if (t === 'BF16') return (bits << 16) >>> 0;
  const sign = bits & 0x8000 ? 0x80000000 : 0;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0x1f) return (sign + (mant === 0 ? 0x7f800000 : (0x7fc00000 | (mant << 13)) >>> 0)) >>> 0;
  // Normal and subnormal halves are exact in f32: build the value and take its bits.
  const magnitude = exp === 0 ? mant * 2 ** -24 : (1 + mant / 1024) * 2 ** (exp - 15);
  return (sign + f32Bits(magnitude)) >>> 0;
}

/** A conversion store (f32 bits → dtype): f32 keeps the bits, bf16 turns any NaN into 0x7FC0, f16 keeps a NaN's sign (0x7E00). */
export function fromF32Bits(bits: number, to: FloatDtype): number {
  if (to === 'F32') return bits >>> 0;
  const sign = bits >>> 31;
  if (isNaN32(bits)) return to === 'BF16' ? 0x7fc0 : (sign << 15) | 0x7e00;
  if (to === 'BF16') {
    // Keep the high half; round on the low half (a carry runs into the exponent, up to infinity).
    let high = bits >>> 16;
    const low = bits & 0xffff;
    if (low > 0x8000 || (low === 0x8000 && (high & 1) === 1)) high++;
    return high & 0xffff;
  }
  // f16: round to nearest even from the f32 value (exact in a double), overflow to ±inf.
  return encodeFloat(f32Value(bits), 'F16');
}

/** A conversion (copy to another dtype): upcast, then a conversion store. */
export function convertBits(bits: number, from: FloatDtype, to: FloatDtype): number {
  return from === to ? bits : fromF32Bits(toF32Bits(bits, from), to);
}

/** An arithmetic result's store: any NaN is first the canonical f32 NaN. */
function encodeResult(bits: number, to: FloatDtype): number {
  return fromF32Bits(isNaN32(bits) ? F32_NAN : bits, to);
}

/** The f32 neighbours of a finite f32 value, as numbers; past the largest finite value stands 2^128. */
function f32Neighbour(value: number, up: boolean): number {
  if (value === 0) return up ? 2 ** -149 : -(2 ** -149);
  const bits = f32Bits(value);
  const away = value > 0 === up; // moving away from zero increments the magnitude
  const next = away ? bits + 1 : bits - 1;
  if ((next & 0x7fffffff) === 0x7f800000) return value > 0 ? 2 ** 128 : -(2 ** 128);
  return f32Value(next >>> 0);
}

/** fma in f32: x·y + z with one rounding to f32 (x, y, z f32 numbers), exactly. */
export function fmaF32(x: number, y: number, z: number): number {
  const p = x * y; // exact: 24 × 24 bits fit in 53, and f32 exponents cannot underflow a double
  const s = p + z;
  if (!Number.isFinite(p) || !Number.isFinite(z) || !Number.isFinite(s)) return Math.fround(s);
  // TwoSum: s + e is exactly p + z.
  const bv = s - p;
  const e = p - (s - bv) + (z - bv);
  const r = Math.fround(s);
  if (e === 0) return r;
  // Rounding s to f32 is right unless s sits exactly halfway between two f32 values while p + z does
  // not: then the sign of e says which way p + z lies. Bracket s by adjacent f32 values.
  let lower: number;
  let upper: number;
  if (!Number.isFinite(r)) [lower, upper] = r > 0 ? [F32_MAX, 2 ** 128] : [-(2 ** 128), -F32_MAX];
  else if (r <= s) [lower, upper] = [r, f32Neighbour(r, true)];
  else [lower, upper] = [f32Neighbour(r, false), r];
  if (s !== (lower + upper) / 2) return r;
  const pick = e > 0 ? upper : lower;
  return Math.abs(pick) === 2 ** 128 ? Math.sign(pick) * Infinity : pick;
}

/** torch.lerp in f32, one fused multiply-add per element; returns f32 bits (NaN not yet canonical). */
function lerpExactF32(aBits: number, bBits: number, w: number): number {
  if (isNaN32(aBits) || isNaN32(bBits)) return F32_NAN;
  const a = f32Value(aBits);
  const b = f32Value(bBits);
  const diff = Math.fround(b - a); // one rounding of an exact difference: double rounding cannot differ here
  const small = Math.abs(w) < 0.5;
  const x = small ? fmaF32(w, diff, a) : fmaF32(Math.fround(w - 1), diff, b);
  return Number.isNaN(x) ? F32_NAN : f32Bits(x);
}

/**
 * One element of an `exact` interpolation, bits in and out: a copy of a (λ = 0) or b (λ = 1) when λ is
 * or rounds to an endpoint in f32, else torch.lerp in f32 and one rounding to `to`.
 */
export function lerpExactBits(a: number, ta: FloatDtype, b: number, tb: FloatDtype, to: FloatDtype, lambda: number): number {
  const w = Math.fround(lambda);
  if (w === 0) return convertBits(a, ta, to);
  if (w === 1) return convertBits(b, tb, to);
  return encodeResult(lerpExactF32(toF32Bits(a, ta), toF32Bits(b, tb), w), to);
}

/** Rounds an f32 number to dtype t's precision (NaN canonical), as the paper's bf16 script does after each op. */
function roundTo(x: number, t: FloatDtype): number {
  if (Number.isNaN(x)) return NaN;
  if (t === 'F32') return x;
  return f32Value(toF32Bits(fromF32Bits(f32Bits(x), t), t));
}

/** The paper's script in dtype t: d = R(b − a), p = R(d·w), x = R(a + p), each op in f32; returns t bits. */
export function lerpMiBits(aBits: number, bBits: number, w: number, t: FloatDtype): number {
  const a = isNaN32(toF32Bits(aBits, t)) ? NaN : f32Value(toF32Bits(aBits, t));
  const b = isNaN32(toF32Bits(bBits, t)) ? NaN : f32Value(toF32Bits(bBits, t));
  const d = roundTo(Math.fround(b - a), t);
  const p = roundTo(Math.fround(d * w), t);
  const x = roundTo(Math.fround(a + p), t);
  return fromF32Bits(Number.isNaN(x) ? F32_NAN : f32Bits(x), t);
}
