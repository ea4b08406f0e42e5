/**
 * mergekit's `tokenizer_source` and `tokenizer:` block: the output takes the chosen vocabulary (a model's,
 * the base's, or the union of every model's, with the block's tokens added), every model's embedding rows
 * (embed_tokens, lm_head) are rebuilt for it (mergekit's PermutedEmbeddings) and config.json's vocab_size
 * becomes its size. Where the rebuild is a cut (every model holds every token of the vocabulary at the
 * same id, nothing forced, no padding rows; one tokenizer family: a Qwen3 goes 151,936 → 151,669 rows),
 * each model's tensor is read as its first rows; otherwise the rows are built into a working folder
 * (vocabulary-rebuild.ts) before the merge.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import type { Checkpoint, TensorLocation } from '../model/checkpoint';
import type { TokenizerFolder } from '../hub/open-model';
import { classifyTensor } from '../model/tensor-names';
import { dtypeByteLength } from '../format/safetensors';
import type { Recipe } from './recipe-types';
import { buildOutputVocabulary, OutputVocabulary } from './tokenizer-vocabulary';

/** Rows of a model's embedding matrix (its first embed or head tensor), or null when it has none. */
function embeddingRows(ckpt: Checkpoint): number | null {
  const name = ckpt.names.find((n) => isEmbeddingMatrix(n));
  return name === undefined ? null : ckpt.tensors.get(name)!.shape[0];
}

/** embed_tokens and lm_head: the tensors mergekit resizes to the vocabulary (is_embed). */
export function isEmbeddingMatrix(name: string): boolean {
  const m = classifyTensor(name).module;
  return m === 'embed' || m === 'head';
}

/**
 * What the vocabulary keys make of the embeddings: each model's first `rows` rows, or rows rebuilt per token; `outside`: the
 * tokenizer source outside the merge whose files the output takes (null: a model's).
 */
export interface VocabularyPlan {
  kind: 'cut' | 'rebuild';
  rows: number;
  vocabulary: OutputVocabulary;
  outside: TokenizerFolder | null;
}

/**
 * The output vocabulary of a recipe with `tokenizer_source` or a `tokenizer:` block (null without
 * either), and whether each model's embeddings are cut to it or rebuilt. Throws the one-line refusal.
 */
export function planVocabulary(recipe: Recipe, ckpts: Checkpoint[], outside: TokenizerFolder | null = null): VocabularyPlan | null {
  if (recipe.vocabularyFrom === null) return null;
  const options = recipe.vocabularyOptions;
  const from = recipe.vocabularyFrom === 'outside' ? outside : recipe.vocabularyFrom;
  if (from === null) throw new Error('internal: a tokenizer source outside the merge, not opened');
  const folder = typeof from === 'object' ? from : null; // its files go to the output only where its vocabulary does
  const vocabulary = buildOutputVocabulary(recipe, ckpts, from, [...(options?.tokens.keys() ?? [])], options?.padToMultipleOf ?? null);
  const { tokens, permutations, rows } = vocabulary;
  const forced = [...(options?.tokens.values() ?? [])].some((t) => t.force);
  const same = permutations.every((p) => tokens.every((tok, i) => tok === undefined || p[i] === i));
  const roomy = ckpts.every((c) => (embeddingRows(c) ?? rows) >= rows);
  // The cut keeps ids past a gap (mergekit would fail on an index there), as it always has.
  if (same && !forced && rows === tokens.length && roomy) return { kind: 'cut', rows, vocabulary, outside: folder };
  if (!vocabulary.gapFree) {
    const hole = tokens.findIndex((t) => t === undefined);
    throw new WeightmixError(
      'UnsupportedRecipe',
      `tokenizer: the output vocabulary has no token at id ${hole} (below its largest, ${tokens.length - 1}); mergekit builds ${vocabulary.vocab.size} rows and fails on an index, so weightmix refuses it`,
    );
  }
  return { kind: 'rebuild', rows, vocabulary, outside: folder };
}

/** How many of the vocabulary's tokens none of the recipe's models holds and no `tokens` entry names: their rows are zeros (mergekit stops on such a token). */
export function unheldTokens(plan: VocabularyPlan, settings: ReadonlyMap<string, unknown>): number {
  const { tokens, permutations } = plan.vocabulary;
  let n = 0;
  tokens.forEach((tok, id) => {
    if (tok !== undefined && !settings.has(tok) && permutations.every((p) => p[id] < 0)) n++;
  });
  return n;
}

/** The first `rows` rows of an embedding matrix (the same offset: rows are stored first-index-major). */
export function firstRows(loc: TensorLocation, rows: number): TensorLocation {
  if (loc.shape.length === 0 || loc.shape[0] <= rows) return loc;
  const perRow = loc.shape.slice(1).reduce((a, b) => a * b, 1);
  const elementCount = rows * perRow;
  return { ...loc, shape: [rows, ...loc.shape.slice(1)], elementCount, byteLength: dtypeByteLength(loc.dtype, elementCount) };
}

/** config.json's vocab_size follows the rebuilt vocabulary (mergekit's _update_config_vocab). */
export async function setConfigVocabSize(dir: string, rows: number): Promise<void> {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) return;
  const config = JSON.parse(await fs.promises.readFile(file, 'utf8')) as Record<string, unknown>;
  if (config.vocab_size === rows) return;
  config.vocab_size = rows;
  await fs.promises.writeFile(file, JSON.stringify(config, null, 2) + '\n');
}
