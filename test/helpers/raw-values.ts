/** Values written as a raw little-endian file of one float dtype, for plans that read raw tensors. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CANONICAL_NAN, decode, Dtype, encode } from '../reference/numerics';

let counter = 0;

/** Each value rounded to `dtype` first; returns the file (in `dir`) and the values it holds (NaN for NaN). */
export function writeRaw(dir: string, values: number[], dtype: Dtype): { file: string; held: number[] } {
  const size = dtype === 'F32' ? 4 : 2;
  const buf = Buffer.alloc(values.length * size);
  const held = values.map((v, i) => {
    const bits = encode(dtype, v);
    if (size === 4) buf.writeUInt32LE(bits >>> 0, 4 * i);
    else buf.writeUInt16LE(bits, 2 * i);
    return Number.isNaN(v) ? NaN : decode(dtype, bits);
  });
  const file = path.join(dir, `raw-${process.pid}-${counter++}.bin`);
  fs.writeFileSync(file, buf);
  return { file, held };
}

/** The first `n` elements of a raw file, as bit patterns of `dtype`. */
export function readRaw(file: string, dtype: Dtype, n: number): number[] {
  const b = fs.readFileSync(file);
  return Array.from({ length: n }, (_, i) => (dtype === 'F32' ? b.readUInt32LE(4 * i) : b.readUInt16LE(2 * i)));
}

/** The bit patterns a reference's values round to in `to` (NaN as the engine's canonical NaN). */
export const expectedBits = (ref: number[], to: Dtype) => ref.map((v) => (Number.isNaN(v) ? CANONICAL_NAN[to] : encode(to, v)));
