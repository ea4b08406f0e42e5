/** How the output models are cut into shards: shard names in order, each with its tensors in data order. */
import type { Checkpoint } from '../model/checkpoint';
import { tensorTableOf, type TensorTable } from '../model/tensor-table';
import { shapeAt } from '../format/header-columns';
import { numberedShardFileName } from '../format/shard-file-name';
import { namesTextIs } from '../format/json-tables';

/** What the planner needs of one output tensor's place: its name and shape (the dtype is the recipe's). */
export interface LayoutTensor {
  name: string;
  shape: number[];
  elementCount: number;
}

export interface LayoutShard {
  /** File name relative to the output folder. */
  name: string;
  tensors: LayoutTensor[];
}

export interface OutputLayout {
  shards: LayoutShard[];
  /** Whether the output gets a model.safetensors.index.json. */
  indexed: boolean;
}

/** A shard's tensors as columns (what the planner reads): names, shapes (`shapeStarts` index `dims`), element counts. */
export interface LayoutColumns {
  names: readonly string[];
  /** names.length + 1 starts into `dims`. */
  shapeStarts: Uint32Array;
  dims: Float64Array;
  elementCounts: Float64Array;
}

// Where a checkpoint layout's columns were sliced from: names[j] is table.names[start + j].
const SLICED_FROM = new WeakMap<LayoutColumns, { names: readonly string[]; start: number }>();

/** The names array and position `columns.names` were sliced from, when they were (a checkpoint's layout): names[j] is from.names[from.start + j]. */
export function slicedFrom(columns: LayoutColumns): { names: readonly string[]; start: number } | undefined {
  return SLICED_FROM.get(columns);
}

// The columns a checkpoint's layout was made of; a layout made elsewhere gets columns from its tensors.
const COLUMNS = new WeakMap<LayoutShard, LayoutColumns>();

/** The shard's tensors as columns. */
export function layoutColumns(shard: LayoutShard): LayoutColumns {
  const own = COLUMNS.get(shard);
  if (own !== undefined) return own;
  const tensors = shard.tensors;
  const shapeStarts = new Uint32Array(tensors.length + 1);
  for (let i = 0; i < tensors.length; i++) shapeStarts[i + 1] = shapeStarts[i] + tensors[i].shape.length;
  const dims = new Float64Array(shapeStarts[tensors.length]);
  tensors.forEach((t, i) => dims.set(t.shape, shapeStarts[i]));
  return { names: tensors.map((t) => t.name), shapeStarts, dims, elementCounts: Float64Array.from(tensors, (t) => t.elementCount) };
}

/** A checkpoint's own layout: its shard names and order, each shard's tensors in data order (columns; `tensors` built when read). */
export function checkpointLayout(ckpt: Checkpoint): OutputLayout {
  const table = tensorTableOf(ckpt);
  // Each of the table's files as a position in ckpt.shards (by shard name).
  const position = table.shardNames.map((name) => ckpt.shards.findIndex((s) => s.name === name));
  const ranges = shardRanges(table, position, ckpt.shards.length);
  let members: number[][] | undefined;
  if (ranges === null) {
    members = ckpt.shards.map(() => []);
    for (let i = 0; i < table.names.length; i++) members[position[table.fileIndex[i]]]?.push(i);
  }
  // The output's files sit in its folder: an index that names shards with a path ('./model-…', 'weights/model-…') gets
  // the Hugging Face names instead, which its own index then lists as written.
  const plain = ckpt.shards.every((s) => !s.name.includes('/'));
  const nameOf = (s: { name: string }, k: number) => (plain ? s.name : numberedShardFileName(k, ckpt.shards.length));
  const shards = ckpt.shards.map((s, k): LayoutShard => {
    const columns = ranges ? rangeColumns(table, ranges[k], ranges[k + 1]) : gatheredColumns(table, members![k]);
    // File k's tensors are range k, in the table's order, which is its header's: the header reader's text of their names serves the encoders.
    if (ranges && table.fileNamesTexts) namesTextIs(columns.names, table.fileNamesTexts[k]);
    let tensors: LayoutTensor[] | undefined;
    const shard: LayoutShard = {
      name: nameOf(s, k),
      get tensors() {
        tensors ??= columns.names.map((name, j) => ({ name, shape: shapeAt(columns, j), elementCount: columns.elementCounts[j] }));
        return tensors;
      },
      set tensors(value: LayoutTensor[]) {
        tensors = value;
        COLUMNS.delete(shard);
      },
    };
    COLUMNS.set(shard, columns);
    return shard;
  });
  return { shards, indexed: ckpt.indexed };
}

/**
 * Where each shard's tensors start in the table, when every shard's tensors are one run in shard order (an opened checkpoint's table
 * is: shards in order, each in data order): shardCount + 1 bounds found with indexOf/lastIndexOf, no pass per tensor; else null.
 */
function shardRanges(table: TensorTable, position: number[], shardCount: number): number[] | null {
  if (table.files.length !== shardCount || position.some((p, f) => p !== f)) return null;
  const bounds = [0];
  for (let f = 0; f < shardCount; f++) {
    const start = bounds[f];
    const first = table.fileIndex.indexOf(f);
    // A shard without tensors is an empty run; otherwise its first tensor must follow the last run, its last one end this run.
    if (first < 0) {
      bounds.push(start);
      continue;
    }
    if (first !== start) return null;
    bounds.push(table.fileIndex.lastIndexOf(f) + 1);
  }
  // Runs that tile the table in order hold no other file's tensor: each file's first index is past every earlier run.
  return bounds[shardCount] === table.names.length ? bounds : null;
}

/** The columns of tensors [start, end) of the table (slices and one rebase of the shape starts). */
function rangeColumns(table: TensorTable, start: number, end: number): LayoutColumns {
  const base = table.shapeStarts[start];
  const shapeStarts = table.shapeStarts.slice(start, end + 1);
  for (let j = 0; j < shapeStarts.length; j++) shapeStarts[j] -= base;
  const columns = {
    names: table.names.slice(start, end),
    shapeStarts,
    dims: table.dims.slice(base, table.shapeStarts[end]),
    elementCounts: table.elementCounts.slice(start, end),
  };
  SLICED_FROM.set(columns, { names: table.names, start });
  return columns;
}

/** The columns of the table's tensors at `indices`, in that order. */
function gatheredColumns(table: TensorTable, indices: number[]): LayoutColumns {
  const count = indices.length;
  const shapeStarts = new Uint32Array(count + 1);
  for (let j = 0; j < count; j++) shapeStarts[j + 1] = shapeStarts[j] + table.shapeStarts[indices[j] + 1] - table.shapeStarts[indices[j]];
  const columns: LayoutColumns = {
    names: indices.map((i) => table.names[i]),
    shapeStarts,
    dims: new Float64Array(shapeStarts[count]),
    elementCounts: new Float64Array(count),
  };
  for (let j = 0; j < count; j++) {
    const i = indices[j];
    for (let k = table.shapeStarts[i], at = shapeStarts[j]; k < table.shapeStarts[i + 1]; k++, at++) columns.dims[at] = table.dims[k];
    columns.elementCounts[j] = table.elementCounts[i];
  }
  return columns;
}

/** The tensors of the output shards that `filter` keeps. */
export function tensorsOfShards(layout: OutputLayout, filter: (shard: string) => boolean): Set<string> {
  return new Set(layout.shards.filter((shard) => filter(shard.name)).flatMap((shard) => layoutColumns(shard).names));
}

/** Each output shard's elements, what a recipe's parts balance (its dtypes are the recipe's, decided per tensor). */
export function layoutShardSizes(layout: OutputLayout): { name: string; size: number }[] {
  return layout.shards.map((shard) => ({ name: shard.name, size: layoutColumns(shard).elementCounts.reduce((a, b) => a + b, 0) }));
}
