/**
 * mergekit's `tokenizer:` block (mergekit/tokenizer/config.py): `source` (`union`, its default, `base` or
 * a model), `tokens` (token → the source of its row: a model, `kind: zero`, or `kind: model_token` with
 * a model's `token_id` or `token`; `force` replaces the row in every model; a token not in the
 * vocabulary is added) and `pad_to_multiple_of`. Parsed here; tokenizer-source.ts builds the vocabulary.
 */
import { WeightmixError } from '../errors';
import type { TokenRowSource, TokenSetting } from './recipe-types';
import { unknownKeys } from './ignored-keys';

const BLOCK_KEYS = ['source', 'tokens', 'pad_to_multiple_of'];
const TOKEN_KEYS = ['source', 'force'];
const MODEL_TOKEN_KEYS = ['kind', 'model', 'token_id', 'token'];

function invalid(message: string): WeightmixError {
  return new WeightmixError('InvalidRecipe', message);
}

export interface TokenizerBlock {
  /** `base`, `union` (mergekit's default) or a model reference, as written. */
  source: unknown;
  tokens: Map<string, TokenSetting>;
  padToMultipleOf: number | null;
}

/** A `tokens` entry's source; `model` resolves a model reference written in the recipe to its index. */
function tokenSource(value: unknown, where: string, model: (written: unknown, where: string) => number): TokenRowSource {
  if (value === undefined || value === null) throw invalid(`${where}: a source is required (mergekit stops on an entry without one)`);
  if (typeof value === 'string') return { kind: 'model', model: model(value, where) };
  if (typeof value !== 'object' || Array.isArray(value))
    throw invalid(`${where}: expected a model, {kind: zero} or {kind: model_token, model, token_id | token}`);
  const v = value as Record<string, unknown>;
  if (v.kind === 'zero') {
    if (Object.keys(v).length > 1) throw invalid(`${where}: {kind: zero} takes no other key`);
    return { kind: 'zero' };
  }
  if (v.kind !== 'model_token') throw invalid(`${where}.kind: expected zero or model_token, got ${JSON.stringify(v.kind)}`);
  const bad = Object.keys(v).filter((k) => !MODEL_TOKEN_KEYS.includes(k));
  if (bad.length > 0) throw invalid(`${where}: unknown key '${bad[0]}' (model_token takes ${MODEL_TOKEN_KEYS.join(', ')})`);
  const hasId = v.token_id !== undefined && v.token_id !== null;
  const hasToken = v.token !== undefined && v.token !== null;
  if (hasId === hasToken) throw invalid(`${where}: give exactly one of token_id or token (as mergekit)`);
  if (hasId && (!Number.isInteger(v.token_id) || (v.token_id as number) < 0)) throw invalid(`${where}.token_id: expected a non-negative integer`);
  if (hasToken && typeof v.token !== 'string') throw invalid(`${where}.token: expected a string`);
  return {
    kind: 'model_token',
    model: model(v.model, `${where}.model`),
    tokenId: hasId ? (v.token_id as number) : null,
    token: hasToken ? (v.token as string) : null,
  };
}

/** `ignored` receives a note for each key of the block, or of a token's entry, that mergekit ignores (ignored-keys.ts). */
export function parseTokenizerBlock(value: unknown, model: (written: unknown, where: string) => number, ignored: string[]): TokenizerBlock {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('tokenizer: expected a mapping');
  const block = value as Record<string, unknown>;
  unknownKeys(block, BLOCK_KEYS, 'tokenizer', ignored);
  const tokens = new Map<string, TokenSetting>();
  if (block.tokens !== undefined && block.tokens !== null) {
    if (typeof block.tokens !== 'object' || Array.isArray(block.tokens)) throw invalid('tokenizer.tokens: expected a mapping of token → {source, force}');
    for (const [token, spec] of Object.entries(block.tokens as Record<string, unknown>)) {
      const where = `tokenizer.tokens.${JSON.stringify(token)}`;
      if (token === '') throw invalid(`${where}: a token cannot be empty`);
      if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw invalid(`${where}: expected a mapping`);
      unknownKeys(spec as Record<string, unknown>, TOKEN_KEYS, where, ignored);
      const force = (spec as { force?: unknown }).force ?? false;
      if (typeof force !== 'boolean') throw invalid(`${where}.force: expected true or false`);
      tokens.set(token, { source: tokenSource((spec as { source?: unknown }).source, `${where}.source`, model), force });
    }
  }
  const pad = block.pad_to_multiple_of;
  if (pad !== undefined && pad !== null && (!Number.isInteger(pad) || (pad as number) <= 0))
    throw invalid('tokenizer.pad_to_multiple_of: expected a positive integer');
  return { source: block.source ?? 'union', tokens, padToMultipleOf: (pad as number | undefined) ?? null };
}
