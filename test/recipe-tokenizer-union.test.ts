/**
 * tokenizer_source: union and the full tokenizer: block: the output vocabulary (ids of new tokens as
 * the tokenizers library gives them), each model's rebuilt embed_tokens / lm_head against the line-by-line
 * reference of mergekit's PermutedEmbeddings (test/reference/permuted-embeddings.ts) bit for bit, on
 * random rows with special values; the merged output's files; bad input and the working folder.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../lib/model/checkpoint';
import { readTensorBytes } from '../lib/format/tensor-data';
import { decodeFloat, elementBits, encodeFloat } from '../lib/format/float-bits';
import type { FloatDtype } from '../lib/format/dtypes';
import { merge } from '../lib/recipes/merge-recipe';
import { mergeBatch } from '../lib/recipes/batch';
import { parseRecipe } from '../lib/recipes/recipe';
import { rebuildVocabulary } from '../lib/recipes/vocabulary-rebuild';
import { openTokenizerAs } from '../lib/hub/open-model';
import { filesFromFolder, isolatedHubEnv, repoOf, startHubServer } from './helpers/hub-server';
import { rng, writeRandomBf16Model, qwen3Names, TensorSpec } from './helpers/models';
import { ensureCliBuilt, expectOneLineError, leftoversBeside, runCli, scratchDir } from './helpers/cli';
import { referencePermutedEmbeddings, ReferenceTokenSetting } from './reference/permuted-embeddings';

const SEED = process.env.WEIGHTMIX_SEED !== undefined ? Number(process.env.WEIGHTMIX_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const EMBEDDINGS = ['model.embed_tokens.weight', 'lm_head.weight'];
const SPECIAL = { '<|endoftext|>': 28, '<|im_end|>': 29 };

let dir: string;
let A: string;
let B: string;
let C: string;
let T: string;
let counter = 0;

/** A tokenizer.json: regular tokens at ids 0…, then added special tokens at the given ids. */
function writeTokenizer(d: string, regular: string[], added: Record<string, number>): void {
  const vocab = Object.fromEntries(regular.map((t, i) => [t, i]));
  const addedTokens = Object.entries(added).map(([content, id]) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify({ added_tokens: addedTokens, model: { type: 'BPE', vocab, merges: [] } }));
  const decoder = Object.fromEntries(addedTokens.map(({ id, ...t }) => [String(id), t]));
  fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify({ added_tokens_decoder: decoder, tokenizer_class: 'Qwen2Tokenizer' }));
}

const ts = (from: number, to: number, prefix = 't') => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

async function model(tag: string, rows: number, regular: string[], added: Record<string, number>, next: () => number, inter = 24): Promise<string> {
  const specs: TensorSpec[] = [
    ...qwen3Names(1, 16, inter).filter((s) => !s.name.includes('embed')),
    ...EMBEDDINGS.map((name) => ({ name, shape: [rows, 16] })),
  ];
  const d = await writeRandomBf16Model(path.join(dir, tag), specs, next, tag);
  writeTokenizer(d, regular, added);
  return d;
}

beforeAll(async () => {
  dir = scratchDir('tokenizer-union');
  const next = rng(SEED);
  A = await model('a', 32, ts(0, 28), SPECIAL, next);
  B = await model('b', 32, [...ts(0, 24), ...ts(0, 4, 'u')], { ...SPECIAL, '<tool>': 30 }, next);
  C = await model('c', 30, [...ts(0, 22), ...ts(0, 4, 'u'), 't22', 't23'], SPECIAL, next);
  // A tokenizer and config alone, outside every merge: t24…t26 of A left out, u1 only B's, zz0 and zz1 no model's.
  T = path.join(dir, 'tokenizer-only');
  fs.mkdirSync(T);
  writeTokenizer(T, [...ts(0, 24), 'zz0', 'u1', 'zz1', 't27'], SPECIAL);
  fs.writeFileSync(path.join(T, 'config.json'), JSON.stringify({ model_type: 'qwen3', vocab_size: 30 }));
  fs.writeFileSync(path.join(T, 'chat_template.jinja'), '{{ messages }} from T');
}, 60000);
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

const linear = (models: string[], extra: Record<string, unknown>) => ({
  merge_method: 'linear',
  models: models.map((m, i) => ({ model: m, parameters: { weight: [0.5, 0.25, 0.25][i] } })),
  ...extra,
});

/** Every model's tensor rows (f64) and vocabulary, read back from its folder. */
async function modelRows(folder: string, name: string): Promise<number[][]> {
  const ckpt = await openCheckpoint(folder);
  const t = ckpt.tensors.get(name)!;
  const bytes = await readTensorBytes(t);
  const cols = t.shape[1];
  return Array.from({ length: t.shape[0] }, (_, i) => Array.from({ length: cols }, (_, j) => decodeFloat(elementBits(bytes, i * cols + j, 'BF16'), 'BF16')));
}

function vocabOf(folder: string): Map<string, number> {
  const doc = JSON.parse(fs.readFileSync(path.join(folder, 'tokenizer.json'), 'utf8')) as {
    model: { vocab: Record<string, number> };
    added_tokens: { id: number; content: string }[];
  };
  return new Map([...Object.entries(doc.model.vocab), ...doc.added_tokens.map((t): [string, number] => [t.content, t.id])]);
}

/** Rebuilds the recipe's embeddings with weightmix and with the reference; compares every row's bits. */
async function compareWithReference(
  doc: Record<string, unknown>,
  expectedVocab: Map<string, number>,
  tokens: Map<string, ReferenceTokenSetting>,
): Promise<void> {
  const recipe = parseRecipe(doc);
  const ckpts = await Promise.all(recipe.models.map((m) => openCheckpoint(m)));
  const out = path.join(dir, `rebuilt-${counter++}`);
  const outside = recipe.outsideTokenizer ? await openTokenizerAs(recipe.outsideTokenizer.model) : null;
  const rebuilt = await rebuildVocabulary(recipe, ckpts, out, undefined, outside);
  try {
    expect(rebuilt.vocabulary?.kind).toBe('rebuild');
    expect(new Map(rebuilt.vocabulary!.vocabulary.vocab)).toEqual(expectedVocab);
    const dtype: FloatDtype = recipe.dtype ?? 'BF16';
    for (const name of EMBEDDINGS) {
      const tensors = new Map(await Promise.all(recipe.models.map(async (m, i): Promise<[number, number[][]]> => [i, await modelRows(m, name)])));
      const want = referencePermutedEmbeddings({
        vocab: expectedVocab,
        modelVocabs: new Map(recipe.models.map((m, i) => [i, vocabOf(m)])),
        tensors,
        base: recipe.base,
        tokens,
        padToMultipleOf: recipe.vocabularyOptions?.padToMultipleOf ?? null,
        round: (x) => decodeFloat(encodeFloat(x, dtype), dtype),
      });
      for (const [m, rows] of want) {
        const t = rebuilt.ckpts[m].tensors.get(name)!;
        expect([name, m, t.dtype, t.shape]).toEqual([name, m, dtype, [rows.length, 16]]);
        const bytes = await readTensorBytes(t);
        // A NaN is compared as NaN: the reference's f64 rows cannot carry a payload (weightmix copies a row's bits as they are).
        const show = (bits: number) => (Number.isNaN(decodeFloat(bits, dtype)) ? 'NaN' : bits);
        const got = rows.map((r, i) => r.map((_, j) => show(elementBits(bytes, i * 16 + j, dtype))));
        expect([name, m, got]).toEqual([name, m, rows.map((r) => r.map((x) => show(encodeFloat(x, dtype))))]);
      }
    }
  } finally {
    await rebuilt.cleanup();
  }
  expect(leftoversBeside(out)).toEqual([]);
}

describe(`tokenizer union and the tokenizer block (seed ${SEED})`, () => {
  test("union with a base model: the base's vocabulary, then the others' new tokens and added tokens; rows as mergekit builds them", async () => {
    const vocab = new Map([
      ...ts(0, 28).map((t, i): [string, number] => [t, i]),
      ...Object.entries(SPECIAL),
      ...ts(0, 4, 'u').map((t, i): [string, number] => [t, 30 + i]),
      ['<tool>', 34],
    ]);
    await compareWithReference(linear([A, B, C], { base_model: A, tokenizer_source: 'union' }), vocab, new Map());
  });

  test('the block: union without a base (means over holders), forced rows, model_token by id and by token, a new token, zero, padding; f32 working dtype', async () => {
    const tokens = new Map<string, ReferenceTokenSetting>([
      ['t5', { source: { model: 2 }, force: true }],
      ['t1', { source: { model: 0, tokenId: 3 }, force: true }],
      ['<new>', { source: { model: 0, token: 'u1' }, force: false }],
      ['<z>', { source: { zero: true }, force: false }],
    ]);
    const doc = linear([B, A, C], {
      dtype: 'float32',
      tokenizer: {
        tokens: {
          t5: { source: C, force: true },
          t1: { source: { kind: 'model_token', model: B, token_id: 3 }, force: true },
          '<new>': { source: { kind: 'model_token', model: B, token: 'u1' } },
          '<z>': { source: { kind: 'zero' } },
        },
        pad_to_multiple_of: 16,
      },
    });
    // Base B (the first model): its 28 + 3 tokens, then A's t24…t27, then the block's two new tokens.
    const vocab = new Map([
      ...[...ts(0, 24), ...ts(0, 4, 'u')].map((t, i): [string, number] => [t, i]),
      ...Object.entries({ ...SPECIAL, '<tool>': 30 }),
      ...ts(24, 28).map((t, i): [string, number] => [t, 31 + i]),
      ['<new>', 35],
      ['<z>', 36],
    ]);
    await compareWithReference(doc, vocab, tokens);
  });

  test("tokenizer_source: a model whose vocabulary differs from the others' (no longer refused): C's vocabulary", async () => {
    const vocab = new Map([...[...ts(0, 22), ...ts(0, 4, 'u'), 't22', 't23'].map((t, i): [string, number] => [t, i]), ...Object.entries(SPECIAL)]);
    await compareWithReference(linear([A, B, C], { base_model: A, tokenizer_source: C }), vocab, new Map());
  });

  test('the merged output: rows are the linear merge of the rebuilt rows; tokenizer files list the added tokens; config vocab_size; no working folder left', async () => {
    const out = path.join(dir, `out-${counter++}`);
    const summary = await merge(parseRecipe(linear([A, B, C], { base_model: A, tokenizer_source: 'union' })), { output: out, threads: 2 });
    expect(summary.tensors).toBeGreaterThan(2);
    expect(leftoversBeside(out)).toEqual([path.basename(out)]);
    const tok = JSON.parse(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8')) as { added_tokens: Record<string, unknown>[] };
    expect(tok.added_tokens.map((t) => [t.id, t.content, t.special, t.normalized])).toEqual([
      [28, '<|endoftext|>', true, false],
      [29, '<|im_end|>', true, false],
      [30, 'u0', false, true],
      [31, 'u1', false, true],
      [32, 'u2', false, true],
      [33, 'u3', false, true],
      [34, '<tool>', true, false],
    ]);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8')) as {
      added_tokens_decoder: Record<string, { content: string }>;
    };
    expect(Object.entries(config.added_tokens_decoder).map(([id, t]) => [id, t.content])).toEqual(tok.added_tokens.map((t) => [String(t.id), t.content]));
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).vocab_size).toBe(35);
    // The output's embed_tokens: 0.5·A' + 0.25·B' + 0.25·C' of the rebuilt rows, in f64, rounded once.
    const recipe = parseRecipe(linear([A, B, C], { base_model: A, tokenizer_source: 'union' }));
    const rebuilt = await rebuildVocabulary(recipe, await Promise.all(recipe.models.map((m) => openCheckpoint(m))), path.join(dir, 'again'));
    try {
      const name = 'model.embed_tokens.weight';
      const parts = await Promise.all(rebuilt.ckpts.map(async (c) => readTensorBytes(c.tensors.get(name)!)));
      const got = await readTensorBytes((await openCheckpoint(out)).tensors.get(name)!);
      for (let e = 0; e < 35 * 16; e++) {
        const x = [0.5, 0.25, 0.25].reduce((s, w, m) => s + w * decodeFloat(elementBits(parts[m], e, 'BF16'), 'BF16'), -0); // −0: a sum of −0s is −0
        const want = encodeFloat(x, 'BF16');
        if (Number.isNaN(x)) expect(Number.isNaN(decodeFloat(elementBits(got, e, 'BF16'), 'BF16'))).toBe(true);
        else expect([e, elementBits(got, e, 'BF16')]).toEqual([e, want]);
      }
    } finally {
      await rebuilt.cleanup();
    }
  });

  test('an abort during the rebuild stops it between blocks: Aborted, no working folder left', async () => {
    const out = path.join(dir, `aborted-${counter++}`);
    const recipe = parseRecipe(linear([A, B, C], { base_model: A, tokenizer_source: 'union' }));
    await expect(merge(recipe, { output: out, signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'Aborted',
      message: 'the merge was aborted while it rebuilt the embeddings',
    });
    expect(leftoversBeside(out)).toEqual([]);
  });

  test('refusals and bad input: one line each, nothing written, no working folder left', async () => {
    const refuses = (extra: Record<string, unknown>, message: RegExp) => expect(() => parseRecipe(linear([A, B], extra))).toThrow(message);
    refuses({ tokenizer: { tokens: { t1: { force: true } } } }, /tokenizer.tokens."t1".source: a source is required/);
    refuses(
      { tokenizer: { tokens: { t1: { source: { kind: 'model_token', model: A, token: 't1', token_id: 1 } } } } },
      /give exactly one of token_id or token/,
    );
    refuses({ tokenizer: { tokens: { t1: { source: { kind: 'other' } } } } }, /kind: expected zero or model_token/);
    refuses({ tokenizer: { tokens: { t1: { source: C } } } }, /is not one of the recipe's models/);
    const fails = async (models: string[], extra: Record<string, unknown>, message: RegExp) => {
      const out = path.join(dir, `bad-${counter++}`);
      await expect(merge(parseRecipe(linear(models, extra)), { output: out })).rejects.toThrow(message);
      expect(leftoversBeside(out)).toEqual([]);
    };
    await fails([A, B], { tokenizer: { tokens: { u1: { source: A } } } }, /tokenizer.tokens."u1": the source .*a.* does not have the token/);
    await fails(
      [A, B],
      { tokenizer: { tokens: { '<x>': { source: { kind: 'model_token', model: A, token_id: 32 } } } } },
      /token id 32 is out of range for .*a \(32 rows\)/,
    );
    await fails([A, B], { tokenizer: { tokens: { '<x>': { source: { kind: 'model_token', model: A, token: 'u1' } } } } }, /"u1" is not in .*a's vocabulary/);
    const E = await model('e', 32, ts(0, 28), { '<|endoftext|>': 30, '<|im_end|>': 31 }, rng(SEED + 2));
    const config = path.join(E, 'config.json');
    fs.writeFileSync(config, JSON.stringify({ ...JSON.parse(fs.readFileSync(config, 'utf8')), vocab_size: 32 }));
    await fails(
      [E, B],
      { tokenizer_source: 'union' },
      /the output vocabulary has no token at id 28 \(below its largest, 36\); mergekit builds 35 rows and fails on an index/,
    );
    // A vocab_size that is no count is refused as the config's, not taken for the tokenizer's size and named as the config's.
    fs.writeFileSync(config, JSON.stringify({ ...JSON.parse(fs.readFileSync(config, 'utf8')), vocab_size: '256' }));
    await fails(
      [E, B],
      { tokenizer_source: 'union' },
      new RegExp(`^${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: vocab_size must be a whole number, got "256"$`),
    );
    const F = await model('f', 28, ts(0, 28), SPECIAL, rng(SEED + 3));
    await fails([B, F], { tokenizer_source: 'union' }, /f's tokenizer has a token at id 29 but its model.embed_tokens.weight has 28 rows/);
    // A batch plans every recipe before any output exists, and does not rebuild rows: refused, also where every row count
    // already is the vocabulary's (G and H: 30 rows, 30 tokens, t3 and t4 swapped), which a batch used to merge unpermuted.
    const swapped = ts(0, 28);
    [swapped[3], swapped[4]] = [swapped[4], swapped[3]];
    const G = await model('g', 30, ts(0, 28), SPECIAL, rng(SEED + 4));
    const H = await model('h', 30, swapped, SPECIAL, rng(SEED + 5));
    for (const [models, extra] of [
      [[A, B], { tokenizer_source: 'union' }],
      [[G, H], { tokenizer_source: G }],
    ] as [string[], Record<string, unknown>][]) {
      const batchOut = path.join(dir, `batch-${counter++}`);
      await expect(mergeBatch([{ name: 'u', recipe: parseRecipe(linear(models, extra)) }], { output: batchOut })).rejects.toThrow(
        /tokenizer: the output vocabulary needs each model's embedding rows rebuilt, which a batch does not do yet: merge this recipe on its own/,
      );
      expect(leftoversBeside(batchOut)).toEqual([]);
    }
    // A failure after the rows are built (a layer tensor whose shape differs) removes the working folder too.
    const next = rng(SEED + 1);
    const D = await model('d', 32, [...ts(0, 27), 'u0'], SPECIAL, next, 32);
    await fails([A, D], { tokenizer_source: 'union', base_model: A }, /mlp.* has shape \[.*32.*\] in .*d but/);
  });

  test("a killed run's working folder (beside the output, named after it and its pid) is removed by the next run on that output; a live run's is not", async () => {
    const out = path.join(dir, 'out-killed');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const killed = path.join(dir, `.out-killed.weightmix-vocab-${dead}-Ab12Cd`);
    const live = path.join(dir, `.out-killed.weightmix-vocab-${process.ppid}-Ef34Gh`);
    for (const folder of [killed, live]) {
      fs.mkdirSync(folder);
      fs.writeFileSync(path.join(folder, 'model-0.safetensors'), 'rows');
    }
    await merge(parseRecipe(linear([A, B], { tokenizer_source: 'union' })), { output: out, threads: 2 });
    expect(fs.readdirSync(dir).filter((n) => n.includes('.weightmix-vocab-'))).toEqual([path.basename(live)]);
    fs.rmSync(live, { recursive: true });
  });

  test('the command line: a bad tokens entry is one line, exit status 1, nothing left beside the output', async () => {
    ensureCliBuilt();
    const file = path.join(dir, 'bad.yml');
    fs.writeFileSync(file, JSON.stringify(linear([A, B], { tokenizer: { tokens: { u1: { source: A } } } })));
    const out = path.join(dir, 'cli-out');
    const line = expectOneLineError(await runCli(['merge', file, '-o', out]));
    expect(line).toMatch(/tokenizer.tokens."u1": the source .* does not have the token/);
    expect(leftoversBeside(out)).toEqual([]);
  }, 120000);
});

describe(`tokenizer_source outside the merge (seed ${SEED})`, () => {
  const tVocab = () => new Map([...[...ts(0, 24), 'zz0', 'u1', 'zz1', 't27'].map((t, i): [string, number] => [t, i]), ...Object.entries(SPECIAL)]);

  test("rows as mergekit builds them for that tokenizer's vocabulary: a holder's row, the base's, zeros where no model holds the token", async () => {
    await compareWithReference(linear([A, B], { base_model: A, tokenizer_source: T }), tVocab(), new Map());
    const forced = new Map<string, ReferenceTokenSetting>([['t5', { source: { model: 1 }, force: true }]]);
    await compareWithReference(linear([B, A], { tokenizer: { source: T, tokens: { t5: { source: A, force: true } } } }), tVocab(), forced);
  });

  test("the merged output: that tokenizer's files and template, the base model's config with its vocab_size, a notice of the rows no model had", async () => {
    const out = path.join(dir, `outside-${counter++}`);
    const notices: string[] = [];
    await merge(parseRecipe(linear([A, B], { base_model: A, tokenizer_source: T })), { output: out, threads: 2, onNotice: (m) => notices.push(m) });
    expect(notices).toContain('tokenizer: 2 tokens of the output vocabulary no model holds: their embedding rows are zeros (mergekit stops on such a token)');
    for (const file of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) {
      expect([file, fs.readFileSync(path.join(out, file), 'utf8')]).toEqual([file, fs.readFileSync(path.join(T, file), 'utf8')]);
    }
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toEqual({ ...(JSON.parse(fs.readFileSync(path.join(A, 'config.json'), 'utf8')) as Record<string, unknown>), vocab_size: 30 });
    expect((await openCheckpoint(out)).tensors.get('model.embed_tokens.weight')!.shape).toEqual([30, 16]);
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8')).toContain(`tokenizer and templates from ${T} (its tokenizer files only)`);
    expect(fs.readdirSync(T).sort()).toEqual(['chat_template.jinja', 'config.json', 'tokenizer.json', 'tokenizer_config.json']);
  });

  test('refusals: no tokenizer.json, no folder, an output that would replace it, a batch; one line each, nothing left', async () => {
    const fails = async (extra: Record<string, unknown>, message: RegExp, out = path.join(dir, `bad-outside-${counter++}`)) => {
      await expect(merge(parseRecipe(linear([A, B], extra)), { output: out })).rejects.toThrow(message);
      expect(leftoversBeside(out)).toEqual([]);
    };
    const bare = path.join(dir, 'config-only');
    fs.mkdirSync(bare, { recursive: true });
    fs.writeFileSync(path.join(bare, 'config.json'), '{}');
    await fails({ tokenizer_source: bare }, new RegExp(`tokenizer_source: ${bare} has no tokenizer.json, and mergekit rebuilds the embeddings`));
    expect(() => parseRecipe(linear([A, B], { tokenizer_source: path.join(dir, 'nowhere') }))).toThrow(/^tokenizer_source: model folder not found: .*nowhere$/);
    // The tokenizer source is an input: an output that would replace it is refused, --force or not.
    await expect(merge(parseRecipe(linear([A, B], { tokenizer_source: T })), { output: T, force: true })).rejects.toThrow(
      `the output ${T} is one of the inputs of this merge; choose another output folder`,
    );
    expect(fs.readdirSync(T).sort()).toEqual(['chat_template.jinja', 'config.json', 'tokenizer.json', 'tokenizer_config.json']);
    const batchOut = path.join(dir, `batch-${counter++}`);
    await expect(mergeBatch([{ name: 'o', recipe: parseRecipe(linear([A, B], { tokenizer_source: T })) }], { output: batchOut })).rejects.toThrow(
      `o: tokenizer_source ${T} is none of the recipe's models, which a batch does not take yet: merge that recipe on its own`,
    );
    expect(leftoversBeside(batchOut)).toEqual([]);
    // A base model without tokenizer.json: its rows cannot be matched to T's tokens (T's vocabulary is not the base's).
    const noTokenizer = path.join(dir, 'no-tokenizer');
    fs.cpSync(A, noTokenizer, { recursive: true });
    fs.rmSync(path.join(noTokenizer, 'tokenizer.json'));
    await expect(merge(parseRecipe(linear([noTokenizer, B], { tokenizer_source: T })), { output: path.join(dir, `bad-outside-${counter++}`) })).rejects.toThrow(
      `tokenizer_source: ${noTokenizer} has no tokenizer.json, so its embedding rows cannot be matched to ${T}'s tokens`,
    );
    // A recipe object passed through the API says where its vocabulary comes from consistently.
    const inconsistent = { ...parseRecipe(linear([A, B], { tokenizer_source: 'union' })), outsideTokenizer: { model: T, name: T } };
    await expect(merge(inconsistent, { output: path.join(dir, `bad-outside-${counter++}`) })).rejects.toThrow(
      "vocabularyFrom is 'outside' exactly when outsideTokenizer is set",
    );
  });

  test('a hub id: only its tokenizer files and config are downloaded, and the output records its commit', async () => {
    // The hub repo holds a whole model (C): its weights must not be fetched for a tokenizer.
    const server = await startHubServer({ 'Org/Tok': repoOf(filesFromFolder(C)) });
    try {
      const out = path.join(dir, `hub-${counter++}`);
      const env = isolatedHubEnv(server.endpoint, path.join(dir, `hf-${counter++}`));
      await merge(parseRecipe(linear([A, B], { base_model: A, tokenizer_source: 'Org/Tok' })), { output: out, env });
      const fetched = server.log.filter((r) => r.method === 'GET' && r.url.includes('/resolve/')).map((r) => path.basename(r.url));
      expect(fetched.length).toBeGreaterThan(0);
      expect(fetched.filter((f) => f.endsWith('.safetensors') || f.endsWith('.index.json'))).toEqual([]);
      expect(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8')).toBe(fs.readFileSync(path.join(C, 'tokenizer.json'), 'utf8'));
      const record = JSON.parse((await openCheckpoint(out)).shards[0].header.metadata!.weightmix) as { tokenizerHub?: { repo: string; commit: string } };
      expect(record.tokenizerHub).toMatchObject({ repo: 'Org/Tok', commit: server.repos.get('Org/Tok')!.refs.main });
    } finally {
      await server.close();
    }
  });
});
