/** A model's tensor names grouped by decoder layer. */
import type { Checkpoint } from './checkpoint';
import { classifyTensor } from './tensor-names';

/** Each model's tensor names in one decoder layer, in the model's order (grouped once per model, on first use). */
export function layerNamesOf(ckpts: Checkpoint[]): (model: number, layer: number) => string[] {
  const byModel = new Map<number, Map<number, string[]>>();
  return (model, layer) => {
    let layers = byModel.get(model);
    if (!layers) {
      layers = new Map();
      for (const n of ckpts[model].names) {
        const l = classifyTensor(n).layer;
        if (l === null) continue;
        const names = layers.get(l);
        if (names) names.push(n);
        else layers.set(l, [n]);
      }
      byModel.set(model, layers);
    }
    return layers.get(layer) ?? [];
  };
}

// A numbered block outside the decoder's layers: a vision tower's `visual.blocks.N.…` or `vision_tower.….layers.N.…`.
const TOWER_BLOCK = /^(.*?\.(?:blocks|layers))\.(0|[1-9]\d*)\./;

/**
 * The position in [0, 1] of each tensor of a numbered block outside the decoder's layers, by its tower's own depth: block i of n at
 * i/(n − 1) (1 for a tower of one block), as mergekit's models: form gives each module of a multimodal model its own slice.
 */
export function towerPositions(names: readonly string[]): Map<string, number> {
  const towers = new Map<string, Set<number>>();
  const blockOf = new Map<string, { tower: string; block: number }>();
  for (const name of names) {
    if (classifyTensor(name).layer !== null) continue;
    const m = TOWER_BLOCK.exec(name);
    if (m === null) continue;
    blockOf.set(name, { tower: m[1], block: Number(m[2]) });
    const blocks = towers.get(m[1]);
    if (blocks) blocks.add(Number(m[2]));
    else towers.set(m[1], new Set([Number(m[2])]));
  }
  const rank = new Map([...towers].map(([tower, blocks]) => [tower, [...blocks].sort((a, b) => a - b)]));
  const positions = new Map<string, number>();
  for (const [name, { tower, block }] of blockOf) {
    const sorted = rank.get(tower)!;
    positions.set(name, sorted.length > 1 ? sorted.indexOf(block) / (sorted.length - 1) : 1);
  }
  return positions;
}
