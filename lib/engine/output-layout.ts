/** How the output models are cut into shards: shard names in order, each with its tensors in data order. */
import type { Checkpoint } from '../model/checkpoint';
import { tensorTableOf } from '../model/tensor-table';
import { shapeAt } from '../format/header-columns';

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
  const members: number[][] = ckpt.shards.map(() => []);
  for (let i = 0; i < table.names.length; i++) members[position[table.fileIndex[i]]]?.push(i);
  const shards = ckpt.shards.map((s, k): LayoutShard => {
    const indices = members[k];
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
    let tensors: LayoutTensor[] | undefined;
    const shard: LayoutShard = {
      name: s.name,
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
