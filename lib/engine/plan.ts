/**
 * What every output byte is. From opened checkpoints and a per-tensor recipe, the planner lays out
 * the output shards (the layout model's shard names and order), encodes their headers and emits one
 * native job per tensor, with one destination per output model (plain jobs of neighbouring tensors joined:
 * PackedJobWriter.plainJob). Pure: no files are touched.
 */
import * as path from 'node:path';
import { Checkpoint } from '../model/checkpoint';
import { addShifted, dtypeAt, indexOfName, sameBytes, sameNameOrder, sameShapeAt, tensorShapeAt, tensorTableOf, type TensorTable } from '../model/tensor-table';
import { WeightmixError } from '../errors';
import { NativeJob, NativeOutput } from './native';
import { PackedJobs, PackedJobWriter, unpackJobs } from './packed-jobs';
import { DTYPE_BITS, isFloatDtype, SafetensorsDtype } from '../format/dtypes';
import { dtypeCode } from '../format/header-columns';
import { encodeHeaderColumns } from '../format/safetensors';
import { layoutColumns, type OutputLayout } from './output-layout';
import { jobState, writeShardJobs } from './shard-jobs';
import { OpenMomentsTable } from './open-moments';
import type { TensorRecipe } from './tensor-recipe';
export type { TensorRecipe } from './tensor-recipe';

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
  const state = jobState(spec.checkpoints, spec.outputs.length, jobs);
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
      // Relative to the file, shifted in place by a loop outside this closure (a loop here had V8 compile all of it).
      addShifted(header.starts, 0, header.starts, 0, header.dataStart);
      offsets.push(header.starts);
      if (written) {
        outIndex.push(outputs.length);
        outputs.push({ path: file, size, head: header.bytes });
        bytesToWrite += size;
      }
    });
    if (!written) continue;

    writeShardJobs(state, columns, recipes, outIndex, offsets);
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
  return sameNameOrder(a, b) && sameBytes(a.shapeStarts, b.shapeStarts) && sameBytes(a.dims, b.dims) && sameBytes(a.dtypes, b.dtypes);
}
