import { usageError } from '../errors';

/** What a tensor belongs to; `other` covers everything the rules below do not name (never user-selectable). */
export type ModuleClass = 'attn' | 'mlp' | 'norm' | 'embed' | 'head' | 'final_norm' | 'other';

/** A class a user can name in `--modules` / `--skip-modules` (every class but `other`). */
export type SelectableModule = Exclude<ModuleClass, 'other'>;

/** The classes a user can name in `--modules`, in the order help texts list them. */
export const MODULE_CLASSES: readonly SelectableModule[] = Object.freeze(['attn', 'mlp', 'norm', 'embed', 'head', 'final_norm'] as const);

/** What `classifyTensor` says of a tensor name. */
export interface TensorClass {
  /** Decoder layer index, or null for tensors outside the decoder stack (embeddings, final norm, head). */
  layer: number | null;
  /** Its module class. */
  module: ModuleClass;
}

// Decoder-layer prefixes: HF causal LMs, multimodal wrappers that nest the LM, GPT-2 style. No name starts with two of them.
const LAYER_PREFIXES = ['model.layers.', 'model.language_model.layers.', 'language_model.model.layers.', 'transformer.h.'];
const LINE_TERMINATOR = /[\n\r\u2028\u2029]/;
const DOT = 0x2e;

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
  if (typeof name !== 'string') throw usageError(`classifyTensor: name must be a tensor name, got ${JSON.stringify(name) ?? String(name)}`);
  const inLayer = layerAndRest(name);
  if (inLayer) {
    const [layer, rest] = inLayer;
    const dot = rest.indexOf('.');
    return { layer, module: moduleOfLayerPart(dot < 0 ? rest : rest.slice(0, dot)) };
  }
  if (EMBEDDINGS.has(name)) return { layer: null, module: 'embed' };
  if (HEADS.has(name)) return { layer: null, module: 'head' };
  if (FINAL_NORMS.has(name)) return { layer: null, module: 'final_norm' };
  return { layer: null, module: 'other' };
}

/** Inside a layer, the class its first path component names. */
export function moduleOfLayerPart(part: string): ModuleClass {
  if (ATTENTION_PARTS.has(part)) return 'attn';
  if (MLP_PARTS.has(part)) return 'mlp';
  if (NORM_PARTS.has(part)) return 'norm';
  return 'other';
}

/**
 * PREFIX.<digits>.<rest> → [layer, rest], else null: what /^(?:prefixes)\.(0|[1-9]\d*)\.(.+)$/ matched, with string operations
 * instead of a regular expression per name (a MoE model has tens of thousands of names). A zero-padded number (`layers.01.`) is
 * no layer: as one it would be layer 1, the same as `layers.1.` beside it, and renaming it would merge the two.
 */
function layerAndRest(name: string): [number, string] | null {
  const prefix = LAYER_PREFIXES.find((p) => name.startsWith(p));
  if (prefix === undefined) return null;
  let i = prefix.length;
  while (i < name.length && name.charCodeAt(i) >= 0x30 && name.charCodeAt(i) <= 0x39) i++;
  // At least one digit, then a dot, then at least one character and no line terminator (what `.+$` takes).
  if (i === prefix.length || name.charCodeAt(i) !== DOT || i + 1 === name.length) return null;
  if (i - prefix.length > 1 && name.charCodeAt(prefix.length) === 0x30) return null;
  const rest = name.slice(i + 1);
  return LINE_TERMINATOR.test(rest) ? null : [Number(name.slice(prefix.length, i)), rest];
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
export function parseModuleList(spec: string): SelectableModule[] {
  const accepted = MODULE_CLASSES.join(', ');
  const parts = spec.split(',').map((p) => p.trim());
  if (spec.trim() === '' || parts.some((p) => p === '')) {
    throw usageError(`module list "${spec}": expected a comma list of: ${accepted}`);
  }
  const result: SelectableModule[] = [];
  for (const part of parts) {
    if (!(MODULE_CLASSES as readonly string[]).includes(part)) {
      throw usageError(`module list "${spec}": unknown module class "${part}"; accepted: ${accepted}`);
    }
    const known = part as SelectableModule;
    if (!result.includes(known)) result.push(known);
  }
  return result;
}
