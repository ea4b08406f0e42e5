/** How the output models are cut into shards: shard names in order, each with its tensors in data order. */
import type { Checkpoint } from '../model/checkpoint';

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

/** A checkpoint's own layout: its shard names and order, each shard's tensors in data order. */
export function checkpointLayout(ckpt: Checkpoint): OutputLayout {
  const shards = new Map<string, LayoutTensor[]>(ckpt.shards.map((s) => [s.name, []]));
  // A location is a LayoutTensor as it is (name, shape, elementCount): no second object per tensor.
  for (const name of ckpt.names) {
    const t = ckpt.tensors.get(name)!;
    shards.get(t.shard)!.push(t);
  }
  return { shards: [...shards].map(([name, tensors]) => ({ name, tensors })), indexed: ckpt.indexed };
}
