/**
 * The files a recipe merge writes beside its shards: the index, config.json (the base model's, else the first's: mergekit's
 * _model_out_config), the tokenizer source's tokenizer files and chat template, the vocabulary's and a stack's fixes to them,
 * and the model card; and the recipe as the shards' metadata records it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Checkpoint } from '../model/checkpoint';
import { isTokenizerSidecar } from '../model/tokenizer-sidecars';
import { hubProvenance, ModelCheckpoint } from '../hub/open-model';
import type { AdaptedCheckpoint } from './lora/adapted-models';
import { copySidecars, writeIndex, writeModelCard } from '../engine/model-files';
import type { PlannedModel, TensorRecipe } from '../engine/plan';
import { TORCH_DTYPE_NAMES } from '../format/dtypes';
import { configDtype } from './output-dtype';
import { setConfigVocabSize, VocabularyPlan } from './tokenizer-source';
import { writeAddedTokens } from './tokenizer-files';
import { chooseChatTemplate, writeChatTemplate } from './chat-template';
import type { Recipe } from './recipe-types';
import type { RecipePlan } from './recipe-plan';
import { methodFor } from './methods';
import { VERSION } from '../version';

/** The recipe as the output records it (safetensors metadata and model card), with the commit of each hub model. */
function recipeRecord(recipe: Recipe, ckpts: ModelCheckpoint[], vocabulary: VocabularyPlan | null): Record<string, unknown> {
  const hub = ckpts.some((c) => c.hub) ? ckpts.map(hubProvenance) : undefined;
  // model+lora: the commit of each adapter that came from the hub, per model.
  const adapters = ckpts.map((c) => (c as AdaptedCheckpoint).adapterHub);
  const adapterHub = adapters.some((a) => a) ? adapters.map((a) => hubProvenance({ hub: a })) : undefined;
  const tokenizerHub = vocabulary?.outside?.hub ? hubProvenance(vocabulary.outside) : undefined;
  return {
    method: recipe.method,
    recipe: recipe.document,
    hub,
    ...(adapterHub ? { adapterHub } : {}),
    ...(tokenizerHub ? { tokenizerHub } : {}),
    weightmix: VERSION,
  };
}

/** The metadata of every output shard's header. */
export function recipeMetadata(recipe: Recipe, ckpts: ModelCheckpoint[], vocabulary: VocabularyPlan | null): Record<string, string> {
  return { format: 'pt', weightmix: JSON.stringify(recipeRecord(recipe, ckpts, vocabulary)) };
}

/** The files beside the shards: index (`writeIndexFile`: preparedIndex's, when its bytes were made during the run), config and tokenizer (layer count fixed for stacks), model card. */
export async function finishRecipeOutput(
  model: PlannedModel,
  recipe: Recipe,
  ckpts: ModelCheckpoint[],
  planned: RecipePlan,
  recipes: ReadonlyMap<string, TensorRecipe>,
  writeIndexFile: () => Promise<void> = () => writeIndex(model),
): Promise<void> {
  const method = methodFor(recipe.method);
  const { tensors: out, layers, layerSources, views } = planned;
  await writeIndexFile();
  // As mergekit: the config (and generation config) of the base model, else of the first; the tokenizer of the tokenizer source.
  const from = ckpts[configModel(recipe)];
  const outside = planned.vocabulary?.outside ?? null;
  const tokenizerFrom = outside ?? ckpts[recipe.tokenizerSource];
  const tokenizerName = outside ? `${recipe.outsideTokenizer?.name} (its tokenizer files only)` : recipe.modelNames[recipe.tokenizerSource];
  // config.json states the dtype of the tensors written (mergekit: F32 tensors from an F32 base are said to be F32).
  const written = configDtype(out.map((t) => ({ dtype: recipes.get(t.name)!.dtype, elements: views[t.sources[0].model].get(t.name)!.elementCount })));
  const stated: unknown = from.config?.dtype ?? from.config?.torch_dtype;
  const dtype = written && stated !== TORCH_DTYPE_NAMES[written] ? written : undefined;
  if (tokenizerFrom === from) {
    await copySidecars(from, model.dir, dtype);
  } else {
    await copySidecars(from, model.dir, dtype, (name) => !isTokenizerSidecar(name));
    await copySidecars(tokenizerFrom, model.dir, undefined, isTokenizerSidecar);
  }
  if (planned.vocabulary !== null) {
    await setConfigVocabSize(model.dir, planned.vocabulary.rows);
    await writeAddedTokens(model.dir, planned.vocabulary.vocabulary);
  }
  // mergekit sets the template on the tokenizer it saves; with no tokenizer to save it writes none.
  const hasTokenizer = tokenizerFrom.sidecars.some((n) => TOKENIZER_FILES.includes(n));
  const chatTemplate = hasTokenizer ? chooseChatTemplate(recipe.chatTemplate, ckpts) : null;
  if (chatTemplate !== null) await writeChatTemplate(model.dir, chatTemplate);
  await fixLayerCount(
    model.dir,
    from,
    layers,
    layerSources.map((s) => ckpts[s.model].config),
    layerSources,
  );
  const drawsMasks = method.name.startsWith('dare') || method.name.startsWith('della');
  await writeModelCard(model.dir, {
    title: `${recipe.method} merge of ${recipe.modelNames.map((n) => path.basename(n)).join(', ')}`,
    sources: [
      ...ckpts.map((c, i) => ({ role: i === recipe.base ? 'base model' : `model ${i}`, dir: c.dir, hub: c.hub })),
      ...(outside ? [{ role: 'tokenizer source', dir: outside.dir, hub: outside.hub }] : []),
    ],
    lines: [
      `merge_method: ${recipe.method}, from a mergekit recipe (${recipe.form} form)`,
      "arithmetic in f32, one round-to-nearest-even to the output dtype (the recipe's dtype sets only the output dtype when out_dtype is absent)",
      recipe.tokenizerSource === configModel(recipe) && !outside
        ? `config, tokenizer and templates from ${recipe.modelNames[recipe.tokenizerSource]}`
        : `config from ${recipe.modelNames[configModel(recipe)]}; tokenizer and templates from ${tokenizerName}`,
      ...(planned.vocabulary === null ? [] : [vocabularyLine(recipe, planned.vocabulary)]),
      ...recipe.adapters.flatMap((a, i) =>
        a === null ? [] : [`${recipe.modelNames[i]}: the LoRA adapter applied first (W + scale·B·A in f64, rounded once to each tensor's dtype)`],
      ),
      ...(recipe.chatTemplate === null ? [] : [chatTemplateLine(recipe.chatTemplate.kind, chatTemplate, hasTokenizer)]),
      ...(recipe.randomSeed !== null && !drawsMasks ? [`random_seed: ${recipe.randomSeed} (no method here draws random numbers)`] : []),
      ...(drawsMasks
        ? [
            `${method.name.startsWith('dare') ? 'DARE' : 'DELLA'} masks: counter-based (splitmix64) generator keyed by random_seed ${recipe.randomSeed ?? 0}, tensor name, model index and element index`,
          ]
        : []),
    ],
    recipe: recipeRecord(recipe, ckpts, planned.vocabulary),
  });
}

function vocabularyLine(recipe: Recipe, plan: VocabularyPlan): string {
  const which = recipe.vocabularyFrom === 'union' ? "the union of the models' vocabularies" : "that tokenizer's vocabulary";
  if (plan.kind === 'cut') return `embed_tokens and lm_head cut to the ${plan.rows} rows of ${which} (as mergekit rebuilds them)`;
  return (
    `embed_tokens and lm_head rebuilt for the ${plan.rows} rows of ${which}, as mergekit's PermutedEmbeddings: ` +
    "each model's own row of a token it has; else the recipe's tokens entry, the only holder's row, the base model's, or the mean over the holders (f64, rounded once)"
  );
}

/** The files that make a tokenizer (transformers loads one from any of them). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json'];

function chatTemplateLine(kind: 'auto' | 'text', written: string | null, hasTokenizer: boolean): string {
  if (!hasTokenizer) return 'chat_template: not written (the tokenizer source has no tokenizer files)';
  if (written === null) return 'chat_template: auto, and no model has one (the tokenizer is left as it is)';
  return `chat_template: ${kind === 'auto' ? "the most common of the models' templates" : "the recipe's"}, in chat_template.jinja`;
}

/** The model whose config.json the output gets: the base model, else the first (mergekit's _model_out_config). */
function configModel(recipe: Recipe): number {
  return recipe.base ?? 0;
}

/** A stacked (passthrough) model has another depth: config.json says so. */
async function fixLayerCount(
  dir: string,
  from: Checkpoint,
  layers: number,
  sourceConfigs: (Record<string, unknown> | null)[],
  sources: { layer: number }[],
): Promise<void> {
  const file = path.join(dir, 'config.json');
  if (!from.config || !fs.existsSync(file) || from.config.num_hidden_layers === layers) return;
  const config = JSON.parse(await fs.promises.readFile(file, 'utf8')) as Record<string, unknown>;
  config.num_hidden_layers = layers;
  if (Array.isArray(config.layer_types)) {
    config.layer_types = sources.map((s, i) => {
      const types = sourceConfigs[i]?.layer_types;
      return Array.isArray(types) && s.layer < types.length ? types[s.layer] : (config.layer_types as unknown[])[0];
    });
  }
  await fs.promises.writeFile(file, JSON.stringify(config, null, 2) + '\n');
}
