/**
 * Token #N with the model's own tokenizer: its `tokenizer.json` (and `tokenizer_config.json`) read by
 * `@huggingface/tokenizers`, the JavaScript port of the Rust library. The model is a folder or a hub id
 * (only the tokenizer files are downloaded).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { parseJsonStrict } from '../format/json-strict';
import { confinedRealPath } from '../model/paths';
import { resolveModelReference, ResolveOptions } from '../hub/resolve';

export interface TokenCounter {
  /** Tokens in `text`, without the special tokens a template would add (BOS, EOS). */
  count(text: string): number;
  /** The folder the tokenizer came from (a cache snapshot for a hub id). */
  dir: string;
}

export async function loadTokenCounter(model: string, options: Omit<ResolveOptions, 'purpose'> = {}): Promise<TokenCounter> {
  const source = await resolveModelReference(model, { ...options, purpose: 'tokenizer' });
  const readJson = (name: string, required: boolean): object | null => {
    if (!required && !fs.existsSync(path.join(source.dir, name))) return null;
    const file = confinedRealPath(source.dir, name, `tokenizer ${model}`);
    return parseJsonStrict(fs.readFileSync(file, 'utf8'), { what: file }) as object;
  };
  if (!fs.existsSync(source.dir)) throw new WeightmixError('ModelNotFound', `tokenizer: model folder not found: ${model}`);
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
  return { dir: source.dir, count: (text) => tokenizer.encode(text, { add_special_tokens: false }).ids.length };
}
