/**
 * The jobs of one output shard, as planMerge writes them into the packed layout: one per tensor, with a dest per output
 * (engine/plan.ts lays out the shards and encodes their headers). A shard whose tensors are one run in every source and dest,
 * under one plain recipe per output, is written as one job at once (writeShardRun), as the per-tensor loop would join them.
 */
import { Checkpoint } from '../model/checkpoint';
import { indexOfName, sameBytes, sameNameOrder, sumFrom, tensorTableOf, type TensorTable } from '../model/tensor-table';
import { InputFiles } from './input-files';
import { WeightmixError } from '../errors';
import { MAX_RUN_ELEMENTS, PACKED_CODE_OF_DTYPE, PACKED_OP_CODES, PACKED_U8, PackedJobWriter, PlainDests, PlainSources } from './packed-jobs';
import { nativeDtype } from '../format/dtypes';
import { dtypeCode } from '../format/header-columns';
import { encodeSparseParams } from './sparse-params';
import { encodeElementwiseParams } from './elementwise-params';
import { encodeDellaParams } from './della-params';
import { encodeSceParams } from './sce-params';
import { encodeArceeFusionParams } from './arcee-fusion-params';
import { OpenMomentsTable } from './open-moments';
import type { TensorRecipe } from './tensor-recipe';
import { slicedFrom, type LayoutColumns } from './output-layout';

/** What the per-tensor loop reuses from tensor to tensor and shard to shard. */
export interface JobState {
  checkpoints: Checkpoint[];
  jobs: PackedJobWriter;
  inputFiles: InputFiles;
  /** The models' tensors as columns; each model's next tensor is probably the one after the last found (same layout). */
  tables: TensorTable[];
  next: Int32Array;
  /** One tensor's source rows in their tables. */
  located: Int32Array;
  /** Per model, each of its table's files as an input index (-1 until first used): no path lookup per tensor. */
  fileInputs: Int32Array[];
  /** One job's sources and plain dests as codes. */
  src: PlainSources;
  dst: PlainDests;
  open: OpenMomentsTable;
  /** Per model, whether its table lists another table's names array in the same order (listsAlike's answers). */
  alike: Map<readonly string[], boolean>[];
}

export function jobState(checkpoints: Checkpoint[], outputCount: number, jobs: PackedJobWriter): JobState {
  const tables = checkpoints.map(tensorTableOf);
  return {
    checkpoints,
    jobs,
    inputFiles: new InputFiles(),
    tables,
    next: new Int32Array(tables.length),
    located: new Int32Array(tables.length),
    fileInputs: tables.map((t) => new Int32Array(t.files.length).fill(-1)),
    src: { input: new Int32Array(tables.length), offset: new Float64Array(tables.length), code: new Uint8Array(tables.length) },
    dst: {
      output: new Int32Array(outputCount),
      offset: new Float64Array(outputCount),
      code: new Uint8Array(outputCount),
      op: new Uint8Array(outputCount),
      w: new Array<readonly number[]>(outputCount).fill(NO_PARAMS),
    },
    open: new OpenMomentsTable(),
    alike: tables.map(() => new Map()),
  };
}

/**
 * Whether model m's table lists `names` (a table's names array) in the same order: the same array, or another table of this plan whose
 * header texts equal m's (a pair saved alike). Answered once per pair: comparing two models' name strings one by one cost ~0.1 µs each.
 */
function listsAlike(s: JobState, names: readonly string[], m: number): boolean {
  const table = s.tables[m];
  if (table.names === names) return true;
  let known = s.alike[m].get(names);
  if (known === undefined) {
    const owner = s.tables.find((t) => t.names === names);
    known = owner !== undefined && sameNameOrder(owner, table);
    s.alike[m].set(names, known);
  }
  return known;
}

/**
 * One shard's jobs, one per tensor (recipes[o][i]: tensor i's recipe in output o; offsets[o][i]: its begin in output o's file).
 * A function of its own so that V8 optimizes this loop alone: inside planMerge's body, the MoE plan's on-stack build of all of
 * planMerge took ~60 ms of compiler time and was thrown away at the loop's end. Plain loops, no object per job, and a recipe's
 * own model list reused when it is already sorted: an 18,867-tensor MoE plan runs this body per tensor.
 */
export function writeShardJobs(s: JobState, columns: LayoutColumns, recipes: TensorRecipe[][], outIndex: number[], offsets: Float64Array[]): void {
  if (writeShardRun(s, columns, recipes, outIndex, offsets)) return;
  const { names, elementCounts } = columns;
  const { tables, next, located, fileInputs, src, dst, jobs } = s;
  let used: number[] = [];
  let plain = false;
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    // The same recipe objects as the tensor before (an interpolation's are shared): its model list, and its plain dests but for their
    // offsets, stand as they are (this loop mostly runs before V8 has optimized it: every step saved counts 18,867 times in a MoE plan).
    let same = i > 0;
    for (let o = 0; o < recipes.length && same; o++) same = recipes[o][i] === recipes[o][i - 1];
    // Sources: every model any output needs for this tensor, read once, in checkpoint order.
    if (!same) used = usedModels(recipes, i);
    let raw = -1;
    for (let k = 0; k < used.length; k++) {
      const m = used[k];
      const table = tables[m];
      // The usual answer, the position after the last one found, tried without a call.
      const at = table.names[next[m]] === name ? next[m] : indexOfName(table, name, next[m]);
      if (at < 0) throw new WeightmixError('ModelsDiffer', `tensor ${name} is missing from ${s.checkpoints[m].dir}`);
      next[m] = at + 1;
      located[k] = at;
      // Non-float tensors travel as raw bytes (native dtype U8): count them in bytes.
      if (raw < 0 && PACKED_CODE_OF_DTYPE[table.dtypes[at]] === PACKED_U8) raw = table.byteLengths[at];
    }
    const count = raw >= 0 ? raw : elementCounts[i];
    for (let k = 0; k < used.length; k++) {
      const table = tables[used[k]];
      const at = located[k];
      const file = table.fileIndex[at];
      const inputs = fileInputs[used[k]];
      if (inputs[file] < 0) inputs[file] = s.inputFiles.indexOf(table.files[file]);
      src.input[k] = inputs[file];
      src.offset[k] = table.offsets[at];
      src.code[k] = PACKED_CODE_OF_DTYPE[table.dtypes[at]];
    }
    // Every dest a plain one (an interpolation's): the whole job in one call; else field by field, each dest with its params.
    if (same && plain) {
      for (let o = 0; o < recipes.length; o++) dst.offset[o] = offsets[o][i];
    } else {
      plain = true;
      for (let o = 0; o < recipes.length && plain; o++) plain = plainDest(recipes[o][i], used, o, outIndex[o], offsets[o][i], dst);
    }
    if (plain) jobs.plainJob(count, used.length, src, recipes.length, dst);
    else writeFieldJob(s, count, used, recipes, i, outIndex, offsets, name);
  }
}

/**
 * The whole shard as one plain job, where the loop would join all of its tensors into one (PackedJobWriter.plainJob): one plain
 * recipe object per output for every tensor, float tensors of one dtype stored one after the other in one file of each model read,
 * in layout order. Checked with builtins over the columns and one comparison per tensor, not the loop's steps: an interpolation of
 * a pair saved alike plans its 18,867-tensor MoE shards so. The dests need no check: the header encoder lays an output shard's
 * tensors out one after the other. False leaves the shard to the loop, which also names whatever is amiss.
 */
function writeShardRun(s: JobState, columns: LayoutColumns, recipes: TensorRecipe[][], outIndex: number[], offsets: Float64Array[]): boolean {
  const { names, elementCounts } = columns;
  const n = names.length;
  if (n < 2) return false;
  if (!recipes.every(allSame)) return false;
  const { tables, next, fileInputs, src, dst } = s;
  const used = usedModels(recipes, 0);
  for (let o = 0; o < recipes.length; o++) if (!plainDest(recipes[o][0], used, o, outIndex[o], offsets[o][0], dst)) return false;
  const total = sumFrom(0, elementCounts);
  if (total > MAX_RUN_ELEMENTS) return false;
  const starts = new Int32Array(used.length);
  const from = slicedFrom(columns);
  for (let k = 0; k < used.length; k++) {
    const m = used[k];
    const t = tables[m];
    const p = t.names[next[m]] === names[0] ? next[m] : indexOfName(t, names[0], next[m]);
    if (p < 0 || p + n > t.names.length || PACKED_CODE_OF_DTYPE[t.dtypes[p]] === PACKED_U8) return false;
    // The names, unless the layout's are this table's own from p on, or another's that lists them alike (a checkpoint's layout, a pair
    // saved alike).
    if ((from === undefined || from.start !== p || !listsAlike(s, from.names, m)) && !listsAt(t.names, p, names)) return false;
    if (!filledWith(t.fileIndex.subarray(p, p + n), t.fileIndex[p]) || !filledWith(t.dtypes.subarray(p, p + n), t.dtypes[p])) return false;
    if (!sameBytes(t.elementCounts.subarray(p, p + n), elementCounts)) return false;
    // Stored one after the other: known of a table read from headers, checked of any other.
    if (t.filesContiguous !== true && !storedInTurn(t, p, p + n)) return false;
    starts[k] = p;
  }
  for (let k = 0; k < used.length; k++) {
    const m = used[k];
    const t = tables[m];
    const p = starts[k];
    const file = t.fileIndex[p];
    if (fileInputs[m][file] < 0) fileInputs[m][file] = s.inputFiles.indexOf(t.files[file]);
    src.input[k] = fileInputs[m][file];
    src.offset[k] = t.offsets[p];
    src.code[k] = PACKED_CODE_OF_DTYPE[t.dtypes[p]];
    next[m] = p + n;
  }
  s.jobs.plainJob(total, used.length, src, recipes.length, dst, elementCounts);
  return true;
}

// writeShardRun's per-tensor steps (and tensor-table.ts's sumFrom), each a function of its own: V8 then optimizes these small loops
// alone, where a loop in writeShardRun's body had it compile writeShardRun with all it inlines (~80 ms of compiler time in an
// 18,867-tensor MoE plan, on a core the engine wanted).

/** Whether every entry of `list` is its first. */
function allSame<T>(list: readonly T[]): boolean {
  for (let i = 1; i < list.length; i++) if (list[i] !== list[0]) return false;
  return true;
}

/** Whether `names` are `listed` from `at` on, one by one. */
function listsAt(listed: readonly string[], at: number, names: readonly string[]): boolean {
  for (let i = 0; i < names.length; i++) if (listed[at + i] !== names[i]) return false;
  return true;
}

/** Whether `t`'s tensors `from` .. `to` - 1 are stored one right after the other. */
function storedInTurn(t: TensorTable, from: number, to: number): boolean {
  for (let q = from + 1; q < to; q++) if (t.offsets[q] !== t.offsets[q - 1] + t.byteLengths[q - 1]) return false;
  return true;
}

/** Whether every value of `values` is `value` (one builtin fill and compare, no step per value). */
function filledWith(values: Uint8Array | Uint32Array, value: number): boolean {
  const filled = values instanceof Uint8Array ? new Uint8Array(values.length) : new Uint32Array(values.length);
  return sameBytes(values, filled.fill(value));
}

/** A job that is not plain, field by field: its sources as located in `s.src`, then each output's dest with its params. */
function writeFieldJob(
  s: JobState,
  count: number,
  used: number[],
  recipes: TensorRecipe[][],
  i: number,
  outIndex: number[],
  offsets: Float64Array[],
  name: string,
): void {
  const { jobs, src } = s;
  jobs.job(count, used.length);
  for (let k = 0; k < used.length; k++) jobs.sourceOfCode(src.input[k], src.offset[k], src.code[k]);
  jobs.destCount(recipes.length);
  for (let o = 0; o < recipes.length; o++) writeDest(jobs, recipes[o][i], used, outIndex[o], offsets[o][i], name, s.open);
}

/** The models any output reads for tensor i, ascending, each once (a sorted list that every output shares as it is). */
function usedModels(recipes: TensorRecipe[][], i: number): number[] {
  const models = recipes[0][i].models;
  let shared = true;
  for (let o = 1; o < recipes.length && shared; o++) shared = recipes[o][i].models === models;
  if (shared) {
    let ascending = true;
    for (let k = 1; k < models.length && ascending; k++) ascending = models[k - 1] < models[k];
    if (ascending) return models;
  }
  return [...new Set(recipes.flatMap((r) => r[i].models))].sort((x, y) => x - y);
}

const NO_PARAMS: readonly number[] = Object.freeze([]);

/**
 * Puts output `o`'s dest into `dst` when it is a plain one: an interpolation's lerp or copy whose model list is the job's source
 * list (usedModels returns it as it is), so that its weights index the job's sources as they are and it carries no params; else false.
 */
function plainDest(r: TensorRecipe, used: number[], o: number, output: number, offset: number, dst: PlainDests): boolean {
  if (r.models !== used || (!((r.op === 'lerp' || r.op === 'lerp_mi') && used.length === 2) && !isOwnCopy(r, used.length))) return false;
  dst.output[o] = output;
  dst.offset[o] = offset;
  dst.code[o] = PACKED_CODE_OF_DTYPE[dtypeCode(r.dtype)];
  dst.op[o] = PACKED_OP_CODES[r.op];
  dst.w[o] = r.w;
  return true;
}

/** A method recipe's own parameters (its `sparse`, `sce`, …), which its op requires. */
function methodParams<P>(r: TensorRecipe, params: P | undefined, name: string): P {
  if (!params) throw new Error(`internal: ${r.op} recipe of ${name} without parameters`);
  return params;
}

/** Writes one output's destination for a tensor whose job reads the models `used`. */
function writeDest(jobs: PackedJobWriter, r: TensorRecipe, used: number[], output: number, offset: number, name: string, open: OpenMomentsTable): void {
  const dtype = nativeDtype(r.dtype);
  const srcs = r.models.map((m) => used.indexOf(m));
  const source = (model: number) => srcs[r.models.indexOf(model)];
  let w = r.w;
  let params = NO_PARAMS;
  if (r.op === 'copy') {
    w = [srcs[r.w[0]]];
  } else if (r.op === 'sparse') {
    [w, params] = [[], encodeSparseParams(methodParams(r, r.sparse, name), source)];
  } else if (r.op === 'arcee_fusion') {
    [w, params] = [[], encodeArceeFusionParams(methodParams(r, r.arceeFusion, name), source)];
  } else if (r.op === 'sce') {
    [w, params] = [[], encodeSceParams(methodParams(r, r.sce, name), source)];
  } else if (r.op === 'della') {
    [w, params] = [[], encodeDellaParams(methodParams(r, r.della, name), source)];
  } else if (r.op === 'nearswap' || r.op === 'ram' || r.op === 'row_linear') {
    [w, params] = [[], encodeElementwiseParams(r.op, srcs, r.w, r.rows, r.ramPlus)];
  } else if (r.op === 'linear') {
    // Linear weights are indexed by the job's source list.
    w = new Array(used.length).fill(0);
    srcs.forEach((s, k) => (w[s] += r.w[k]));
    if (r.open) params = open.add(r.open, used);
  } else if (srcs.length !== 2 || srcs[0] !== 0 || srcs[1] !== 1 || used.length !== 2) {
    throw new Error(`internal: ${r.op} of ${name} must read exactly two models, in checkpoint order`);
  }
  jobs.dest(output, offset, dtype, r.op, w, params);
}

/** Whether `r` copies one of its `sourceCount` models by an index that is already the job's own (w = [k], k a valid index). */
function isOwnCopy(r: TensorRecipe, sourceCount: number): boolean {
  return r.op === 'copy' && r.w.length === 1 && Number.isInteger(r.w[0]) && r.w[0] >= 0 && r.w[0] < sourceCount;
}
