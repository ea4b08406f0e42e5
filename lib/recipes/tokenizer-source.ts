/**
 * mergekit's `tokenizer_source`: the output takes that tokenizer's vocabulary, every model's embedding
 * rows (embed_tokens, lm_head) are rebuilt for it (row i of the output is each model's row of token
 * i's id: mergekit's PermutedEmbeddings) and config.json's vocab_size becomes the vocabulary's size.
 * weightmix runs the case where that rebuild is a cut: every model holds every token of the vocabulary
 * at the same id, below its own row count (one tokenizer family: a Qwen3 goes 151,936 → 151,669 rows).
 * Vocabularies that differ need rows moved and averaged, which is refused by name.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { Checkpoint, TensorLocation } from '../model/checkpoint';
import { parseJsonStrict } from '../format/json-strict';
import { confinedRealPath } from '../model/paths';
import { classifyTensor } from '../model/tensor-names';
import { dtypeByteLength } from '../format/safetensors';
import type { Recipe } from './recipe';
import { checkTokenizerBlock } from './tokenizer-block';

const TOKENIZER_FILE = 'tokenizer.json';

function tokenizerError(ckpt: Checkpoint, why: string): WeightmixError {
  return new WeightmixError('InvalidRecipe', `${path.join(ckpt.dir, TOKENIZER_FILE)}: ${why}`);
}

/** token → id from tokenizer.json: the model's vocabulary and its added tokens (transformers' get_vocab()); null without the file. */
export function readVocabulary(ckpt: Checkpoint): Map<string, number> | null {
  if (!ckpt.sidecars.includes(TOKENIZER_FILE)) return null;
  const text = fs.readFileSync(confinedRealPath(ckpt.dir, TOKENIZER_FILE, ckpt.dir), 'utf8');
  const doc = parseJsonStrict(text, { what: TOKENIZER_FILE, maxDepth: 64 }) as { model?: { vocab?: unknown }; added_tokens?: unknown };
  const vocab = new Map<string, number>();
  const entries = doc?.model?.vocab;
  const id = (v: unknown, tok: string) => {
    if (!Number.isInteger(v) || (v as number) < 0)
      throw tokenizerError(ckpt, `token ${JSON.stringify(tok)} has id ${JSON.stringify(v)}, not a non-negative integer`);
    return v as number;
  };
  if (Array.isArray(entries))
    entries.forEach((e, i) => vocab.set(String(Array.isArray(e) ? e[0] : e), i)); // Unigram: [piece, score] at id = index
  else if (entries !== null && typeof entries === 'object') for (const [tok, v] of Object.entries(entries)) vocab.set(tok, id(v, tok));
  else throw tokenizerError(ckpt, 'no model.vocab');
  if (doc.added_tokens !== undefined && !Array.isArray(doc.added_tokens)) throw tokenizerError(ckpt, 'added_tokens is not a list');
  for (const t of (doc.added_tokens ?? []) as { content?: unknown; id?: unknown }[]) vocab.set(String(t.content), id(t.id, String(t.content)));
  return vocab;
}

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
 * The output's embedding row count under `tokenizer_source` (null without the key): the largest
 * token id of the vocabulary plus one (mergekit's len(vocab) when ids have no gaps; with gaps mergekit
 * fails on an index, and weightmix keeps every row up to the largest id). Throws the one-line refusal.
 */
export function vocabularyRows(recipe: Recipe, ckpts: Checkpoint[]): number | null {
  if (recipe.vocabularyFrom === null) return null;
  const label = (m: number) => recipe.modelNames[m];
  const from = recipe.vocabularyFrom;
  const out = readVocabulary(ckpts[from]);
  if (out === null)
    throw new WeightmixError(
      'UnsupportedRecipe',
      `tokenizer_source: ${label(from)} has no ${TOKENIZER_FILE}, and mergekit rebuilds the embeddings from its vocabulary`,
    );
  const baseModel = recipe.base ?? 0;
  const baseVocab = readVocabulary(ckpts[baseModel]) ?? out;
  let rows = 0;
  for (const i of out.values()) rows = Math.max(rows, i + 1);
  // mergekit drops tokens past the config's vocab_size (and rewrites the tokenizer without them).
  const size = ckpts[from].config?.vocab_size;
  if (typeof size === 'number' && rows > size) {
    throw new WeightmixError(
      'UnsupportedRecipe',
      `tokenizer_source: ${label(from)}'s tokenizer has ids up to ${rows - 1}, past its config vocab_size ${size}; mergekit rewrites the tokenizer without them, which weightmix does not do`,
    );
  }
  recipe.models.forEach((_, m) => {
    // mergekit: a model without a tokenizer is taken to have the base model's.
    const vocab = m === from ? out : (readVocabulary(ckpts[m]) ?? baseVocab);
    for (const [tok, i] of out) {
      const j = vocab.get(tok);
      if (j !== i) {
        throw new WeightmixError(
          'UnsupportedRecipe',
          `tokenizer_source: token ${JSON.stringify(tok)} is id ${i} in ${label(from)}'s vocabulary but ${j === undefined ? 'absent' : `id ${j}`} in ${label(m)}'s; ` +
            'mergekit would move or average embedding rows for it, which weightmix does not do (merge models that share a tokenizer, or leave out tokenizer_source to keep the embeddings as they are)',
        );
      }
    }
    const have = embeddingRows(ckpts[m]);
    if (have !== null && have < rows) {
      throw new WeightmixError(
        'UnsupportedRecipe',
        `tokenizer_source: the vocabulary has ids up to ${rows - 1} but ${label(m)}'s embeddings have ${have} rows; mergekit would fill new rows, which weightmix does not do`,
      );
    }
  });
  if (recipe.vocabularyOptions) checkTokenizerBlock(recipe.vocabularyOptions, out, rows);
  return rows;
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
