/**
 * Token #N with the model's own tokenizer: its `tokenizer.json` (and `tokenizer_config.json`) read by
 * `@huggingface/tokenizers`, the JavaScript port of the Rust library. The model is a folder or a hub id
 * (only the tokenizer files are downloaded).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { usageError, WeightmixError } from '../errors';
import { showValue } from '../options';
import { parseJsonStrict } from '../format/json-strict';
import { confinedRealPath } from '../model/paths';
import { checkModelReference, resolveReference, ResolveOptions } from '../hub/resolve';
import { bareNameHint } from '../hub/reference';
import { checkOptions, OptionKeys } from '../api/validate-options';
import { withGuardedCallbacks } from '../api/guarded-callbacks';

/** A model's tokenizer, as `loadTokenCounter` loads it. */
export interface TokenCounter {
  /** Tokens in `text`, without the special tokens a template would add (BOS, EOS). */
  count(text: string): number;
  /** The folder the tokenizer came from (a cache snapshot for a hub id). */
  dir: string;
}

const TOKENIZER_KEYS: OptionKeys<Omit<ResolveOptions, 'purpose'>> = { env: 'optional', onDownload: 'optional', onNotice: 'optional', signal: 'optional' };

/**
 * Loads a model's tokenizer (`tokenizer.json`, `tokenizer_config.json`) to count tokens as `score`'s
 * Token #N does; the model is a folder or a hub id (only the tokenizer files are downloaded).
 *
 * @example
 * ```ts
 * import { loadTokenCounter } from 'weightmix';
 * const tokens = await loadTokenCounter('Qwen/Qwen3-0.6B');
 * console.log(tokens.count('Hello, world'));
 * ```
 * @throws {@link WeightmixError} `Usage`, `ModelNotFound`, `InvalidTokenizer`, `InvalidJson`, `UnsafePath`, a hub code (see `resolveModelReference`).
 */
export async function loadTokenCounter(model: string, options: Omit<ResolveOptions, 'purpose'> = {}): Promise<TokenCounter> {
  checkModelReference('loadTokenCounter', model);
  checkOptions<Omit<ResolveOptions, 'purpose'>>('loadTokenCounter', options, TOKENIZER_KEYS);
  const source = await withGuardedCallbacks(options, (guarded) => resolveReference(model, { ...guarded, purpose: 'tokenizer' }));
  const readJson = (name: string, required: boolean): object | null => {
    if (!required && !fs.existsSync(path.join(source.dir, name))) return null;
    const file = confinedRealPath(source.dir, name, `tokenizer ${model}`);
    return parseJsonStrict(fs.readFileSync(file, 'utf8'), { what: file }) as object;
  };
  const st = fs.statSync(source.dir, { throwIfNoEntry: false });
  if (!st) throw new WeightmixError('ModelNotFound', `tokenizer: model folder not found: ${model}${bareNameHint(model)}`);
  // A tokenizer.json given itself: the folder that holds it is meant.
  if (!st.isDirectory())
    throw new WeightmixError('ModelNotFound', `tokenizer: ${model} is a file, not a model folder (give the folder that holds tokenizer.json)`);
  const json = readJson('tokenizer.json', true);
  const config = readJson('tokenizer_config.json', false) ?? {};
  // Loaded on first use: most runs of `score` count no tokens.
  const { Tokenizer } = await import('@huggingface/tokenizers');
  let tokenizer: InstanceType<typeof Tokenizer>;
  try {
    tokenizer = new Tokenizer(json!, config);
  } catch (e) {
    throw new WeightmixError('InvalidTokenizer', `${model}: tokenizer.json cannot be loaded: ${(e as Error).message}`);
  }
  return {
    dir: source.dir,
    count: (text) => {
      // The tokenizer encodes a number or null as no tokens at all: a caller's wrong field would count as empty responses.
      if (typeof text !== 'string') throw usageError(`TokenCounter.count(text): text must be a string, got ${showValue(text)}`);
      return tokenizer.encode(text, { add_special_tokens: false }).ids.length;
    },
  };
}
