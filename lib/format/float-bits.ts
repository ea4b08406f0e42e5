/** Bit patterns of the float dtypes weightmix computes with (BF16, F16, F32), as plain JS numbers. */
import { FLOAT_LAYOUTS, type FloatDtype } from './dtypes';

/** Round to nearest, ties to even, of a non-negative number already scaled to an integer grid. */
export function roundHalfEven(q: number): number {
  const f = Math.floor(q);
  const r = q - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The bit pattern of `x` in `dtype`, rounded to nearest, ties to even (overflow → ±inf). */
export function encodeFloat(x: number, dtype: FloatDtype): number {
  const { expBits, mantBits } = FLOAT_LAYOUTS[dtype];
  const bias = 2 ** (expBits - 1) - 1;
  const maxExp = 2 ** expBits - 1;
  const unit = 2 ** mantBits;
  if (Number.isNaN(x)) return maxExp * unit + unit / 2;
  const sign = x < 0 || Object.is(x, -0) ? 2 ** (expBits + mantBits) : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign + maxExp * unit;
  if (a < 2 ** (1 - bias)) return sign + roundHalfEven(a / 2 ** (1 - bias - mantBits)); // subnormal; 2^mant lands on the smallest normal
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let mantissa = roundHalfEven((a / 2 ** e - 1) * unit); // exact in f64 for every format here
  let biased = e + bias;
  if (mantissa === unit) {
    mantissa = 0;
    biased++;
  }
  if (biased >= maxExp) return sign + maxExp * unit;
  return sign + biased * unit + mantissa;
}

/** The value of a `dtype` bit pattern. */
export function decodeFloat(bits: number, dtype: FloatDtype): number {
  const { expBits, mantBits } = FLOAT_LAYOUTS[dtype];
  const bias = 2 ** (expBits - 1) - 1;
  const maxExp = 2 ** expBits - 1;
  const unit = 2 ** mantBits;
  const sign = bits >= 2 ** (expBits + mantBits) ? -1 : 1;
  const magnitude = bits % 2 ** (expBits + mantBits);
  const biased = Math.floor(magnitude / unit);
  const mantissa = magnitude % unit;
  if (biased === maxExp) return mantissa === 0 ? sign * Infinity : NaN;
  if (biased === 0) return sign * mantissa * 2 ** (1 - bias - mantBits);
  return sign * (1 + mantissa / unit) * 2 ** (biased - bias);
}

/** The bit pattern of element `i` of a little-endian tensor buffer. */
export function elementBits(buf: Buffer, i: number, dtype: FloatDtype): number {
  return FLOAT_LAYOUTS[dtype].bytes === 4 ? buf.readUInt32LE(4 * i) : buf.readUInt16LE(2 * i);
}
