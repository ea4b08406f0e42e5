/** A parsed mergekit recipe, as data: what the parser (recipe.ts) produces and the methods read. */
import type { FloatDtype } from '../format/dtypes';
import type { ParameterMap } from './recipe-params';
import type { MergeMethodName } from '../merge-method-names';
import type { ChatTemplateSetting } from './chat-template';

/** A `tokens` entry's source, with models as recipe indices. */
export type TokenRowSource =
  { kind: 'model'; model: number } | { kind: 'zero' } | { kind: 'model_token'; model: number; tokenId: number | null; token: string | null };

/** A `tokens` entry of the tokenizer block. */
export interface TokenSetting {
  /** Where the token's row comes from when a model lacks the token (or, with `force`, in every model). */
  source: TokenRowSource;
  /** mergekit's `force`: every model takes the row from `source`, not only the models that lack the token. */
  force: boolean;
}

/** One model's contribution to a slice. */
export interface RecipeSource {
  /** Index into `Recipe.models`. */
  model: number;
  /** [start, end) decoder layers; null: all layers of the model (the `models:` form). */
  layerRange: [number, number] | null;
  /** This source's parameters (mergekit's per-model `parameters`). */
  parameters: ParameterMap;
}

/** A run of output layers and the models it comes from. */
export interface RecipeSlice {
  /** The models merged into this slice's layers. */
  sources: RecipeSource[];
  /** The slice's own parameters. */
  parameters: ParameterMap;
  /** Index into `Recipe.models` of the slice's own `base_model` (mergekit: it replaces the recipe's for this slice), or null. */
  base: number | null;
}

/** A validated mergekit recipe, as `parseRecipe` and `readRecipeFile` return it and `merge` takes it. */
export interface Recipe {
  /** `merge_method`. */
  method: MergeMethodName;
  /** Absolute model folders, in order of first mention (base model included). */
  models: string[];
  /** Per model: the PEFT LoRA adapter (a folder, absolute, or a hub id) applied to it before merging (mergekit's `model+lora`), or null. */
  adapters: (string | null)[];
  /** As written in the recipe, for messages and the model card. */
  modelNames: string[];
  /** Index into `models` of `base_model`, or null without one. */
  base: number | null;
  /** The `models:` form is one slice whose sources span every layer. */
  slices: RecipeSlice[];
  /** Which of mergekit's two forms the recipe was written in. */
  form: 'models' | 'slices';
  /** The recipe's top-level `parameters`. */
  parameters: ParameterMap;
  /** `modules: {default: {parameters}}`: looked up after the slice's and before the recipe's (empty without `modules`). */
  moduleParameters: ParameterMap;
  /** Per-model parameters of the `models:` form (they also apply to tensors outside the layers). */
  modelParameters: Map<number, ParameterMap>;
  /** Arithmetic is always f32 here; `dtype` only sets the output dtype when `out_dtype` is absent. */
  dtype: FloatDtype | null;
  /** `out_dtype`: the output dtype of float tensors (null: the `dtype`, else each tensor's own). */
  outDtype: FloatDtype | null;
  /** Model index whose tokenizer and templates the output gets (its config.json: the base model's, else the first's). */
  tokenizerSource: number;
  /**
   * With `tokenizer_source` or a `tokenizer` block: the model whose vocabulary the embeddings are rebuilt for, 'union' (every
   * model's) or 'outside' (`outsideTokenizer`'s); else null.
   */
  vocabularyFrom: number | 'union' | 'outside' | null;
  /**
   * A `tokenizer_source` that is none of the recipe's models: its folder (absolute) or hub id, and the name as written. It gives
   * the output its tokenizer files and vocabulary, nothing else (a hub id downloads only those and config.json); null otherwise.
   */
  outsideTokenizer: { model: string; name: string } | null;
  /** The `tokenizer` block's `tokens` (token → its row's source, force) and `pad_to_multiple_of`; null without the block. */
  vocabularyOptions: { tokens: Map<string, TokenSetting>; padToMultipleOf: number | null } | null;
  /** `random_seed` (DARE masks), or null. */
  randomSeed: number | null;
  /** `chat_template`: the template text to write, or `auto` (the models' most common); null: the tokenizer source's as it is. */
  chatTemplate: ChatTemplateSetting | null;
  /** The recipe as read, for the model card. */
  document: unknown;
  /**
   * What the recipe holds that weightmix, as mergekit, ignores: keys no model of mergekit's configuration declares and parameters
   * the method does not take, one line each; `merge` and `mergeBatch` give each as a notice.
   */
  ignored?: string[];
}
