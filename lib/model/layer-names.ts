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
