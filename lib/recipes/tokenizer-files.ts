/**
 * The output's tokenizer files for a vocabulary with added tokens (a union, the block's new tokens):
 * tokenizer.json's added_tokens and tokenizer_config.json's added_tokens_decoder list every added token
 * by id, as transformers saves a tokenizer after add_tokens. The vocabulary proper is the source's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AddedToken, OutputVocabulary } from './tokenizer-vocabulary';

async function rewriteJson(file: string, edit: (doc: Record<string, unknown>) => boolean): Promise<void> {
  if (!fs.existsSync(file)) return;
  const doc = JSON.parse(await fs.promises.readFile(file, 'utf8')) as Record<string, unknown>;
  if (edit(doc)) await fs.promises.writeFile(file, JSON.stringify(doc, null, 2) + '\n');
}

/** tokenizer_config.json's form of an added token (its id is the key). */
function decoderEntry(t: AddedToken): Record<string, unknown> {
  return { content: t.content, lstrip: t.lstrip, normalized: t.normalized, rstrip: t.rstrip, single_word: t.single_word, special: t.special };
}

/** Rewrites the added tokens of the tokenizer files copied into `dir`, when the vocabulary changed them. */
export async function writeAddedTokens(dir: string, vocabulary: OutputVocabulary): Promise<void> {
  if (!vocabulary.addedChanged) return;
  const added = vocabulary.added.map((t) => ({
    id: t.id,
    content: t.content,
    single_word: t.single_word,
    lstrip: t.lstrip,
    rstrip: t.rstrip,
    normalized: t.normalized,
    special: t.special,
  }));
  await rewriteJson(path.join(dir, 'tokenizer.json'), (doc) => {
    doc.added_tokens = added;
    return true;
  });
  // transformers 4 lists the added tokens there too (transformers 5 writes no such key: then none is added).
  await rewriteJson(path.join(dir, 'tokenizer_config.json'), (doc) => {
    if (doc.added_tokens_decoder === undefined) return false;
    doc.added_tokens_decoder = Object.fromEntries(vocabulary.added.map((t) => [String(t.id), decoderEntry(t)]));
    return true;
  });
}
