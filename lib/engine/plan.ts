/**
 * What every output byte is. From opened checkpoints and a per-tensor recipe, the planner lays out
 * the output shards (the layout model's shard names and order), encodes their headers and emits one
 * native job per tensor, with one destination per output model (plain jobs of neighbouring tensors joined:
 * PackedJobWriter.plainJob). Pure: no files are touched.
 */
import * as path from 'node:path';
import { Checkpoint } from '../model/checkpoint';
import { dtypeAt, indexOfName, sameShapeAt, tensorShapeAt, tensorTableOf, type TensorTable } from '../model/tensor-table';
import { InputFiles } from './input-files';
import { WeightmixError } from '../errors';
import { NativeJob, NativeOp, NativeOutput } from './native';
import { PACKED_CODE_OF_DTYPE, PACKED_OP_CODES, PACKED_U8, PackedJobs, PackedJobWriter, PlainDests, PlainSources, unpackJobs } from './packed-jobs';
import { DTYPE_BITS, isFloatDtype, nativeDtype, SafetensorsDtype } from '../format/dtypes';
import { dtypeCode } from '../format/header-columns';
import { encodeHeaderColumns } from '../format/safetensors';
import { encodeSparseParams, ResolvedSparse } from './sparse-params';
import { encodeElementwiseParams, RamPlusOpen, RowWeights } from './elementwise-params';
import { DellaRecipe, encodeDellaParams } from './della-params';
import { encodeSceParams, SceRecipe } from './sce-params';
import { ArceeFusionRecipe, encodeArceeFusionParams } from './arcee-fusion-params';
import { layoutColumns, type OutputLayout } from './output-layout';
import { OpenMoments, OpenMomentsTable } from './open-moments';

/** How one output tensor is made: an op over tensors of the listed checkpoints. */
export interface TensorRecipe {
  op: NativeOp;
  /** Checkpoint indices, in the order the op takes them. */
  models: number[];
  /** copy: [index into `models`]; lerp, lerp_mi: [λ]; linear: one weight per model; nearswap: [t] (models: base, model); ram: [epsilon, λ per model] (models: base first). */
  w: number[];
  dtype: SafetensorsDtype;
  /** sparse only: thresholds, mask keys and factors (models lists the base and every model it names). */
  sparse?: ResolvedSparse;
  /** row_linear only: per-row coefficients (models lists the base first when `rows.base`). */
  rows?: RowWeights;
  /** della only: MAGPRUNE's parameters and rescale factors (models lists the base first). */
  della?: DellaRecipe;
  /** sce only: the selection cut and weights (models lists the base first). */
  sce?: SceRecipe;
  /** arcee_fusion only: rows and threshold (models are [base, model]). */
  arceeFusion?: ArceeFusionRecipe;
  /** ram only: ramplus_tl's λ left for the engine to count from the tensor in memory (w's λ are then placeholders). */
  ramPlus?: RamPlusOpen;
  /** linear only: the weights are decided in the write pass from moments of the tensor (engine/open-moments.ts); `w` is a placeholder. */
  open?: OpenMoments;
}

export interface OutputModelSpec {
  dir: string;
  metadata: Record<string, string>;
}

export interface MergeSpec {
  /** The models the recipes read, by index. */
  checkpoints: Checkpoint[];
  /** The outputs' shard names, tensor-to-shard assignment and order (`checkpointLayout` copies a model's). */
  layout: OutputLayout;
  outputs: OutputModelSpec[];
  recipe(name: string, output: number): TensorRecipe;
  /** Only these shards are written (`--part`); index and sidecars are still planned in full. */
  shardFilter?: (shard: string) => boolean;
}

export interface PlannedShard {
  name: string;
  path: string;
  size: number;
  /** Its tensors' names, in data order (the index lists each under this shard). */
  names: readonly string[];
  written: boolean;
}

export interface PlannedModel {
  dir: string;
  shards: PlannedShard[];
  tensorBytes: number;
  indexed: boolean;
}

export interface MergePlan {
  inputs: string[];
  outputs: NativeOutput[];
  /** The jobs as the addon takes them: written as columns, no object per job. */
  packedJobs: PackedJobs;
  /** The same jobs as objects, decoded on first use (fusePlans and tests read them). */
  readonly jobs: NativeJob[];
  models: PlannedModel[];
  /** Bytes the native engine writes (written shards only). */
  bytesToWrite: number;
  /** The open dests' answers, when some recipe left its moments open. */
  openMoments?: OpenMomentsTable;
}

/** A plan with its object view of the jobs decoded only when asked for. */
export function mergePlanOf(fields: Omit<MergePlan, 'jobs'>): MergePlan {
  let jobs: NativeJob[] | undefined;
  return {
    ...fields,
    get jobs() {
      jobs ??= unpackJobs(fields.packedJobs.words);
      return jobs;
    },
  };
}

export function planMerge(spec: MergeSpec): MergePlan {
  const layout = spec.layout;

  const outputs: NativeOutput[] = [];
  const models: PlannedModel[] = spec.outputs.map((o) => ({ dir: o.dir, shards: [], tensorBytes: 0, indexed: layout.indexed }));
  // Sized for the usual job (a few sources, one short dest per output), so that the writer rarely regrows.
  let expectedJobs = 0;
  for (const shard of layout.shards) if (!spec.shardFilter || spec.shardFilter(shard.name)) expectedJobs += layoutColumns(shard).names.length;
  const jobs = new PackedJobWriter(expectedJobs, expectedJobs * (6 + 3 * spec.checkpoints.length + 8 * spec.outputs.length));
  const state = jobState(spec, jobs);
  let bytesToWrite = 0;

  for (const shard of layout.shards) {
    const shardName = shard.name;
    const written = spec.shardFilter ? spec.shardFilter(shardName) : true;
    // Columns of the shard's tensors (shared by every output), then per output its recipes and header: no object per tensor.
    const columns = layoutColumns(shard);
    const names = columns.names;
    // recipes[o][t]: the recipe of tensor t in output o
    const recipes = spec.outputs.map((_, o) => names.map((name) => spec.recipe(name, o)));
    const outIndex: number[] = [];
    const offsets: Float64Array[] = [];
    spec.outputs.forEach((out, o) => {
      const dtypes = dtypeCodesOf(recipes[o]);
      const header = encodeHeaderColumns('encodeSafetensorsHeader', names, dtypes, columns, out.metadata);
      const size = header.dataStart + header.dataBytes;
      const file = path.join(out.dir, shardName);
      models[o].shards.push({ name: shardName, path: file, size, names, written });
      models[o].tensorBytes += header.dataBytes;
      const starts = header.starts;
      for (let i = 0; i < starts.length; i++) starts[i] += header.dataStart;
      offsets.push(starts);
      if (written) {
        outIndex.push(outputs.length);
        outputs.push({ path: file, size, head: header.bytes });
        bytesToWrite += size;
      }
    });
    if (!written) continue;

    writeShardJobs(state, names, columns.elementCounts, recipes, outIndex, offsets);
  }
  return mergePlanOf({
    inputs: state.inputFiles.paths,
    outputs,
    packedJobs: jobs.finish(),
    models,
    bytesToWrite,
    ...(state.open.size > 0 ? { openMoments: state.open } : {}),
  });
}

/** What the per-tensor loop reuses from tensor to tensor and shard to shard. */
interface JobState {
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
}

function jobState(spec: MergeSpec, jobs: PackedJobWriter): JobState {
  const tables = spec.checkpoints.map(tensorTableOf);
  const outputCount = spec.outputs.length;
  return {
    checkpoints: spec.checkpoints,
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
  };
}

/**
 * One shard's jobs, one per tensor (recipes[o][i]: tensor i's recipe in output o; offsets[o][i]: its begin in output o's file).
 * A function of its own so that V8 optimizes this loop alone: inside planMerge's body, the MoE plan's on-stack build of all of
 * planMerge took ~60 ms of compiler time and was thrown away at the loop's end. Plain loops, no object per job, and a recipe's
 * own model list reused when it is already sorted: an 18,867-tensor MoE plan runs this body per tensor.
 */
function writeShardJobs(
  s: JobState,
  names: readonly string[],
  elementCounts: Float64Array,
  recipes: TensorRecipe[][],
  outIndex: number[],
  offsets: Float64Array[],
): void {
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

/** The recipes' dtypes as codes (DTYPE_NAMES' indices; one lookup per run of one shared recipe), or as names when one has no code (the encoder then refuses it). */
function dtypeCodesOf(recipes: readonly TensorRecipe[]): Uint8Array | SafetensorsDtype[] {
  const codes = new Uint8Array(recipes.length);
  let last: TensorRecipe | undefined;
  let code: number | undefined = 0;
  for (let i = 0; i < recipes.length; i++) {
    const r = recipes[i];
    if (r !== last) {
      last = r;
      code = Object.hasOwn(DTYPE_BITS, r.dtype) ? dtypeCode(r.dtype) : undefined;
      if (code === undefined) return recipes.map((x) => x.dtype);
    }
    codes[i] = code;
  }
  return codes;
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
    if (!r.sparse) throw new Error(`internal: sparse recipe of ${name} without parameters`);
    [w, params] = [[], encodeSparseParams(r.sparse, source)];
  } else if (r.op === 'arcee_fusion') {
    if (!r.arceeFusion) throw new Error(`internal: arcee_fusion recipe of ${name} without parameters`);
    [w, params] = [[], encodeArceeFusionParams(r.arceeFusion, source)];
  } else if (r.op === 'sce') {
    if (!r.sce) throw new Error(`internal: sce recipe of ${name} without parameters`);
    [w, params] = [[], encodeSceParams(r.sce, source)];
  } else if (r.op === 'della') {
    if (!r.della) throw new Error(`internal: della recipe of ${name} without parameters`);
    [w, params] = [[], encodeDellaParams(r.della, source)];
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

/** The two models must hold the same tensors with the same shapes; float dtypes may differ. */
export function checkCompatible(a: Checkpoint, b: Checkpoint): void {
  const ta = tensorTableOf(a);
  const tb = tensorTableOf(b);
  if (sameColumns(ta, tb)) return;
  // Names are unique in each model: equal counts and every name of a found in b mean the same sets (one lookup per name, not three).
  let same = ta.names.length === tb.names.length;
  for (let i = 0; i < ta.names.length && same; i++) same = indexOfName(tb, ta.names[i], i) >= 0;
  const onlyA = same ? [] : ta.names.filter((n) => indexOfName(tb, n) < 0);
  const onlyB = same ? [] : tb.names.filter((n) => indexOfName(ta, n) < 0);
  if (onlyA.length > 0 || onlyB.length > 0) {
    const few = (xs: string[]) => (xs.length === 0 ? 'none' : xs.slice(0, 3).join(', ') + (xs.length > 3 ? ` (+${xs.length - 3} more)` : ''));
    throw new WeightmixError('ModelsDiffer', `the models hold different tensors: only in ${a.dir}: ${few(onlyA)}; only in ${b.dir}: ${few(onlyB)}`);
  }
  for (let i = 0; i < ta.names.length; i++) {
    const name = ta.names[i];
    const j = indexOfName(tb, name, i);
    if (!sameShapeAt(ta, i, tb, j)) {
      throw new WeightmixError('ShapeMismatch', `tensor ${name} has shape [${tensorShapeAt(ta, i)}] in ${a.dir} but [${tensorShapeAt(tb, j)}] in ${b.dir}`);
    }
    const da = dtypeAt(ta, i);
    const db = dtypeAt(tb, j);
    if (da !== db && !(isFloatDtype(da) && isFloatDtype(db))) {
      throw new WeightmixError('DtypeMismatch', `tensor ${name} is ${da} in ${a.dir} but ${db} in ${b.dir}`);
    }
  }
}

/**
 * Whether two tables hold the same names in the same order (their addon texts equal), with the same shapes and dtypes, byte for byte:
 * the usual pair, which then needs no check per tensor (an 18,867-tensor MoE pair); anything else goes through checkCompatible's loop.
 */
function sameColumns(a: TensorTable, b: TensorTable): boolean {
  return (
    a.namesText !== undefined &&
    a.namesText === b.namesText &&
    sameBytes(a.shapeStarts, b.shapeStarts) &&
    sameBytes(a.dims, b.dims) &&
    sameBytes(a.dtypes, b.dtypes)
  );
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return (
    a.byteLength === b.byteLength &&
    Buffer.compare(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) === 0
  );
}
