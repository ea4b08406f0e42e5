/**
 * One LoRA update applied to one tensor: W' = W + scale · (B·A), or its transpose. Every element is
 * computed in f64 (the r products and their sum in k order, the scale, the add) and rounded once to
 * W's dtype, round to nearest even; PEFT rounds B·A·scale to the adapter's dtype and then the sum to W's.
 */
import { decodeTable, roundToBits } from '../../format/float-round';
import type { FloatDtype } from '../../format/dtypes';

/** A matrix of float values, row-major. */
export interface Matrix {
  rows: number;
  cols: number;
  values: Float64Array;
}

/** A tensor's elements as f64 (its bytes are copied once, so any alignment will do). */
export function decodeValues(bytes: Buffer, dtype: FloatDtype, count: number): Float64Array {
  const values = new Float64Array(count);
  const copy = new Uint8Array(bytes.subarray(0, count * (dtype === 'F32' ? 4 : 2)));
  if (dtype === 'F32') {
    const f = new Float32Array(copy.buffer, 0, count);
    for (let i = 0; i < count; i++) values[i] = f[i];
  } else {
    const table = decodeTable(dtype);
    const u = new Uint16Array(copy.buffer, 0, count);
    for (let i = 0; i < count; i++) values[i] = table[u[i]];
  }
  return values;
}

/** f64 values rounded once to `dtype`, as little-endian bytes. */
export function encodeValues(values: Float64Array, dtype: FloatDtype): Buffer {
  const out = new ArrayBuffer(values.length * (dtype === 'F32' ? 4 : 2));
  const bits = dtype === 'F32' ? new Uint32Array(out) : new Uint16Array(out);
  for (let i = 0; i < values.length; i++) bits[i] = roundToBits(values[i], dtype);
  return Buffer.from(out);
}

/** The values of a row-major float tensor's bytes. */
export function decodeMatrix(bytes: Buffer, dtype: FloatDtype, rows: number, cols: number): Matrix {
  return { rows, cols, values: decodeValues(bytes, dtype, rows * cols) };
}

/** B·A (or its transpose) as `applyLoraUpdate` applies it: A's columns as contiguous rows, so both factors are read in k order. */
export interface LoraProduct {
  /** at[j·r + k] = A[k, j]. */
  at: Float64Array;
  b: Float64Array;
  r: number;
  scale: number;
  transpose: boolean;
  /** The shape of the tensor it updates. */
  shape: [number, number];
}

/**
 * The update of a tensor of shape `shape` by scale · B·A, where B is [out, r] and A is [r, in]: `shape`
 * = [out, in], or [in, out] with `transpose`; a RangeError when B·A does not fit.
 */
export function loraProduct(shape: readonly number[], a: Matrix, b: Matrix, scale: number, transpose: boolean): LoraProduct {
  const r = a.rows;
  const [outRows, inCols] = transpose ? [a.cols, b.rows] : [b.rows, a.cols];
  if (shape.length !== 2 || b.cols !== r || shape[0] !== outRows || shape[1] !== inCols) {
    throw new RangeError(`LoRA B [${b.rows}, ${b.cols}] · A [${a.rows}, ${a.cols}]${transpose ? ' transposed' : ''} does not fit a tensor of shape [${shape}]`);
  }
  const at = new Float64Array(a.cols * r);
  for (let k = 0; k < r; k++) for (let j = 0; j < a.cols; j++) at[j * r + k] = a.values[k * a.cols + j];
  return { at, b: b.values, r, scale, transpose, shape: [shape[0], shape[1]] };
}

/** Rows [firstRow, firstRow + n) of W (their bytes in `dtype`) plus the update: the new bytes in `dtype`. */
export function applyLoraRows(w: Buffer, dtype: FloatDtype, p: LoraProduct, firstRow: number): Buffer {
  const { at, b: bv, r, scale, transpose } = p;
  const cols = p.shape[1];
  const rows = w.length / (dtype === 'F32' ? 4 : 2) / cols;
  const wv = decodeValues(w, dtype, rows * cols);
  // Element (i, j) of B·A is row i of B against column j of A; transposed, row j against column i.
  const [bStepI, bStepJ] = transpose ? [0, r] : [r, 0];
  const [aStepI, aStepJ] = transpose ? [r, 0] : [0, r];
  for (let i = 0, e = 0; i < rows; i++) {
    const row = firstRow + i;
    for (let j = 0, bRow = row * bStepI, aCol = row * aStepI; j < cols; j++, e++, bRow += bStepJ, aCol += aStepJ) {
      let sum = r > 0 ? bv[bRow] * at[aCol] : 0;
      for (let k = 1; k < r; k++) sum += bv[bRow + k] * at[aCol + k];
      wv[e] += scale * sum;
    }
  }
  return encodeValues(wv, dtype);
}

/** A whole tensor W (bytes of `dtype`, `shape`) plus scale · B·A: the new bytes in `dtype`. */
export function applyLoraUpdate(w: Buffer, dtype: FloatDtype, shape: readonly number[], a: Matrix, b: Matrix, scale: number, transpose: boolean): Buffer {
  return applyLoraRows(w, dtype, loraProduct(shape, a, b, scale, transpose), 0);
}
