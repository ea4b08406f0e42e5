/**
 * What a recipe plan refuses before any tensor is read, where the output would otherwise come out wrong without an error:
 * a head or embedding that only some models have (tied embeddings), two vocabularies in one output, and tensors of a
 * float dtype the engine does not compute that differ between the models it would combine.
 */
import { WeightmixError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import { classifyTensor } from '../model/tensor-names';
import type { TensorLocation } from '../model/tensor-table';
import { refuseUncomputedTensors } from '../model/uncomputed-tensors';
import type { Recipe } from './recipe';
import { isEmbeddingMatrix } from './tokenizer-source';
import { tiedHint } from './tied-head';

/** An output tensor as these checks read one (recipe-plan.ts's OutputTensor), and a plan's tensors with each model's view. */
interface PlannedTensor {
  name: string;
  layer: number | null;
  sources: readonly { model: number }[];
}
interface PlannedViews {
  tensors: readonly PlannedTensor[];
  views: readonly Map<string, TensorLocation>[];
}

/**
 * The output's tensors outside the layers are the layout model's. An embedding, final norm or head that another source model has
 * beyond them would be dropped (an untied lm_head beside a tied model); other extras (buffers such as inv_freq) are left, as
 * mergekit leaves them.
 */
export function refuseDroppedOutsideTensors(ckpts: Checkpoint[], layoutIndex: number, models: number[], label: (m: number) => string): void {
  const outside = new Set(ckpts[layoutIndex].names.filter((n) => classifyTensor(n).layer === null));
  for (const m of new Set(models)) {
    const extra = ckpts[m].names.find((n) => {
      const c = classifyTensor(n);
      return c.layer === null && (c.module === 'embed' || c.module === 'head' || c.module === 'final_norm') && !outside.has(n);
    });
    if (extra === undefined) continue;
    throw new WeightmixError(
      'ModelsDiffer',
      `tensor ${extra} of ${label(m)} is missing from ${label(layoutIndex)}${tiedHint(extra)}; the output would drop it`,
    );
  }
}

/**
 * A slice's layer takes its tensor names from its first source; a tensor that another member has in its matching layer beyond them
 * would be dropped from the output without a word (mergekit refuses a model that lacks one of the architecture's tensors).
 */
export function refuseDroppedLayerTensors(
  template: string[],
  srcLayer: number,
  members: { model: number; start: number }[],
  i: number,
  layerNames: (model: number, layer: number) => string[],
  withoutLayer: (name: string) => string,
  label: (m: number) => string,
): void {
  const first = members[0];
  let known: Set<string> | null = null;
  for (const m of members.slice(1)) {
    const names = layerNames(m.model, m.start + i);
    if (names.length === template.length && m.start + i === srcLayer && names.every((n, k) => n === template[k])) continue;
    known ??= new Set(template.map((n) => withoutLayer(n)));
    // A buffer the model recomputes (a rotary embedding's inv_freq, which older saves hold) is no weight: mergekit leaves it too.
    const extra = names.find((n) => !known!.has(withoutLayer(n)) && !n.endsWith('.inv_freq'));
    if (extra !== undefined) {
      throw new WeightmixError(
        'ModelsDiffer',
        `tensor ${extra} of ${label(m.model)} is missing from ${label(first.model)} (layer ${srcLayer}); the output would drop it`,
      );
    }
  }
}

/**
 * Without tokenizer_source the output gets one model's config and tokenizer (the tokenizer source), so its embeddings and head
 * must have that model's rows. A passthrough takes them from other slices' models (the embeddings from the first, the head from
 * the last), whose vocabularies may be padded otherwise: the output would hold two vocabularies, and no loader reads it.
 */
export function refuseVocabularyMismatch({ tensors, views }: PlannedViews, config: Checkpoint, configModel: number, label: (m: number) => string): void {
  for (const t of tensors) {
    if (t.layer !== null || !isEmbeddingMatrix(t.name)) continue;
    const model = t.sources[0].model;
    const own = config.tensors.get(t.name);
    const rows = views[model].get(t.name)!.shape[0];
    if (model === configModel || own === undefined || own.shape[0] === rows) continue;
    throw new WeightmixError(
      'ShapeMismatch',
      `${t.name} has ${rows} rows in ${label(model)}, where it comes from, but ${own.shape[0]} in ${label(configModel)}, whose config and tokenizer ` +
        "the output gets: it would hold two vocabularies; give tokenizer_source to build every model's for one",
    );
  }
}

/** A recipe's refusal of tensors of a float dtype the engine does not compute that it would combine from models holding different bytes. */
export function refuseUncomputedRecipeTensors(plan: PlannedViews, recipe: Recipe, ckpts: readonly Checkpoint[]): Promise<void> {
  // The tensors combined from several models (one copied from a single source keeps its dtype, as passthrough does).
  const combined = () =>
    plan.tensors
      .filter((t) => t.sources.length > 1)
      .map((t) => ({ name: t.name, sources: t.sources.map((s) => ({ tensor: plan.views[s.model].get(t.name)!, where: recipe.modelNames[s.model] })) }));
  return refuseUncomputedTensors(ckpts, combined, 'take it from one model (a passthrough slice)');
}

/** What a model's config says it is: its class (`architectures[0]`) and its `model_type`, each where the config names one. */
function architectureOf(ckpt: Checkpoint): { architecture?: string; modelType?: string } {
  const config = ckpt.config;
  const named = Array.isArray(config?.architectures) ? config.architectures[0] : undefined;
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  return { architecture: text(named), modelType: text(config?.model_type) };
}

/**
 * Models whose configs name different architectures (a Llama beside a Mistral, whose tensor names are the same) are refused unless
 * the caller allows it, as mergekit refuses them without --allow-crimes. Two configs are compared by what both name (the class,
 * else the model type); a model whose config names neither is not judged.
 */
export function refuseMixedArchitectures(ckpts: Checkpoint[], label: (m: number) => string, allowed: boolean, option: string): void {
  if (allowed) return;
  const kinds = ckpts.map(architectureOf);
  for (let m = 1; m < ckpts.length; m++) {
    for (let k = 0; k < m; k++) {
      const [a, b] = [kinds[k], kinds[m]];
      const key = a.architecture !== undefined && b.architecture !== undefined ? 'architecture' : 'modelType';
      if (a[key] === undefined || b[key] === undefined || a[key] === b[key]) continue;
      throw new WeightmixError(
        'ModelsDiffer',
        `${label(m)} is a ${b[key]} but ${label(k)} a ${a[key]}: models of different architectures are merged only with ${option}, as mergekit merges them only with --allow-crimes`,
      );
    }
  }
}

/**
 * Models whose configs give different widths (hidden_size) are refused, --allow-crimes or not: no method merges tensors of different
 * shapes, and passthrough would stack layers of both widths into a model no framework loads (verify found nothing wrong in it).
 * A model whose config gives no width (neither hidden_size nor text_config.hidden_size) is not judged.
 */
export function refuseMixedWidths(ckpts: Checkpoint[], label: (m: number) => string): void {
  // A multimodal config gives its language model's width in text_config.
  const widthOf = (config: Record<string, unknown> | null | undefined): number | undefined => {
    const text = config?.text_config;
    if (typeof config?.hidden_size === 'number') return config.hidden_size;
    return typeof text === 'object' && text !== null ? widthOf(text as Record<string, unknown>) : undefined;
  };
  const widths = ckpts.map((c) => widthOf(c.config));
  // One width is all widths agreeing: the first model that gives one against the first that gives another.
  const k = widths.findIndex((w) => w !== undefined);
  const m = widths.findIndex((w) => w !== undefined && w !== widths[k]);
  if (m < 0) return;
  throw new WeightmixError(
    'ShapeMismatch',
    `${label(m)} has hidden_size ${widths[m]} but ${label(k)} ${widths[k]}: models of different widths cannot be merged, nor their layers stacked into one model`,
  );
}
