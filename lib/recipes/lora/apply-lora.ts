/**
 * mergekit's `model+lora`: the adapter is applied to the model before merging. The tensors it changes
 * are materialised, in the model's dtype, into one safetensors file of a temporary folder beside the
 * output; the merge then reads a view of the model whose changed tensors point into that file (the
 * others are read from the model's own shards, as before).
 */
import * as fs from 'node:fs';
import { abortError, WeightmixError } from '../../errors';
import type { Checkpoint, TensorLocation } from '../../model/checkpoint';
import { dtypeByteLength, encodeSafetensorsHeader, readSafetensorsHeader } from '../../format/safetensors';
import { FloatDtype, isFloatDtype } from '../../format/dtypes';
import { readTensorBytes, StoredTensor } from '../../format/tensor-data';
import type { LoraAdapter } from './lora-adapter';
import { applyLoraRows, decodeMatrix, decodeValues, encodeValues, LoraProduct, loraProduct, Matrix } from './lora-delta';

async function readMatrix(t: StoredTensor & { shape: number[] }): Promise<Matrix> {
  return decodeMatrix(await readTensorBytes(t), t.dtype as FloatDtype, t.shape[0], t.shape[1]);
}

/** Elements of a replacement in the model's dtype (PEFT loads a saved module into the model's module, converting it). */
async function convertedBytes(t: StoredTensor, dtype: FloatDtype, start: number, count: number): Promise<Buffer> {
  const bytes = await readTensorBytes(t, start, count);
  return t.dtype === dtype ? bytes : encodeValues(decodeValues(bytes, t.dtype as FloatDtype, count), dtype);
}

/** Elements per block of rows computed at once (f64: 128 MiB). */
const BLOCK_ELEMENTS = 16 * 1024 * 1024;

/**
 * `ckpt` with `adapter` applied: the changed tensors written to `file` (in the model's tensor order and
 * dtypes; computed `blockElements` at a time), the returned checkpoint's locations of those tensors pointing there.
 */
export async function applyLoraAdapter(
  ckpt: Checkpoint,
  label: string,
  adapter: LoraAdapter,
  file: string,
  blockElements = BLOCK_ELEMENTS,
  signal?: AbortSignal,
): Promise<Checkpoint> {
  const changed = ckpt.names.filter((n) => adapter.updates.has(n) || adapter.replacements.has(n));
  for (const name of [...adapter.updates.keys(), ...adapter.replacements.keys()]) {
    if (!ckpt.tensors.has(name)) throw new WeightmixError('InvalidLoraAdapter', `${adapter.dir}: the adapter changes ${name}, which ${label} does not have`);
  }
  for (const name of changed) {
    const loc = ckpt.tensors.get(name)!;
    const replacement = adapter.replacements.get(name);
    if (!isFloatDtype(loc.dtype))
      throw new WeightmixError('InvalidLoraAdapter', `${adapter.dir}: the adapter changes ${name}, a ${loc.dtype} tensor of ${label}`);
    if (replacement && replacement.shape.join() !== loc.shape.join()) {
      throw new WeightmixError('InvalidLoraAdapter', `${adapter.dir}: the adapter's ${name} is [${replacement.shape}] but ${label}'s is [${loc.shape}]`);
    }
  }
  const header = encodeSafetensorsHeader(changed.map((n) => ({ name: n, dtype: ckpt.tensors.get(n)!.dtype, shape: ckpt.tensors.get(n)!.shape })));
  const handle = await fs.promises.open(file, 'wx');
  try {
    await handle.write(header.bytes, 0, header.bytes.length, 0);
    for (const [i, name] of changed.entries()) {
      const loc = ckpt.tensors.get(name)!;
      const dtype = loc.dtype as FloatDtype;
      const replacement = adapter.replacements.get(name);
      const update = adapter.updates.get(name);
      let product: LoraProduct | null = null;
      if (update) {
        try {
          product = loraProduct(loc.shape, await readMatrix(update.a), await readMatrix(update.b), update.scale, update.transpose);
        } catch (e) {
          if (e instanceof RangeError) throw new WeightmixError('InvalidLoraAdapter', `${adapter.dir}: ${name}: ${e.message}`);
          throw e;
        }
      }
      // Blocks of rows, so that memory stays bounded for a vocabulary-sized embedding (f64 values: 8 bytes each).
      const rows = loc.shape.length >= 2 ? loc.shape[0] : 1;
      const cols = rows === 0 ? 0 : loc.elementCount / rows;
      const rowsPerBlock = Math.max(1, Math.floor(blockElements / Math.max(cols, 1)));
      for (let row = 0; row < rows && cols > 0; row += rowsPerBlock) {
        if (signal?.aborted) throw abortError('the merge was aborted while it applied a LoRA adapter', signal);
        const n = Math.min(rowsPerBlock, rows - row);
        let bytes = replacement ? await convertedBytes(replacement, dtype, row * cols, n * cols) : await readTensorBytes(loc, row * cols, n * cols);
        if (product) bytes = applyLoraRows(bytes, dtype, product, row);
        await handle.write(bytes, 0, bytes.length, header.dataStart + header.offsets[i][0] + dtypeByteLength(dtype, row * cols));
      }
    }
  } finally {
    await handle.close();
  }
  // Each changed tensor keeps its shard name (the output's layout follows the model's shards); only its bytes live elsewhere.
  const written = await readSafetensorsHeader(file);
  const tensors = new Map<string, TensorLocation>(ckpt.tensors);
  for (const t of written.tensors) tensors.set(t.name, { ...ckpt.tensors.get(t.name)!, file, offset: written.dataStart + t.dataOffsets[0] });
  return { ...ckpt, tensors };
}
