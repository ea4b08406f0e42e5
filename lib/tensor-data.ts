/** Reading tensor values back as numbers (for `demo`, `verify` and tests; never on a hot path). */
import * as fs from 'node:fs';
import { TensorLocation } from './checkpoint';
import { WeightmixError } from './errors';

export function decodeFloat(buf: Buffer, i: number, dtype: string): number {
  switch (dtype) {
    case 'BF16': {
      const b = Buffer.alloc(4);
      b.writeUInt16LE(buf.readUInt16LE(2 * i), 2);
      return b.readFloatLE(0);
    }
    case 'F16':
      return halfToNumber(buf.readUInt16LE(2 * i));
    case 'F32':
      return buf.readFloatLE(4 * i);
    default:
      throw new WeightmixError('UnsupportedDtype', `cannot decode ${dtype} values`);
  }
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Reads elements [start, start + count) of a tensor as raw bytes. */
export async function readTensorBytes(t: TensorLocation, start = 0, count = t.elementCount): Promise<Buffer> {
  const size = t.byteLength / Math.max(t.elementCount, 1);
  const buf = Buffer.alloc(count * size);
  const fd = await fs.promises.open(t.file, 'r');
  try {
    const { bytesRead } = await fd.read(buf, 0, buf.length, t.offset + start * size);
    if (bytesRead !== buf.length) throw new WeightmixError('InputChanged', `${t.file} is shorter than its header says`);
  } finally {
    await fd.close();
  }
  return buf;
}

export async function readTensorValues(t: TensorLocation, start = 0, count = t.elementCount): Promise<number[]> {
  const buf = await readTensorBytes(t, start, count);
  return Array.from({ length: count }, (_, i) => decodeFloat(buf, i, t.dtype));
}
