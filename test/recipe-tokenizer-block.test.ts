/** mergekit's `tokenizer:` block where it is the vocabulary cut of `tokenizer_source`, and what the parser refuses. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../lib/model/checkpoint';
import { readTensorBytes } from '../lib/format/tensor-data';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { listTree, qwen3Names, rng, writeRandomBf16Model } from './helpers/models';
import { dir, useTempDir } from './helpers/temp-dir';

let A: string;
let B: string;
let counter = 0;

/** 30 tokens t0…t27, <|endoftext|>, <|im_end|> (ids 0…29) in a tokenizer.json. */
function writeVocabulary(d: string): void {
  const vocab: Record<string, number> = {};
  for (let i = 0; i < 28; i++) vocab[`t${i}`] = i;
  const added = [
    { id: 28, content: '<|endoftext|>', special: true },
    { id: 29, content: '<|im_end|>', special: true },
  ];
  fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify({ added_tokens: added, model: { type: 'BPE', vocab, merges: [] } }));
}

useTempDir('weightmix-tokenizer-block-');

beforeAll(async () => {
  const next = rng(41);
  const specs = [...qwen3Names(1), { name: 'lm_head.weight', shape: [40, 16] }];
  [A, B] = await Promise.all(
    ['a', 'b'].map(async (tag) => {
      const d = await writeRandomBf16Model(path.join(dir, tag), specs, next, tag);
      writeVocabulary(d);
      return d;
    }),
  );
});

const recipe = (extra: Record<string, unknown>) => ({
  merge_method: 'linear',
  models: [
    { model: A, parameters: { weight: 0.5 } },
    { model: B, parameters: { weight: 0.5 } },
  ],
  ...extra,
});

async function mergeTo(extra: Record<string, unknown>): Promise<Map<string, Buffer>> {
  const out = path.join(dir, `out-${counter++}`);
  await merge(parseRecipe(recipe(extra)), { output: out, threads: 2 });
  return new Map(
    listTree(out)
      .filter((f) => !f.endsWith('/'))
      .map((f) => [f, fs.readFileSync(path.join(out, f))]),
  );
}

test('tokenizer: {source: B} writes what tokenizer_source: B writes; a tokens entry for a token in the vocabulary, not forced, and a pad_to_multiple_of already met change nothing', async () => {
  const want = await mergeTo({ tokenizer_source: B });
  expect(want.size).toBeGreaterThan(2);
  const strip = (files: Map<string, Buffer>) => new Map([...files].filter(([f]) => f !== 'README.md' && !f.endsWith('.safetensors')));
  for (const block of [
    { source: B },
    { source: B, tokens: { t3: { source: A }, '<|im_end|>': { source: { kind: 'zero' }, force: false } }, pad_to_multiple_of: 10 },
  ]) {
    const got = await mergeTo({ tokenizer: block });
    expect(strip(got)).toEqual(strip(want));
    // The tensors are the same bytes; only the recorded recipe in the header differs.
    const [g, w] = await Promise.all([openCheckpoint(path.join(dir, `out-${counter - 1}`)), openCheckpoint(path.join(dir, 'out-0'))]);
    expect(g.tensors.get('lm_head.weight')!.shape).toEqual([30, 16]);
    for (const name of w.names) expect((await readTensorBytes(g.tensors.get(name)!)).equals(await readTensorBytes(w.tensors.get(name)!))).toBe(true);
  }
});

test('refusals: both keys, unknown keys, padding of 0, base without a base model (union, force, new tokens and padding that adds rows: recipe-tokenizer-union.test.ts)', () => {
  const refuses = (extra: Record<string, unknown>, message: RegExp) => expect(() => parseRecipe(recipe(extra))).toThrow(message);
  refuses({ tokenizer_source: B, tokenizer: { source: B } }, /give either 'tokenizer_source' or a 'tokenizer' block, not both/);
  refuses({ tokenizer: { source: B, sorce: A } }, /tokenizer: unsupported key 'sorce' \(did you mean 'source'\?\)/);
  // A key mergekit's TokenizerConfig ignores is ignored, with a note (recipe-mergekit-leniency.test.ts).
  expect(parseRecipe(recipe({ tokenizer: { source: B, comment: 'x', tokens: { t1: { source: A, note: 'y' } } } })).ignored).toEqual([
    "tokenizer: key 'comment' ignored: weightmix reads no such key here (mergekit ignores it too)",
    'tokenizer.tokens."t1": key \'note\' ignored: weightmix reads no such key here (mergekit ignores it too)',
  ]);
  refuses({ tokenizer: { source: B, pad_to_multiple_of: 0 } }, /pad_to_multiple_of: expected a positive integer/);
  refuses({ tokenizer: { source: 'base' } }, /tokenizer.source: 'base' needs a base_model/);
  refuses({ tokenizer: { source: B, tokens: { t1: { source: A, force: 'yes' } } } }, /tokenizer.tokens."t1".force: expected true or false/);
  expect(parseRecipe(recipe({ tokenizer: {} })).vocabularyFrom).toBe('union');
});
