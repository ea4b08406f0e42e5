import { usageError } from '../errors';

/** What a tensor belongs to; `other` covers everything the rules below do not name (never user-selectable). */
export type ModuleClass = 'attn' | 'mlp' | 'norm' | 'embed' | 'head' | 'final_norm' | 'other';

/** The classes a user can name in `--modules`, in the order help texts list them. */
export const MODULE_CLASSES: readonly Exclude<ModuleClass, 'other'>[] = Object.freeze(['attn', 'mlp', 'norm', 'embed', 'head', 'final_norm'] as const);

/** What `classifyTensor` says of a tensor name. */
export interface TensorClass {
  /** Decoder layer index, or null for tensors outside the decoder stack (embeddings, final norm, head). */
  layer: number | null;
  /** Its module class. */
  module: ModuleClass;
}

// Decoder-layer prefixes: HF causal LMs, multimodal wrappers that nest the LM, GPT-2 style.
const LAYER_PREFIX = /^(?:model\.layers|model\.language_model\.layers|language_model\.model\.layers|transformer\.h)\.(\d+)\.(.+)$/;

// Inside a layer, the first path component decides the class.
const ATTENTION_PARTS = new Set(['self_attn', 'attn', 'self_attention', 'attention']);
const MLP_PARTS = new Set(['mlp', 'block_sparse_moe', 'feed_forward']);
const NORM_PARTS = new Set([
  'input_layernorm',
  'post_attention_layernorm',
  'pre_feedforward_layernorm',
  'post_feedforward_layernorm',
  'attention_norm',
  'ffn_norm',
  'ln_1',
  'ln_2',
]);

const EMBEDDINGS = new Set([
  'model.embed_tokens.weight',
  'model.language_model.embed_tokens.weight',
  'language_model.model.embed_tokens.weight',
  'transformer.wte.weight',
]);
const HEADS = new Set(['lm_head.weight', 'language_model.lm_head.weight']);
const FINAL_NORMS = new Set([
  'model.norm.weight',
  'model.language_model.norm.weight',
  'language_model.model.norm.weight',
  'transformer.ln_f.weight',
  'transformer.ln_f.bias',
]);

/** Map a checkpoint tensor name to its decoder layer and module class (Qwen2/3, Qwen3-MoE, Llama, Mistral, Mixtral, Gemma naming). */
export function classifyTensor(name: string): TensorClass {
  const inLayer = LAYER_PREFIX.exec(name);
  if (inLayer) {
    const layer = Number(inLayer[1]);
    const part = inLayer[2].split('.', 1)[0];
    if (ATTENTION_PARTS.has(part)) return { layer, module: 'attn' };
    if (MLP_PARTS.has(part)) return { layer, module: 'mlp' };
    if (NORM_PARTS.has(part)) return { layer, module: 'norm' };
    return { layer, module: 'other' };
  }
  if (EMBEDDINGS.has(name)) return { layer: null, module: 'embed' };
  if (HEADS.has(name)) return { layer: null, module: 'head' };
  if (FINAL_NORMS.has(name)) return { layer: null, module: 'final_norm' };
  return { layer: null, module: 'other' };
}

/** Parse `12-35,40-41` or `7` into inclusive [first, last] layer ranges, in the order given. */
export function parseLayerRanges(spec: string): [number, number][] {
  const text = spec.trim();
  if (text === '') {
    throw usageError(`layer ranges: empty; expected a comma list like "12-35,40-41" or "7"`);
  }
  return text.split(',').map((rawPart) => {
    const part = rawPart.trim();
    const match = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part);
    if (!match) {
      throw usageError(`layer ranges: "${part}" in "${spec}" is not a layer index or range; ` + `expected non-negative integers like "12-35" or "7"`);
    }
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last)) {
      throw usageError(`layer ranges: "${part}" in "${spec}" is out of range`);
    }
    if (first > last) {
      throw usageError(`layer ranges: "${part}" in "${spec}" runs backwards; write it as "${last}-${first}"`);
    }
    return [first, last];
  });
}

/** Parse a comma list of module classes (`attn,mlp`); duplicates collapse, order is kept. */
export function parseModuleList(spec: string): ModuleClass[] {
  const accepted = MODULE_CLASSES.join(', ');
  const parts = spec.split(',').map((p) => p.trim());
  if (spec.trim() === '' || parts.some((p) => p === '')) {
    throw usageError(`module list "${spec}": expected a comma list of: ${accepted}`);
  }
  const result: ModuleClass[] = [];
  for (const part of parts) {
    if (!(MODULE_CLASSES as readonly string[]).includes(part)) {
      throw usageError(`module list "${spec}": unknown module class "${part}"; accepted: ${accepted}`);
    }
    const known = part as ModuleClass;
    if (!result.includes(known)) result.push(known);
  }
  return result;
}
