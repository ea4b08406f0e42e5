/**
 * Whether a model's config.json describes its tensors, as transformers reads them: vocab_size against the embedding and head rows,
 * hidden_size against their columns, num_hidden_layers against the decoder layers, and a head to load where the embeddings are not
 * tied. A merge that got these wrong writes a model that loads with an error, or with a head initialized at random.
 */
import type { Checkpoint } from '../model/checkpoint';
import { classifyTensor } from '../model/tensor-names';

/** A disagreement, said in one line naming config.json. */
export function configDisagreements(model: Checkpoint, configFile: string): string[] {
  if (model.config === null) return [];
  // A multimodal config describes its language model in text_config (transformers reads that; the top level may be stale).
  const text = model.config.text_config;
  const config = text !== null && typeof text === 'object' && !Array.isArray(text) ? { ...model.config, ...(text as Record<string, unknown>) } : model.config;
  const found: string[] = [];
  const whole = (key: string) => (Number.isSafeInteger(config[key]) ? (config[key] as number) : undefined);
  const vocab = whole('vocab_size');
  const hidden = whole('hidden_size');
  const layers = new Set<number>();
  let head: string | undefined;
  let embed: string | undefined;
  for (const name of model.names) {
    const cls = classifyTensor(name);
    if (cls.layer !== null) layers.add(cls.layer);
    if (cls.module !== 'embed' && cls.module !== 'head') continue;
    if (cls.module === 'head') head = name;
    else embed = name;
    const shape = model.tensors.get(name)!.shape;
    if (shape.length !== 2) continue;
    if (vocab !== undefined && shape[0] !== vocab) found.push(`${configFile}: vocab_size is ${vocab} but ${name} has ${shape[0]} rows`);
    if (hidden !== undefined && shape[1] !== hidden) found.push(`${configFile}: hidden_size is ${hidden} but ${name} has ${shape[1]} columns`);
  }
  // Multi-token-prediction layers (DeepSeek-V3, GLM-4.5) are stored as decoder layers past num_hidden_layers.
  const depth = whole('num_hidden_layers');
  const extra = whole('num_nextn_predict_layers') ?? 0;
  if (depth !== undefined && layers.size > 0 && depth + extra !== layers.size) {
    const mtp = extra > 0 ? ` (and num_nextn_predict_layers ${extra})` : '';
    found.push(`${configFile}: num_hidden_layers is ${depth}${mtp} but the tensors hold ${layers.size} decoder layers`);
  }
  // An untied model without a head gets one initialized at random. Only where the embeddings have a name this knows: another
  // naming (InternLM2's tok_embeddings and output) may call its head something else too.
  if (config.tie_word_embeddings === false && head === undefined && embed !== undefined && layers.size > 0) {
    found.push(`${configFile}: tie_word_embeddings is false but the model has no lm_head: transformers would initialize one at random`);
  }
  return found;
}
