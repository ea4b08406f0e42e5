/**
 * A LoRA update as exact arithmetic: W + scale · Σ_k B[i,k]·A[k,j] computed exactly (every float is a
 * BigInt multiple of 2^-K) and rounded once to the target format, round to nearest even. Non-finite
 * inputs follow IEEE f64 arithmetic instead; an exact zero takes the sign IEEE addition gives it.
 */
import { encodeFloat } from '../../lib/format/float-bits';
import { FLOAT_LAYOUTS, FloatDtype } from '../../lib/format/dtypes';

/** Every product of two f64 values and the scale are multiples of 2^-K. */
const K = 1100n; // past f64's 1074 fraction bits

/** x (finite) as an integer multiple of 2^-K. */
function exact(x: number): bigint {
  if (x === 0) return 0n;
  let e = 0;
  let m = Math.abs(x);
  while (!Number.isInteger(m)) {
    m *= 2;
    e++;
  }
  const v = BigInt(m) << (K - BigInt(e));
  return x < 0 ? -v : v;
}

/** n · 2^-shift rounded to nearest even in `dtype`, as bits. */
function roundExact(n: bigint, shift: bigint, dtype: FloatDtype, zeroSign: number): number {
  if (n === 0n) return encodeFloat(zeroSign, dtype);
  const { expBits, mantBits } = FLOAT_LAYOUTS[dtype];
  const emin = 2 - 2 ** (expBits - 1);
  const neg = n < 0n;
  const a = neg ? -n : n;
  const e = a.toString(2).length - 1 - Number(shift); // |x| in [2^e, 2^(e+1))
  const q = Math.max(e, emin) - mantBits; // the quantum at that binade
  const drop = BigInt(q) + shift;
  let int: bigint;
  if (drop <= 0n) int = a << -drop;
  else {
    int = a >> drop;
    const rest = a - (int << drop);
    const half = 1n << (drop - 1n);
    if (rest > half || (rest === half && (int & 1n) === 1n)) int += 1n;
  }
  const value = Number(int) * 2 ** q; // int has at most mantBits + 2 bits: exact in f64
  return encodeFloat(neg ? -value : value, dtype);
}

/**
 * Element (i, j) of W' = W + scale · B·A ([out, in]; with `transpose`, W is [in, out] and (i, j) takes
 * B's row j and A's column i), as `dtype` bits. `a` is [r, in] row-major, `b` is [out, r].
 */
export function loraElementRef(
  w: number,
  a: number[],
  b: number[],
  r: number,
  inCols: number,
  bRow: number,
  aCol: number,
  scale: number,
  dtype: FloatDtype,
): number {
  const terms: number[] = [];
  for (let k = 0; k < r; k++) terms.push(b[bRow * r + k] * a[k * inCols + aCol]);
  const f64 = w + scale * terms.reduce((s, x) => s + x);
  if (![w, scale, ...terms].every(Number.isFinite)) return encodeFloat(f64, dtype);
  let sum = 0n;
  for (let k = 0; k < r; k++) sum += exact(b[bRow * r + k]) * exact(a[k * inCols + aCol]); // multiples of 2^-2K
  const total = exact(w) * (1n << (2n * K)) + exact(scale) * sum; // multiples of 2^-3K
  return roundExact(total, 3n * K, dtype, Object.is(f64, -0) ? -0 : 0);
}
