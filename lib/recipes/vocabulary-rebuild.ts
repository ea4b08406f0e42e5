/**
 * A recipe's models with their embed_tokens / lm_head rebuilt for the output vocabulary (mergekit's
 * PermutedEmbeddings), where that is more than a cut: the rows are written into a working folder beside
 * the output (`.NAME.weightmix-vocab-PID-…`, removed by `cleanup`, and as an output leftover if the process
 * dies), and the merge reads them like any input: every method, statistic and kernel unchanged.
 */
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import type { Checkpoint, TensorLocation } from '../model/checkpoint';
import type { TokenizerFolder } from '../hub/open-model';
import { FloatDtype, isFloatDtype } from '../format/dtypes';
import { workingFolderBeside } from '../engine/output-leftovers';
import type { Recipe } from './recipe-types';
import { planOutputTensors } from './recipe-plan';
import { isEmbeddingMatrix, planVocabulary, VocabularyPlan } from './tokenizer-source';
import { embeddingRows } from './embedding-rows';
import { RebuiltTensor, writeRebuiltEmbeddings } from './permuted-embeddings';

export interface RebuiltModels<C extends Checkpoint> {
  /** Per recipe model: its checkpoint, with rebuilt embedding tensors where the vocabulary needs them. */
  ckpts: C[];
  /** The output vocabulary (null without the keys). */
  vocabulary: VocabularyPlan | null;
  /** Removes the working folder (call once the merge has read it). */
  cleanup(): Promise<void>;
}

/** Per model, the embedding tensors to rebuild and where each row comes from. */
function rebuiltTensors(recipe: Recipe, ckpts: Checkpoint[], plan: VocabularyPlan): Map<number, RebuiltTensor[]> {
  const label = (m: number) => recipe.modelNames[m];
  const settings = recipe.vocabularyOptions?.tokens ?? new Map();
  const perModel = new Map<number, RebuiltTensor[]>();
  for (const t of planOutputTensors(recipe, ckpts).tensors) {
    if (!isEmbeddingMatrix(t.name)) continue;
    // mergekit's set of models for the tensor: its sources and the base model.
    const models = [...new Set([...t.sources.map((s) => s.model), ...(t.base === null ? [] : [t.base])])].sort((a, b) => a - b);
    const sources = new Map<number, TensorLocation>();
    for (const m of models) {
      const loc = ckpts[m].tensors.get(t.sources.find((s) => s.model === m)?.name ?? t.name);
      if (!loc) throw new WeightmixError('ModelsDiffer', `tensor ${t.name} is missing from ${label(m)}, whose rows the vocabulary rebuild needs`);
      if (!isFloatDtype(loc.dtype) || loc.shape.length !== 2)
        throw new WeightmixError(
          'UnsupportedRecipe',
          `tokenizer: ${t.name} of ${label(m)} is a ${loc.dtype} tensor of shape [${loc.shape}], not a float matrix of rows`,
        );
      const p = plan.vocabulary.permutations[m];
      let largest = -1;
      for (const r of p) largest = Math.max(largest, r);
      // mergekit indexes the model's tensor with the token's id and fails past its rows.
      if (largest >= loc.shape[0]) {
        throw new WeightmixError(
          'UnsupportedRecipe',
          `tokenizer: ${label(m)}'s tokenizer has a token at id ${largest} but its ${t.name} has ${loc.shape[0]} rows (mergekit fails on an index)`,
        );
      }
      sources.set(m, loc);
    }
    const width = sources.get(models[0])!.shape[1];
    for (const m of models)
      if (sources.get(m)!.shape[1] !== width)
        throw new WeightmixError(
          'ShapeMismatch',
          `tensor ${t.name} has rows of ${sources.get(m)!.shape[1]} in ${label(m)} but ${width} in ${label(models[0])}`,
        );
    for (const r of embeddingRows(plan.vocabulary, models, t.base, settings, (m) => sources.get(m)!.shape[0], label)) {
      const dtype: FloatDtype = recipe.dtype ?? (sources.get(r.model)!.dtype as FloatDtype);
      if (!perModel.has(r.model)) perModel.set(r.model, []);
      perModel.get(r.model)!.push({ name: t.name, rows: r, sources, dtype });
    }
  }
  return perModel;
}

/**
 * Plans the vocabulary of `recipe` (`outside`: its tokenizer source outside the merge, opened) and, where it is more than a
 * cut, rebuilds the models' embeddings beside `output`.
 */
export async function rebuildVocabulary<C extends Checkpoint>(
  recipe: Recipe,
  ckpts: C[],
  output: string,
  signal?: AbortSignal,
  outside: TokenizerFolder | null = null,
): Promise<RebuiltModels<C>> {
  const vocabulary = planVocabulary(recipe, ckpts, outside);
  if (vocabulary?.kind !== 'rebuild') return { ckpts, vocabulary, cleanup: async () => {} };
  const perModel = rebuiltTensors(recipe, ckpts, vocabulary);
  const { dir, remove: cleanup } = await workingFolderBeside(output, 'vocab');
  const rebuilt = [...ckpts];
  try {
    for (const [m, tensors] of perModel)
      rebuilt[m] = await writeRebuiltEmbeddings(ckpts[m], tensors, vocabulary.rows, path.join(dir, `model-${m}.safetensors`), signal);
  } catch (e) {
    await cleanup();
    throw e;
  }
  return { ckpts: rebuilt, vocabulary, cleanup };
}
