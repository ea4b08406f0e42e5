/**
 * Each model's rebuilt embed_tokens / lm_head (embedding-rows.ts decides the rows) written into one
 * safetensors file per model of a working folder beside the output; the merge then reads a view of the
 * model whose embedding tensors point there. Rows are streamed by blocks, so memory stays bounded for a
 * vocabulary-sized tensor. Copied rows are exact (converted where the working dtype is wider); a mean is
 * summed in f64 and rounded once to the working dtype.
 */
import * as fs from 'node:fs';
import { abortError, WeightmixError } from '../errors';
import type { Checkpoint, TensorLocation } from '../model/checkpoint';
import { dtypeByteLength, encodeSafetensorsHeader, readSafetensorsHeader } from '../format/safetensors';
import { FloatDtype, isFloatDtype } from '../format/dtypes';
import { decodeValues, encodeValues } from './lora/lora-delta';
import type { DefaultRow, ModelRows } from './embedding-rows';

/** Output bytes assembled at once per tensor. */
const BLOCK_BYTES = 8 * 1024 * 1024;

/** Reads rows of tensors through one open handle per file. */
class RowReader {
  private readonly handles = new Map<string, Promise<fs.promises.FileHandle>>();

  /** Rows [row, row + count) of `loc`, as stored, into `target` at byte `at`. */
  async readInto(loc: TensorLocation, row: number, count: number, target: Buffer, at: number): Promise<void> {
    const cols = loc.elementCount / loc.shape[0];
    const length = dtypeByteLength(loc.dtype, count * cols);
    if (!this.handles.has(loc.file)) this.handles.set(loc.file, fs.promises.open(loc.file, 'r'));
    const fd = await this.handles.get(loc.file)!;
    const { bytesRead } = await fd.read(target, at, length, loc.offset + dtypeByteLength(loc.dtype, row * cols));
    if (bytesRead !== length) throw new WeightmixError('InputChanged', `${loc.file} is shorter than its header says`);
  }

  /** Rows [row, row + count) of `loc`, as stored. */
  async bytes(loc: TensorLocation, row: number, count: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(dtypeByteLength(loc.dtype, (count * loc.elementCount) / loc.shape[0]));
    await this.readInto(loc, row, count, buf, 0);
    return buf;
  }

  async values(loc: TensorLocation, row: number, count: number): Promise<Float64Array> {
    const cols = loc.elementCount / loc.shape[0];
    return decodeValues(await this.bytes(loc, row, count), loc.dtype as FloatDtype, count * cols);
  }

  async close(): Promise<void> {
    // A handle that failed to open has nothing to close (its error is the one the caller sees).
    await Promise.all(
      [...this.handles.values()].map((h) =>
        h.then(
          (fd) => fd.close(),
          () => undefined,
        ),
      ),
    );
  }
}

/** One rebuilt tensor of one model. */
export interface RebuiltTensor {
  name: string;
  rows: ModelRows;
  /** Every model's copy of the tensor (the rows' sources), by recipe model index. */
  sources: ReadonlyMap<number, TensorLocation>;
  /** The dtype written: the recipe's `dtype`, else the model's own (mergekit converts to `dtype` before it rebuilds). */
  dtype: FloatDtype;
}

async function defaultRow(reader: RowReader, row: DefaultRow, sources: ReadonlyMap<number, TensorLocation>, cols: number): Promise<Float64Array> {
  if (row.kind === 'zero') return new Float64Array(cols);
  if (row.kind === 'row') return reader.values(sources.get(row.model)!, row.row, 1);
  const sum = new Float64Array(cols);
  for (const [m, r] of row.rows) {
    const v = await reader.values(sources.get(m)!, r, 1);
    for (let j = 0; j < cols; j++) sum[j] += v[j];
  }
  for (let j = 0; j < cols; j++) sum[j] /= row.rows.length;
  return sum;
}

/** Writes one tensor's data at `offset` of `handle`, block by block. */
async function writeTensor(
  handle: fs.promises.FileHandle,
  offset: number,
  t: RebuiltTensor,
  totalRows: number,
  reader: RowReader,
  signal: AbortSignal | undefined,
): Promise<void> {
  const own = t.sources.get(t.rows.model)!;
  const cols = own.elementCount / own.shape[0];
  const vocabRows = t.rows.own.length;
  const rowBytes = dtypeByteLength(t.dtype, cols);
  const perBlock = Math.max(1, Math.floor(BLOCK_BYTES / Math.max(rowBytes, 1)));
  const padding = totalRows > vocabRows;
  const sums = padding ? new Float64Array(cols) : null;
  const converted = (bytes: Buffer, from: TensorLocation, rows: number) =>
    from.dtype === t.dtype ? bytes : encodeValues(decodeValues(bytes, from.dtype as FloatDtype, rows * cols), t.dtype);
  for (let start = 0; start < vocabRows; start += perBlock) {
    // A vocabulary-sized rebuild takes seconds: Ctrl-C is answered between blocks.
    if (signal?.aborted) throw abortError('the merge was aborted while it rebuilt the embeddings', signal);
    const end = Math.min(vocabRows, start + perBlock);
    const block = Buffer.allocUnsafe((end - start) * rowBytes); // every row of it is written below
    for (let i = start; i < end;) {
      const r = t.rows.own[i];
      if (r >= 0) {
        // A run of consecutive source rows is one read.
        let n = 1;
        while (i + n < end && t.rows.own[i + n] === r + n) n++;
        if (own.dtype === t.dtype) await reader.readInto(own, r, n, block, (i - start) * rowBytes);
        else converted(await reader.bytes(own, r, n), own, n).copy(block, (i - start) * rowBytes);
        i += n;
      } else {
        const d = t.rows.defaults.get(i)!;
        const source = d.kind === 'row' ? t.sources.get(d.model)! : null;
        const bytes =
          source && d.kind === 'row'
            ? converted(await reader.bytes(source, d.row, 1), source, 1)
            : encodeValues(await defaultRow(reader, d, t.sources, cols), t.dtype);
        bytes.copy(block, (i - start) * rowBytes);
        i++;
      }
    }
    if (sums) {
      const v = decodeValues(block, t.dtype, (end - start) * cols);
      for (let k = 0; k < v.length; k++) sums[k % cols] += v[k];
    }
    await handle.write(block, 0, block.length, offset + start * rowBytes);
  }
  if (sums) {
    // Rows past the vocabulary: the mean of the rows above (mergekit, after https://nlp.stanford.edu/~johnhew/vocab-expansion.html).
    for (let j = 0; j < cols; j++) sums[j] /= vocabRows;
    const row = encodeValues(sums, t.dtype);
    for (let i = vocabRows; i < totalRows; i++) await handle.write(row, 0, row.length, offset + i * rowBytes);
  }
}

/**
 * `ckpt` with `tensors` rebuilt into `file` (`rows` rows each): the returned checkpoint's locations of
 * those tensors point there, with their new shape and dtype (each keeps its shard name, so the output's
 * layout still follows the model's shards).
 */
export async function writeRebuiltEmbeddings<C extends Checkpoint>(
  ckpt: C,
  tensors: RebuiltTensor[],
  rows: number,
  file: string,
  signal?: AbortSignal,
): Promise<C> {
  const shapes = tensors.map((t) => {
    const loc = ckpt.tensors.get(t.name)!;
    if (!isFloatDtype(loc.dtype) || loc.shape.length !== 2)
      throw new WeightmixError(
        'UnsupportedRecipe',
        `tokenizer: ${t.name} is a ${loc.dtype} tensor of shape [${loc.shape}], not a float matrix of embedding rows`,
      );
    return [rows, loc.shape[1]];
  });
  const header = encodeSafetensorsHeader(tensors.map((t, i) => ({ name: t.name, dtype: t.dtype, shape: shapes[i] })));
  const reader = new RowReader();
  const handle = await fs.promises.open(file, 'wx');
  try {
    await handle.write(header.bytes, 0, header.bytes.length, 0);
    for (const [i, t] of tensors.entries()) await writeTensor(handle, header.dataStart + header.offsets[i][0], t, rows, reader, signal);
  } finally {
    await Promise.all([handle.close(), reader.close()]);
  }
  const written = await readSafetensorsHeader(file);
  const located = new Map<string, TensorLocation>(ckpt.tensors);
  for (const w of written.tensors) {
    const i = tensors.findIndex((t) => t.name === w.name);
    const loc = ckpt.tensors.get(w.name)!;
    const elementCount = shapes[i][0] * shapes[i][1];
    located.set(w.name, {
      ...loc,
      dtype: tensors[i].dtype,
      shape: shapes[i],
      file,
      offset: written.dataStart + w.dataOffsets[0],
      elementCount,
      byteLength: dtypeByteLength(tensors[i].dtype, elementCount),
    });
  }
  return { ...ckpt, tensors: located };
}
