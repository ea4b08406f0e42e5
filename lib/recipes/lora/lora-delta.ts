/**
 * One LoRA update applied to one tensor: W' = W + scale · (B·A), or its transpose. Every element is
 * computed in f64 (the r products and their sum in k order, the scale, the add) and rounded once to
 * W's dtype, round to nearest even; PEFT rounds B·A·scale to the adapter's dtype and then the sum to W's.
 */
import { decodeFloat, elementBits, encodeFloat } from '../../format/float-bits';
import { FLOAT_LAYOUTS, FloatDtype } from '../../format/dtypes';

/** A matrix of float values, row-major. */
export interface Matrix {
  rows: number;
  cols: number;
  values: Float64Array;
}

/** The values of a row-major float tensor's bytes. */
export function decodeMatrix(bytes: Buffer, dtype: FloatDtype, rows: number, cols: number): Matrix {
  const values = new Float64Array(rows * cols);
  for (let i = 0; i < values.length; i++) values[i] = decodeFloat(elementBits(bytes, i, dtype), dtype);
  return { rows, cols, values };
}

/**
 * W (bytes of `dtype`, [rows, cols]) plus scale · B·A, where B is [out, r] and A is [r, in]: [rows, cols]
 * = [out, in], or [in, out] with `transpose`. Returns the new bytes in `dtype`.
 */
export function applyLoraUpdate(w: Buffer, dtype: FloatDtype, shape: readonly number[], a: Matrix, b: Matrix, scale: number, transpose: boolean): Buffer {
  const [rows, cols] = shape;
  const r = a.rows;
  const [outRows, inCols] = transpose ? [a.cols, b.rows] : [b.rows, a.cols];
  if (shape.length !== 2 || b.cols !== r || rows !== outRows || cols !== inCols) {
    throw new RangeError(`LoRA B [${b.rows}, ${b.cols}] · A [${a.rows}, ${a.cols}]${transpose ? ' transposed' : ''} does not fit a tensor of shape [${shape}]`);
  }
  // A's columns as contiguous rows (at[j·r + k] = A[k, j]) so that both factors are read in k order.
  const at = new Float64Array(a.cols * r);
  for (let k = 0; k < r; k++) for (let j = 0; j < a.cols; j++) at[j * r + k] = a.values[k * a.cols + j];
  const bv = b.values;
  const bytes = FLOAT_LAYOUTS[dtype].bytes;
  const out = Buffer.alloc(w.length);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      // Element (i, j) of B·A is row i of B against column j of A; transposed, row j against column i.
      const bRow = (transpose ? j : i) * r;
      const aCol = (transpose ? i : j) * r;
      let sum = r > 0 ? bv[bRow] * at[aCol] : 0;
      for (let k = 1; k < r; k++) sum += bv[bRow + k] * at[aCol + k];
      const e = i * cols + j;
      const bits = encodeFloat(decodeFloat(elementBits(w, e, dtype), dtype) + scale * sum, dtype);
      if (bytes === 4) out.writeUInt32LE(bits, 4 * e);
      else out.writeUInt16LE(bits, 2 * e);
    }
  }
  return out;
}
