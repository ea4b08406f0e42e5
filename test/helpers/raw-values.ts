/** Values written as a raw little-endian file of one float dtype, for plans that read raw tensors. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decode, Dtype, encode } from '../reference/numerics';

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
