/** Reading tensor values back as numbers (for `demo`, `verify` and tests; never on a hot path). */
import * as fs from 'node:fs';
import { WeightmixError } from '../errors';
import { decodeFloat, elementBits } from './float-bits';
import { isFloatDtype, SafetensorsDtype } from './dtypes';

/** Where a tensor's data lies in a shard (a checkpoint's TensorLocation is one). */
export interface StoredTensor {
  file: string;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteLength: number;
  elementCount: number;
  dtype: SafetensorsDtype;
}

/** Reads elements [start, start + count) of a tensor as raw bytes. */
export async function readTensorBytes(t: StoredTensor, start = 0, count = t.elementCount): Promise<Buffer> {
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

/** Whether the tensors hold the same bytes: one dtype, one length, read 4 MiB at a time, stopping at the first difference. */
export async function sameTensorBytes(tensors: readonly StoredTensor[]): Promise<boolean> {
  const [first, ...others] = tensors;
  if (others.some((t) => t.dtype !== first.dtype || t.byteLength !== first.byteLength)) return false;
  const step = Math.max(1, Math.floor((4 << 20) / Math.max(1, first.byteLength / Math.max(first.elementCount, 1))));
  for (let start = 0; start < first.elementCount; start += step) {
    const count = Math.min(step, first.elementCount - start);
    const ref = await readTensorBytes(first, start, count);
    for (const t of others) if (!ref.equals(await readTensorBytes(t, start, count))) return false;
  }
  return true;
}

export async function readTensorValues(t: StoredTensor, start = 0, count = t.elementCount): Promise<number[]> {
  const buf = await readTensorBytes(t, start, count);
  if (!isFloatDtype(t.dtype)) throw new WeightmixError('UnsupportedDtype', `cannot decode ${t.dtype} values`);
  const dtype = t.dtype;
  return Array.from({ length: count }, (_, i) => decodeFloat(elementBits(buf, i, dtype), dtype));
}
