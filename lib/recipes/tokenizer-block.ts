/**
 * mergekit's `tokenizer:` block (`source`, `tokens`, `pad_to_multiple_of`), where it maps onto the
 * vocabulary cut of tokenizer-source.ts: `source` is `base` or a model (as `tokenizer_source`); a
 * `tokens` entry changes nothing when the token is in that vocabulary and not forced (every model keeps
 * its own row); `pad_to_multiple_of` changes nothing when the vocabulary is already a multiple. The
 * rest needs embedding rows moved, averaged or filled, which is refused with the reason.
 */
import { WeightmixError } from '../errors';

/** Why a union vocabulary (and rows built per token) is refused. */
export const UNION_REFUSAL =
  "a union vocabulary appends other models' tokens and builds each model's embed_tokens and lm_head row by row (a token a model lacks takes the base's row, its only holder's, or the mean over its holders), and the engine reads each tensor as one range per model";

const BLOCK_KEYS = ['source', 'tokens', 'pad_to_multiple_of'];
const TOKEN_KEYS = ['source', 'force'];

function invalid(message: string): WeightmixError {
  return new WeightmixError('InvalidRecipe', message);
}

export interface TokenizerBlock {
  /** `base`, `union` (mergekit's default) or a model reference, as written. */
  source: unknown;
  /** token → force. */
  tokens: Map<string, boolean>;
  padToMultipleOf: number | null;
}

export function parseTokenizerBlock(value: unknown): TokenizerBlock {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('tokenizer: expected a mapping');
  const block = value as Record<string, unknown>;
  const unknown = Object.keys(block).filter((k) => !BLOCK_KEYS.includes(k));
  if (unknown.length > 0)
    throw new WeightmixError('UnsupportedRecipe', `tokenizer: unsupported key '${unknown[0]}' (mergekit's block has ${BLOCK_KEYS.join(', ')})`);
  const tokens = new Map<string, boolean>();
  if (block.tokens !== undefined && block.tokens !== null) {
    if (typeof block.tokens !== 'object' || Array.isArray(block.tokens)) throw invalid('tokenizer.tokens: expected a mapping of token → {source, force}');
    for (const [token, spec] of Object.entries(block.tokens as Record<string, unknown>)) {
      const where = `tokenizer.tokens.${JSON.stringify(token)}`;
      if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw invalid(`${where}: expected a mapping`);
      const bad = Object.keys(spec).filter((k) => !TOKEN_KEYS.includes(k));
      if (bad.length > 0) throw invalid(`${where}: unknown key '${bad[0]}' (mergekit takes ${TOKEN_KEYS.join(', ')})`);
      const force = (spec as { force?: unknown }).force ?? false;
      if (typeof force !== 'boolean') throw invalid(`${where}.force: expected true or false`);
      if (force)
        throw new WeightmixError('UnsupportedRecipe', `${where}: force replaces the token's row in every model's embeddings, which weightmix does not do`);
      tokens.set(token, force);
    }
  }
  const pad = block.pad_to_multiple_of;
  if (pad !== undefined && pad !== null && (!Number.isInteger(pad) || (pad as number) <= 0))
    throw invalid('tokenizer.pad_to_multiple_of: expected a positive integer');
  return { source: block.source ?? 'union', tokens, padToMultipleOf: (pad as number | undefined) ?? null };
}

/** The block's entries against the chosen vocabulary: each a no-op there, or refused. */
export function checkTokenizerBlock(
  block: { tokens: Map<string, boolean>; padToMultipleOf: number | null },
  vocabulary: Map<string, number>,
  rows: number,
): void {
  for (const token of block.tokens.keys()) {
    if (!vocabulary.has(token)) {
      throw new WeightmixError(
        'UnsupportedRecipe',
        `tokenizer.tokens: ${JSON.stringify(token)} is not in the vocabulary; mergekit adds it and builds its embedding row, which weightmix does not do`,
      );
    }
  }
  const m = block.padToMultipleOf;
  if (m !== null && rows % m !== 0) {
    throw new WeightmixError(
      'UnsupportedRecipe',
      `tokenizer.pad_to_multiple_of: ${rows} rows would be padded to ${Math.ceil(rows / m) * m} with each model's mean embedding row, which weightmix does not do`,
    );
  }
}
