/**
 * `verify`: re-reads a merged model and checks what a reader of it relies on. Every shard's header
 * is valid for its file, the index and the shards agree (every tensor stored once, where the index
 * says, total_size right, no stray shard), and every shard records the same weightmix recipe. With
 * `recompute`, sampled elements are recomputed from the recorded source models by an independent
 * TypeScript implementation of the numerics contract (native/kernels/numerics.h: f32 upcast,
 * torch.lerp's formula with one fused multiply-add, one round-to-nearest-even; the paper's bf16
 * script for `mi`) and compared bit for bit with what is stored. Only interpolations (`interpolate`,
 * `sweep`) can be recomputed; a `merge` output gets the structural checks and `recomputeSkipped` says why.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, INDEX_FILE, openCheckpoint, TensorLocation } from '../model/checkpoint';
import { abortError, usageError, WeightmixError } from '../errors';
import { elementBits } from '../format/float-bits';
import { convertBits, lerpExactBits, lerpMiBits } from './numerics-contract';
import { FLOAT_LAYOUTS, FloatDtype, isFloatDtype } from '../format/dtypes';
import { parseJsonStrict } from '../format/json-strict';
import { hashString, mix32 } from '../fixtures/random';
import { isSelected, Selection } from '../model/selection';
import type { WeightmixErrorCode } from '../error-codes';
import { InterpolationRecipe, readRecordedRecipe, RecordedRecipe, selectionFromDescription } from './recorded-recipe';
import { checkOptions, OptionKeys } from '../api/validate-options';
import { configDisagreements } from './config-agreement';
import { PARTS_FILE, recordedParts, recordsJobRecipe } from '../engine/part-target';

export type { InterpolationRecipe, MergeRecipeRecord, RecordedRecipe } from './recorded-recipe';
export { selectionFromDescription } from './recorded-recipe';

/** The options of `verify`. */
export interface VerifyOptions {
  /** The model folder to check. */
  dir: string;
  /** Recompute sampled elements from the sources the recipe records, and compare bit for bit. */
  recompute?: boolean;
  /** Elements recomputed per tensor (default 64; always the first and the last), or 'all'. */
  samples?: number | 'all';
  /** Which elements are sampled (default 0): the same seed checks the same elements. */
  seed?: number;
  /** Cancels the check: the promise rejects with an 'AbortError' (code 'Aborted', `cause` the signal's reason). */
  signal?: AbortSignal;
}

/** One thing `verify` found wrong: a code from docs/errors.md and a one-line message. */
export interface VerifyProblem {
  /** What kind of problem (docs/errors.md): the code the same fault raises elsewhere, e.g. `MetadataIncompleteBuffer` for a truncated shard. */
  code: WeightmixErrorCode;
  /** One line, naming the file. */
  message: string;
}

/** One recomputed element that differs from what is stored. */
export interface ElementMismatch {
  /** The tensor's name. */
  tensor: string;
  /** Element index (byte index for non-float tensors). */
  element: number;
  /** The stored tensor's dtype. */
  dtype: string;
  /** The stored bit pattern (the raw byte for non-float tensors). */
  stored: number;
  /** The recomputed bit pattern. */
  expected: number;
}

/** What `recompute` compared. */
export interface RecomputeReport {
  /** Tensors recomputed. */
  tensors: number;
  /** Elements recomputed, all tensors together. */
  elements: number;
  /** Elements that differ. */
  mismatchCount: number;
  /** The first mismatches (at most 20). */
  mismatches: ElementMismatch[];
}

/** What `verify` found. */
export interface VerifyReport {
  /** The model folder (absolute). */
  dir: string;
  /** No problem found and no recomputed element differs. */
  ok: boolean;
  /** Whether the model opened (its headers and index read); when not, shards, tensors and the recipe are unknown (0 and null) and `problems` says why. */
  opened: boolean;
  /** Shard files. */
  shards: number;
  /** Tensors. */
  tensors: number;
  /** Bytes of tensor data (the index's total_size). */
  tensorBytes: number;
  /** Whether the model has an index (`model.safetensors.index.json`). */
  indexed: boolean;
  /** The recipe the shards record (narrow it by `method`), or null for a model weightmix did not write (or one that did not open). */
  recipe: RecordedRecipe | null;
  /** One per thing found wrong; empty when the model verified. */
  problems: VerifyProblem[];
  /** What `recompute` compared, or null when it was not asked for or could not run. */
  recomputed: RecomputeReport | null;
  /** Why `recompute` was asked for but not done (the recorded method has no recomputation); null otherwise. */
  recomputeSkipped: string | null;
}

const DEFAULT_SAMPLES = 64;
const MAX_INDEX_BYTES = 64 << 20;
const MAX_MISMATCHES_KEPT = 20;
/** Elements read at once when every element of a tensor is recomputed. */
const CHUNK_ELEMENTS = 1 << 16;
const WHOLE_TENSOR_BYTES = 4 << 20;

/** `--samples`: a whole number of 1 or more, or 'all'. */
export function parseSamples(value: unknown, name = '--samples'): number | 'all' {
  if (value === undefined) return DEFAULT_SAMPLES;
  if (value === 'all') return 'all';
  const n = decimal(value);
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1)
    throw usageError(`${name} must be a whole number of 1 or more, or "all", got ${JSON.stringify(value)}`);
  return n;
}

/** A flag's text as a number when it is plain decimal digits (not 0x10, 1e3 or 0b11, which Number() would take); other values as they are. */
function decimal(value: unknown): unknown {
  return typeof value === 'string' ? (/^\d+$/.test(value.trim()) ? Number(value) : NaN) : value;
}

/** `--seed`: a uint32. */
export function parseSeed(value: unknown, name = '--seed'): number {
  if (value === undefined) return 0;
  const n = decimal(value);
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > 0xffffffff)
    throw usageError(`${name} must be a whole number from 0 to 4294967295, got ${JSON.stringify(value)}`);
  return n;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError('verification was aborted', signal);
}

const VERIFY_KEYS: OptionKeys<VerifyOptions> = { dir: 'required', recompute: 'optional', samples: 'optional', seed: 'optional', signal: 'optional' };

function problem(code: WeightmixErrorCode, message: string): VerifyProblem {
  return { code, message };
}

/**
 * Re-reads a model folder and checks what a reader relies on: every shard header against its file,
 * the index against the shards, one recorded recipe; with `recompute`, sampled elements recomputed
 * from the recorded sources and compared bit for bit (interpolations only). A damaged model resolves
 * with `ok: false` and its problems; a folder that does not exist rejects.
 *
 * @example
 * ```ts
 * import { verify } from 'weightmix';
 * const report = await verify({ dir: 'merged-0.8', recompute: true });
 * if (!report.ok) for (const p of report.problems) console.error(p.code, p.message);
 * if (report.recipe?.method === 'interpolate') console.log('λ =', report.recipe.lambda);
 * ```
 * @throws {@link WeightmixError} `Usage`, `ModelNotFound` (no such folder), `Aborted`, `InputChanged`.
 */
export async function verify(options: VerifyOptions): Promise<VerifyReport> {
  checkOptions<VerifyOptions>('verify', options, VERIFY_KEYS);
  if (typeof options.dir !== 'string' || options.dir === '')
    throw usageError(`verify: option 'dir' must be a model folder path, got ${JSON.stringify(options.dir)}`);
  // Without recompute nothing is sampled: the two would be ignored.
  if (!options.recompute && (options.samples !== undefined || options.seed !== undefined))
    throw usageError('verify: samples and seed apply only with recompute: true');
  const samples = parseSamples(options.samples, 'samples');
  const seed = parseSeed(options.seed, 'seed');
  checkAborted(options.signal);
  const dir = path.resolve(options.dir);
  // No folder is no model to verify, not a damaged one: an error, as every other function gives.
  const stat = await fs.promises.stat(dir).catch(() => null);
  if (!stat?.isDirectory())
    throw new WeightmixError('ModelNotFound', stat ? `${dir} is not a folder: verify takes a model folder` : `model folder not found: ${dir}`);
  const report: VerifyReport = {
    dir,
    ok: false,
    opened: false,
    shards: 0,
    tensors: 0,
    tensorBytes: 0,
    indexed: false,
    recipe: null,
    problems: [],
    recomputed: null,
    recomputeSkipped: null,
  };

  // A --part job's count, left while its shards are incomplete (engine/part-target.ts).
  const parts = recordedParts(dir);
  const partsLeft = (complete: boolean) => {
    if (parts === null) return;
    const job = typeof parts.parts === 'number' ? `a --part job of ${parts.parts} parts` : 'a --part job';
    const message = complete
      ? `${dir}: ${PARTS_FILE} is left though every shard is in place: the part that completed ${job} stopped before removing it; remove it`
      : `${dir}: ${job} has not finished here (${PARTS_FILE}): some of its parts have not published`;
    report.problems.push(problem('PartsIncomplete', message));
  };
  let model: Checkpoint;
  try {
    // Every header against its file, the index against the shards, each tensor stored once.
    model = await openCheckpoint(dir);
  } catch (e) {
    if (!(e instanceof WeightmixError)) throw e;
    report.problems.push(problem(e.code, e.message));
    partsLeft(false);
    return report;
  }
  // Every shard is there (the model opened): the job is complete where each records its recipe (the headers are read already).
  partsLeft(model.shards.every((s) => recordsJobRecipe(s.header.metadata?.weightmix, parts?.recipe)));
  Object.assign(report, { opened: true, shards: model.shards.length, tensors: model.names.length, tensorBytes: model.tensorBytes, indexed: model.indexed });
  if (model.indexed) report.problems.push(...(await checkIndexExtras(model)));
  for (const message of configDisagreements(model, path.join(dir, 'config.json'))) report.problems.push(problem('ConfigMismatch', message));
  report.recipe = readRecordedRecipe(model, (code, message) => report.problems.push(problem(code, message)));

  if (options.recompute) {
    checkAborted(options.signal);
    if (!report.recipe) report.problems.push(problem('RecipeNotRecorded', `${dir}: no weightmix recipe is recorded, so there is nothing to recompute from`));
    // A `merge` output is not damaged for want of a recomputation: its structure alone is checked, and the report says so.
    else if (report.recipe.method !== 'interpolate')
      report.recomputeSkipped = `${report.recipe.method} outputs are not supported by --recompute (only interpolate and sweep outputs are)`;
    else report.recomputed = await recomputeInterpolation(model, report.recipe, samples, seed, options.signal, report.problems);
  }
  report.ok = report.problems.length === 0 && (report.recomputed?.mismatchCount ?? 0) === 0;
  return report;
}

/** What openCheckpoint does not check: total_size, and shards on disk that the index does not name. */
async function checkIndexExtras(model: Checkpoint): Promise<VerifyProblem[]> {
  const problems: VerifyProblem[] = [];
  const indexPath = path.join(model.dir, INDEX_FILE);
  const stat = await fs.promises.stat(indexPath);
  if (stat.size > MAX_INDEX_BYTES) return [problem('InvalidIndex', `${indexPath}: index file is implausibly large (${stat.size} bytes)`)];
  const doc = parseJsonStrict(await fs.promises.readFile(indexPath, 'utf8'), { what: indexPath }) as Record<string, unknown>;
  const metadata = doc.metadata;
  const total = typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata) ? (metadata as Record<string, unknown>).total_size : undefined;
  if (total === undefined) problems.push(problem('IndexMismatch', `${indexPath}: metadata.total_size is missing`));
  else if (total !== model.tensorBytes)
    problems.push(
      problem('IndexMismatch', `${indexPath}: metadata.total_size is ${JSON.stringify(total)} but the shards hold ${model.tensorBytes} bytes of tensor data`),
    );
  const named = new Set(model.shards.map((s) => s.name));
  for (const entry of (await fs.promises.readdir(model.dir)).sort()) {
    if (entry.endsWith('.safetensors') && !named.has(entry))
      problems.push(problem('IndexMismatch', `${path.join(model.dir, entry)}: a shard that the index does not name`));
  }
  return problems;
}

async function recomputeInterpolation(
  output: Checkpoint,
  recipe: InterpolationRecipe,
  samples: number | 'all',
  seed: number,
  signal: AbortSignal | undefined,
  problems: VerifyProblem[],
): Promise<RecomputeReport | null> {
  let instruct: Checkpoint;
  let thinking: Checkpoint;
  let selection: Selection;
  try {
    selection = selectionFromDescription(recipe.selection);
    [instruct, thinking] = await Promise.all([openCheckpoint(recipe.instruct), openCheckpoint(recipe.thinking)]);
  } catch (e) {
    if (!(e instanceof WeightmixError)) throw e;
    problems.push(problem(e.code, `cannot recompute from the recorded sources: ${e.message}`));
    return null;
  }
  const onlyOut = output.names.filter((n) => !instruct.tensors.has(n));
  const onlyIn = instruct.names.filter((n) => !output.tensors.has(n));
  if (onlyOut.length + onlyIn.length > 0) {
    problems.push(
      problem(
        'ModelsDiffer',
        `${output.dir}: holds other tensors than its Instruct source ${instruct.dir} (${onlyOut.length} more, ${onlyIn.length} missing, e.g. ${[...onlyOut, ...onlyIn][0]})`,
      ),
    );
    return null;
  }
  const lambda = recipe.lambda;
  const result: RecomputeReport = { tensors: 0, elements: 0, mismatchCount: 0, mismatches: [] };
  const files = new FileCache();
  try {
    for (const name of output.names) {
      checkAborted(signal);
      const o = output.tensors.get(name)!;
      const a = instruct.tensors.get(name)!;
      const b = thinking.tensors.get(name);
      const where = `${output.dir}: tensor ${name}`;
      if (!b) {
        problems.push(problem('ModelsDiffer', `${where} is not in the Thinking source ${thinking.dir}`));
        continue;
      }
      if (o.shape.join() !== a.shape.join() || b.shape.join() !== a.shape.join()) {
        problems.push(problem('ShapeMismatch', `${where} has shape [${o.shape}], its sources [${a.shape}] and [${b.shape}]`));
        continue;
      }
      const compute = elementRecipe(a, b, o, isSelected(name, selection), recipe.numerics, lambda);
      if (typeof compute === 'string') {
        problems.push(problem('DtypeMismatch', `${where}: ${compute}`));
        continue;
      }
      result.tensors++;
      const mismatch = (element: number, stored: number, expected: number) => {
        result.mismatchCount++;
        if (result.mismatches.length < MAX_MISMATCHES_KEPT) result.mismatches.push({ tensor: name, element, dtype: o.dtype, stored, expected });
      };
      const [ot, at, bt] = [new TensorBytes(files, o), new TensorBytes(files, a), compute.raw || !compute.needsB ? null : new TensorBytes(files, b)];
      if (compute.raw) {
        // Non-float tensors are copied byte for byte: compare sampled bytes.
        for (const [start, count] of sampleRuns(o.byteLength, samples, seed, name)) {
          const [got, want] = await Promise.all([ot.read(start, count), at.read(start, count)]);
          for (let i = 0; i < count; i++) if (got[i] !== want[i]) mismatch(start + i, got[i], want[i]);
          result.elements += count;
        }
        continue;
      }
      for (const [start, count] of sampleRuns(o.elementCount, samples, seed, name)) {
        const [ob, ab, bb] = await Promise.all([
          ot.read(start * FLOAT_LAYOUTS[o.dtype as FloatDtype].bytes, count * FLOAT_LAYOUTS[o.dtype as FloatDtype].bytes),
          at.read(start * FLOAT_LAYOUTS[a.dtype as FloatDtype].bytes, count * FLOAT_LAYOUTS[a.dtype as FloatDtype].bytes),
          bt ? bt.read(start * FLOAT_LAYOUTS[b.dtype as FloatDtype].bytes, count * FLOAT_LAYOUTS[b.dtype as FloatDtype].bytes) : null,
        ]);
        for (let i = 0; i < count; i++) {
          const stored = elementBits(ob, i, o.dtype as FloatDtype);
          const expected = compute.element(elementBits(ab, i, a.dtype as FloatDtype), bb ? elementBits(bb, i, b.dtype as FloatDtype) : 0);
          if (stored !== expected) mismatch(start + i, stored, expected);
        }
        result.elements += count;
      }
    }
  } finally {
    await files.close();
  }
  if (result.mismatchCount > 0) {
    const m = result.mismatches[0];
    const hex = (x: number) => `0x${x.toString(16).padStart(m.dtype === 'F32' ? 8 : m.dtype === 'F16' || m.dtype === 'BF16' ? 4 : 2, '0')}`;
    problems.push(
      problem(
        'ElementsDiffer',
        `${result.mismatchCount} of ${result.elements} recomputed elements differ from the recipe ` +
          `(first: ${m.tensor} element ${m.element} is ${hex(m.stored)}, expected ${hex(m.expected)}); ` +
          'the model or its sources changed after the merge',
      ),
    );
  }
  return result;
}

interface ElementCompute {
  raw: false;
  needsB: boolean;
  /** Stored bits of one output element from the input elements' bits. */
  element: (a: number, b: number) => number;
}

/** How each output element of a tensor is made, as interpolate's recipe and the kernels define it; a string says why it cannot be. */
function elementRecipe(
  a: TensorLocation,
  b: TensorLocation,
  o: TensorLocation,
  selected: boolean,
  numerics: 'exact' | 'mi',
  lambda: number,
): ElementCompute | { raw: true } | string {
  if (!isFloatDtype(a.dtype)) {
    if (o.dtype !== a.dtype) return `is ${o.dtype} but its Instruct source is ${a.dtype} (non-float tensors are copied)`;
    return { raw: true };
  }
  if (!isFloatDtype(o.dtype)) return `is ${o.dtype}, not a float dtype like its source`;
  const ta = a.dtype;
  const to = o.dtype;
  const copyA = { raw: false as const, needsB: false, element: (x: number) => convertBits(x, ta, to) };
  if (!selected) return copyA;
  if (!isFloatDtype(b.dtype)) return `is ${b.dtype} in the Thinking source`;
  const tb = b.dtype;
  if (numerics === 'mi') {
    if (ta !== tb) return `numerics "mi" needs one dtype, but the sources are ${ta} and ${tb}`;
    const w = Math.fround(lambda);
    return { raw: false, needsB: true, element: (x, y) => convertBits(lerpMiBits(x, y, w, ta), ta, to) };
  }
  return { raw: false, needsB: true, element: (x, y) => lerpExactBits(x, ta, y, tb, to, lambda) };
}

/** [start, count] runs of element indices to check: all of them, or `samples` spread by a seeded generator. */
export function sampleRuns(count: number, samples: number | 'all', seed: number, name: string): [number, number][] {
  if (count === 0) return [];
  if (samples === 'all' || samples >= count) {
    const runs: [number, number][] = [];
    for (let s = 0; s < count; s += CHUNK_ELEMENTS) runs.push([s, Math.min(CHUNK_ELEMENTS, count - s)]);
    return runs;
  }
  const picked = new Set<number>([0, count - 1]);
  let state = mix32((seed ^ hashString(name)) >>> 0);
  while (picked.size < samples) {
    state = mix32((state + 0x9e3779b9) >>> 0);
    const hi = mix32(state ^ 0x85ebca6b);
    picked.add(Math.floor(((hi * 2 ** 32 + state) / 2 ** 64) * count));
  }
  return [...picked].sort((x, y) => x - y).map((i) => [i, 1]);
}

/** One tensor's bytes: a tensor of up to 4 MiB is read once, whole; a larger one range by range. */
class TensorBytes {
  private readonly whole: Promise<Buffer> | null;

  constructor(
    private readonly files: FileCache,
    private readonly t: TensorLocation,
  ) {
    this.whole = t.byteLength <= WHOLE_TENSOR_BYTES ? files.read(t, 0, t.byteLength) : null;
  }

  async read(byteStart: number, bytes: number): Promise<Buffer> {
    return this.whole ? (await this.whole).subarray(byteStart, byteStart + bytes) : this.files.read(this.t, byteStart, bytes);
  }
}

/** Open input files, kept for the whole run (one descriptor per file). */
class FileCache {
  private readonly handles = new Map<string, Promise<fs.promises.FileHandle>>();

  async read(t: TensorLocation, byteStart: number, bytes: number): Promise<Buffer> {
    let h = this.handles.get(t.file);
    if (!h) {
      h = fs.promises.open(t.file, 'r');
      this.handles.set(t.file, h);
    }
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await (await h).read(buf, 0, bytes, t.offset + byteStart);
    if (bytesRead !== bytes) throw new WeightmixError('InputChanged', `${t.file} is shorter than its header says`);
    return buf;
  }

  async close(): Promise<void> {
    await Promise.all([...this.handles.values()].map(async (h) => (await h.catch(() => null))?.close()));
  }
}
