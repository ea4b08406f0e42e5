/**
 * Fast element codecs for loops over whole tensors in TypeScript: decoding through a table of every
 * 16-bit pattern, f64 → bits by integer round-to-nearest-even in the normal range (float-bits.ts's
 * encodeFloat, the slow obvious version, for the rest: subnormal, overflow, NaN, infinities).
 */
import { decodeFloat, encodeFloat } from './float-bits';
import { FLOAT_LAYOUTS, FloatDtype } from './dtypes';

const tables = new Map<FloatDtype, Float64Array>();

/** Every 16-bit pattern's value (BF16, F16): 512 KiB, built once. */
export function decodeTable(dtype: 'BF16' | 'F16'): Float64Array {
  let t = tables.get(dtype);
  if (!t) {
    t = new Float64Array(65536);
    for (let bits = 0; bits < 65536; bits++) t[bits] = decodeFloat(bits, dtype);
    tables.set(dtype, t);
  }
  return t;
}

const f64 = new Float64Array(1);
const words = new Uint32Array(f64.buffer); // little-endian: words[1] holds sign, exponent and the top 20 mantissa bits
const F32_NAN = 0x7fc00000;
const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** A 16-bit dtype's constants for roundToBits, computed once (per call they cost more than the rounding: 57 against 12 ns). */
interface HalfLayout {
  mantBits: number;
  bias: number;
  /** Of an f64's top word's 20 mantissa bits, those below the target's. */
  shift: number;
  half: number;
}

function halfLayout(dtype: 'BF16' | 'F16'): HalfLayout {
  const { expBits, mantBits } = FLOAT_LAYOUTS[dtype];
  const shift = 20 - mantBits;
  return { mantBits, bias: 2 ** (expBits - 1) - 1, shift, half: 1 << (shift - 1) };
}

const HALF_LAYOUTS: Readonly<Record<'BF16' | 'F16', HalfLayout>> = { BF16: halfLayout('BF16'), F16: halfLayout('F16') };

/** `x` rounded to nearest even in `dtype`, as bits: what encodeFloat returns, faster. */
export function roundToBits(x: number, dtype: FloatDtype): number {
  if (dtype === 'F32') {
    if (x !== x) return F32_NAN;
    f32[0] = x; // Math.fround's rounding: to nearest even, subnormals and overflow included
    return f32Bits[0];
  }
  const { mantBits, bias, shift, half } = HALF_LAYOUTS[dtype];
  f64[0] = x;
  const hi = words[1];
  const lo = words[0];
  const e64 = (hi >>> 20) & 0x7ff;
  const e = e64 - 1023 + bias;
  if (e64 === 0x7ff || e <= 0 || e >= 2 * bias + 1) return encodeFloat(x, dtype);
  let m = (hi & 0xfffff) >>> shift;
  const rest = hi & ((1 << shift) - 1);
  if (rest > half || (rest === half && (lo !== 0 || (m & 1) === 1))) m++;
  // A mantissa carry moves into the exponent, and from the largest finite value to infinity, as it should.
  return ((hi >>> 16) & 0x8000) | ((e << mantBits) + m);
}
