/**
 * The output vocabulary mergekit builds (mergekit/tokenizer/build.py: build_tokenizer,
 * build_union_tokenizer) and each model's permutation into it, from the models' tokenizer.json files.
 * Ids of added tokens follow the tokenizers library's `add_tokens`: a token already in the vocabulary
 * keeps its id, a new one takes max(model vocabulary size, largest added id + 1).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import type { Checkpoint, SidecarFolder } from '../model/checkpoint';
import { parseJsonStrict } from '../format/json-strict';
import { confinedRealPath } from '../model/paths';
import type { Recipe } from './recipe-types';

export const TOKENIZER_FILE = 'tokenizer.json';

/** An entry of tokenizer.json's added_tokens (transformers' AddedToken). */
export interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** A model's tokenizer.json, as the vocabulary rebuild needs it. */
export interface TokenizerVocabulary {
  /** token → id: the model's vocabulary and its added tokens (transformers' get_vocab()). */
  vocab: Map<string, number>;
  /** Added tokens by content, each with its id and settings. */
  added: Map<string, AddedToken>;
  /** Entries of model.vocab (the tokenizers library's get_vocab_size(false)). */
  modelVocabSize: number;
}

function tokenizerError(ckpt: SidecarFolder, why: string): WeightmixError {
  return new WeightmixError('InvalidRecipe', `${path.join(ckpt.dir, TOKENIZER_FILE)}: ${why}`);
}

/** A model's tokenizer.json, or null without the file. */
export function readTokenizerVocabulary(ckpt: SidecarFolder): TokenizerVocabulary | null {
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
  const modelVocabSize = vocab.size;
  if (doc.added_tokens !== undefined && !Array.isArray(doc.added_tokens)) throw tokenizerError(ckpt, 'added_tokens is not a list');
  const added = new Map<string, AddedToken>();
  for (const t of (doc.added_tokens ?? []) as Record<string, unknown>[]) {
    const content = String(t?.content);
    const flag = (k: string, dflt: boolean) => (typeof t[k] === 'boolean' ? (t[k] as boolean) : dflt);
    const special = flag('special', false);
    const token = {
      id: id(t?.id, content),
      content,
      single_word: flag('single_word', false),
      lstrip: flag('lstrip', false),
      rstrip: flag('rstrip', false),
      normalized: flag('normalized', !special),
      special,
    };
    added.set(content, token);
    vocab.set(content, token.id);
  }
  return { vocab, added, modelVocabSize };
}

/** A token added by name (transformers' add_tokens(str)): not special, normalized. */
function plainToken(content: string): Omit<AddedToken, 'id'> {
  return { content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false };
}

const SETTINGS = ['content', 'single_word', 'lstrip', 'rstrip', 'normalized', 'special'] as const;

/** Two added tokens alike in content and every setting (the tokenizers library's equality). */
function sameSettings(a: Omit<AddedToken, 'id'>, b: Omit<AddedToken, 'id'>): boolean {
  return SETTINGS.every((k) => a[k] === b[k]);
}

/** A tokenizer being extended, as the tokenizers library's AddedVocabulary does it. */
class GrowingTokenizer {
  readonly vocab: Map<string, number>;
  readonly added: Map<string, AddedToken>;
  constructor(
    from: TokenizerVocabulary,
    private readonly modelVocabSize = from.modelVocabSize,
  ) {
    this.vocab = new Map(from.vocab);
    this.added = new Map(from.added);
  }

  /** add_tokens([token]): an added token already there with the same settings is left as it is; a known token keeps its id (and takes these settings). */
  add(token: Omit<AddedToken, 'id'>): void {
    const old = this.added.get(token.content);
    if (token.content === '' || (old && sameSettings(old, token))) return;
    let id = this.vocab.get(token.content);
    if (id === undefined) {
      let max = -1;
      for (const t of this.added.values()) max = Math.max(max, t.id);
      id = max >= this.modelVocabSize ? max + 1 : this.modelVocabSize;
    }
    this.added.set(token.content, { ...token, id });
    this.vocab.set(token.content, id);
  }
}

/** The output vocabulary and, per recipe model, where each of its ids comes from. */
export interface OutputVocabulary {
  /** token → output id. */
  vocab: Map<string, number>;
  /** Tokens by output id, 0 … the largest id (an id no token has is a hole). */
  tokens: (string | undefined)[];
  /** Whether every id below the largest has a token (mergekit's rebuild needs this: it makes len(vocab) rows). */
  gapFree: boolean;
  /** tokenizer.json's added_tokens of the output, by id. */
  added: AddedToken[];
  /** Whether added_tokens differ from the tokenizer source's (the tokenizer files are then rewritten). */
  addedChanged: boolean;
  /** Rows of embed_tokens and lm_head: the largest id + 1, padded to `pad_to_multiple_of`. */
  rows: number;
  /** Per recipe model: output id → that model's row, or −1 when it lacks the token. */
  permutations: Int32Array[];
  /** Per recipe model: its own token → id (a model without a tokenizer has the base's: mergekit). */
  modelVocabs: Map<string, number>[];
}

/** A model's vocabulary size: config.json's vocab_size, else its number of tokens (mergekit's get_vocab_size). */
function configVocabSize(ckpt: Checkpoint, tokens: number): number {
  const size = ckpt.config?.vocab_size;
  if (size === undefined || size === null) return tokens;
  // A vocab_size that is no count ("256") would be taken as the tokenizer's and named as the config's in every message.
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new WeightmixError('InvalidConfig', `${path.join(ckpt.dir, 'config.json')}: vocab_size must be a whole number, got ${JSON.stringify(size)}`);
  }
  return size;
}

/** Tokens of a vocabulary in id order (ties: as listed). */
function byId(vocab: Map<string, number>): [string, number][] {
  return [...vocab].sort((x, y) => x[1] - y[1]);
}

/**
 * mergekit's output vocabulary for `tokenizer_source` / the `tokenizer:` block (`from`: a model index, 'union', or the
 * folder of a tokenizer outside the merge), with the block's tokens added, and each model's permutation. Throws the one-line refusal.
 * Where mergekit orders the union's new tokens by a hash map's iteration (which differs from run to run),
 * weightmix takes the models in the recipe's order (base first) and each model's tokens by id.
 */
export function buildOutputVocabulary(
  recipe: Recipe,
  ckpts: Checkpoint[],
  from: number | 'union' | SidecarFolder,
  addTokens: string[],
  padTo: number | null,
): OutputVocabulary {
  const label = (m: number) => recipe.modelNames[m];
  const baseModel = recipe.base ?? 0;
  const read = ckpts.map((c) => readTokenizerVocabulary(c));
  // An outside tokenizer's ids index no rows of its own: only its vocabulary is read (mergekit's AutoTokenizer of it, unstripped).
  const sourceModel = from === 'union' ? baseModel : typeof from === 'number' ? from : null;
  const source = sourceModel === null ? readTokenizerVocabulary(from as SidecarFolder) : read[sourceModel];
  if (source === null) {
    throw new WeightmixError(
      'UnsupportedRecipe',
      `${from === 'union' ? 'tokenizer source union: the base model' : 'tokenizer_source:'} ${sourceModel === null ? recipe.outsideTokenizer?.name : label(sourceModel)} has no ${TOKENIZER_FILE}, and mergekit rebuilds the embeddings from its vocabulary`,
    );
  }
  // A model without tokenizer.json is taken to have the base model's vocabulary (mergekit assumes so); the base's own, for an
  // outside source, cannot be assumed to be that source's (mergekit loads the base's tokenizer, and fails without one).
  if (sourceModel === null && read[baseModel] === null) {
    throw new WeightmixError(
      'UnsupportedRecipe',
      `tokenizer_source: ${label(baseModel)} has no ${TOKENIZER_FILE}, so its embedding rows cannot be matched to ${recipe.outsideTokenizer?.name}'s tokens`,
    );
  }
  const base = read[baseModel] ?? source;
  const sizes = read.map((t, m) => configVocabSize(ckpts[m], (t ?? base).vocab.size));
  // mergekit strips the base tokenizer of tokens past its vocab_size (rewriting its merges), which weightmix does not do.
  for (const m of new Set(sourceModel === null ? [baseModel] : [baseModel, sourceModel])) {
    const t = read[m] ?? base;
    for (const [tok, i] of t.vocab)
      if (i >= sizes[m]) {
        throw new WeightmixError(
          'UnsupportedRecipe',
          `tokenizer: ${label(m)}'s tokenizer has ${JSON.stringify(tok)} at id ${i}, past its config vocab_size ${sizes[m]}; mergekit rewrites the tokenizer without such tokens, which weightmix does not do`,
        );
      }
  }

  const out = new GrowingTokenizer(source);
  if (from === 'union') {
    // build_union_tokenizer: every model's vocabulary tokens, then every model's added tokens (the first settings win).
    const order = [baseModel, ...recipe.models.map((_, m) => m).filter((m) => m !== baseModel && read[m] !== null)];
    const addedTokens = new Map<string, AddedToken>();
    const vocabTokens = new Set<string>();
    for (const m of order) {
      const t = read[m]!;
      for (const [tok, i] of byId(t.vocab)) if (i < sizes[m] && !t.added.has(tok)) vocabTokens.add(tok);
      for (const a of [...t.added.values()].sort((x, y) => x.id - y.id)) if (a.id < sizes[m] && !addedTokens.has(a.content)) addedTokens.set(a.content, a);
    }
    for (const tok of vocabTokens) if (!addedTokens.has(tok) && !base.vocab.has(tok)) out.add(plainToken(tok));
    for (const a of addedTokens.values()) out.add(a);
  }
  // A token already in the vocabulary is left as it is (mergekit re-adds it through add_tokens(str), which turns a
  // vocabulary token into an added one and an existing special token into a plain one; the ids are the same).
  for (const tok of addTokens) if (!out.vocab.has(tok)) out.add(plainToken(tok));

  let size = 0;
  for (const i of out.vocab.values()) size = Math.max(size, i + 1);
  const tokens: (string | undefined)[] = new Array<string | undefined>(size);
  for (const [tok, i] of out.vocab) tokens[i] = tok;
  const rows = padTo !== null && size % padTo !== 0 ? Math.ceil(size / padTo) * padTo : size;

  const modelVocabs = read.map((t) => (t ?? base).vocab);
  const permutations = modelVocabs.map((vocab, m) => {
    const p = new Int32Array(tokens.length).fill(-1);
    tokens.forEach((tok, i) => {
      const j = tok === undefined ? undefined : vocab.get(tok);
      if (j === undefined) return;
      // mergekit leaves such a token out of the permutation and then fails on it (a KeyError).
      if (j >= sizes[m]) {
        throw new WeightmixError(
          'UnsupportedRecipe',
          `tokenizer: ${label(m)}'s tokenizer has ${JSON.stringify(tok)} at id ${j}, past its config vocab_size ${sizes[m]} (mergekit fails on such a token)`,
        );
      }
      p[i] = j;
    });
    return p;
  });
  const added = [...out.added.values()].sort((x, y) => x.id - y.id);
  const addedChanged =
    added.length !== source.added.size ||
    added.some((a) => {
      const o = source.added.get(a.content);
      return o === undefined || o.id !== a.id || !sameSettings(o, a);
    });
  return { vocab: out.vocab, tokens, gapFree: out.vocab.size === size, added, addedChanged, rows, permutations, modelVocabs };
}
