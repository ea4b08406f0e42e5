/** A parsed mergekit recipe, as data: what the parser (recipe.ts) produces and the methods read. */
import type { FloatDtype } from '../format/dtypes';
import type { ParameterMap } from './recipe-params';

export interface RecipeSource {
  /** Index into `Recipe.models`. */
  model: number;
  /** [start, end) decoder layers; null: all layers of the model (the `models:` form). */
  layerRange: [number, number] | null;
  parameters: ParameterMap;
}

export interface RecipeSlice {
  sources: RecipeSource[];
  parameters: ParameterMap;
}

export interface Recipe {
  method: string;
  /** Absolute model folders, in order of first mention (base model included). */
  models: string[];
  /** As written in the recipe, for messages and the model card. */
  modelNames: string[];
  base: number | null;
  /** The `models:` form is one slice whose sources span every layer. */
  slices: RecipeSlice[];
  form: 'models' | 'slices';
  parameters: ParameterMap;
  /** Per-model parameters of the `models:` form (they also apply to tensors outside the layers). */
  modelParameters: Map<number, ParameterMap>;
  /** Arithmetic is always f32 here; `dtype` only sets the output dtype when `out_dtype` is absent. */
  dtype: FloatDtype | null;
  outDtype: FloatDtype | null;
  /** Model index whose config, tokenizer and templates the output gets. */
  tokenizerSource: number;
  /** With `tokenizer_source` given: the model whose vocabulary the embeddings are rebuilt for (mergekit); else null. */
  vocabularyFrom: number | null;
  randomSeed: number | null;
  /** The recipe as read, for the model card. */
  document: unknown;
}
