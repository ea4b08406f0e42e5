/**
 * The recipe keys against real mergekit, PEFT and transformers (optional, as test/mergekit-side-by-side.test.ts:
 * WEIGHTMIX_MERGEKIT_PYTHON names a Python that can import mergekit and peft; elsewhere skipped with the reason).
 * chat_template: both outputs' tokenizers render the same conversations to the same text (transformers'
 * apply_chat_template). model+lora: weightmix's adapted tensors against PEFT's merge_and_unload, and a
 * linear merge of model+lora against mergekit's, element by element in units of the dtype's last place.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { openCheckpoint } from '../lib/model/checkpoint';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { readTensorBytes } from '../lib/format/tensor-data';
import { decodeFloat, elementBits } from '../lib/format/float-bits';
import { FloatDtype } from '../lib/format/dtypes';
import { testIf } from './helpers/skip';
import { readLoraAdapter } from '../lib/recipes/lora/lora-adapter';
import { decodeMatrix } from '../lib/recipes/lora/lora-delta';
import { readTokenizerVocabulary } from '../lib/recipes/tokenizer-vocabulary';
import { isEmbeddingMatrix } from '../lib/recipes/tokenizer-source';
import { dir, useTempDir } from './helpers/temp-dir';

const PYTHON = process.env.WEIGHTMIX_MERGEKIT_PYTHON;
const sideBySide = testIf(PYTHON !== undefined && PYTHON !== '', 'WEIGHTMIX_MERGEKIT_PYTHON is not set (a Python that can import mergekit and peft)');
const HELPER = path.join(__dirname, 'helpers', 'peft_adapter.py');
const ENV = { ...process.env, HF_HUB_OFFLINE: '1', CUDA_VISIBLE_DEVICES: '' };

function python(args: string[]): string {
  return execFileSync(PYTHON!, ['-W', 'ignore', ...args], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

function mergekit(doc: Record<string, unknown>, file: string, out: string, extra: string[] = []): void {
  fs.writeFileSync(file, stringify(doc));
  python(['-m', 'mergekit.scripts.run_yaml', file, out, ...extra]);
}

interface BitDistance {
  /** The largest difference between same-signed finite elements, in units in the last place of their dtype. */
  maxUlps: number;
  /** Finite elements of opposite signs (a result near zero). */
  signFlips: number;
  /** Elements whose bits differ. */
  differing: number;
  elements: number;
  /** ‖ours − theirs‖ / ‖theirs‖ over finite elements. */
  relL2: number;
}

/** Element-by-element distance between two models' tensors of one float dtype each (every tensor of `theirs`). */
async function bitDistance(ours: string, theirs: string): Promise<BitDistance> {
  const [a, b] = await Promise.all([openCheckpoint(ours), openCheckpoint(theirs)]);
  const d: BitDistance = { maxUlps: 0, signFlips: 0, differing: 0, elements: 0, relL2: 0 };
  let diff = 0;
  let norm = 0;
  for (const name of b.names) {
    const [ta, tb] = [a.tensors.get(name), b.tensors.get(name)!];
    if (!ta) throw new Error(`${name} is in ${theirs} but not in ${ours}`);
    expect([name, ta.dtype, ta.shape]).toEqual([name, tb.dtype, tb.shape]);
    const dtype = ta.dtype as FloatDtype;
    const [xa, xb] = await Promise.all([readTensorBytes(ta), readTensorBytes(tb)]);
    for (let i = 0; i < ta.elementCount; i++) {
      const [p, q] = [elementBits(xa, i, dtype), elementBits(xb, i, dtype)];
      d.elements++;
      if (p === q) continue;
      d.differing++;
      const [u, v] = [decodeFloat(p, dtype), decodeFloat(q, dtype)];
      if (Number.isFinite(u) && Number.isFinite(v)) {
        diff += (u - v) ** 2;
        if (Math.sign(u) === Math.sign(v)) d.maxUlps = Math.max(d.maxUlps, Math.abs(p - q));
        else d.signFlips++;
      }
    }
    for (let i = 0; i < ta.elementCount; i++) {
      const v = decodeFloat(elementBits(xb, i, dtype), dtype);
      if (Number.isFinite(v)) norm += v * v;
    }
  }
  d.relL2 = Math.sqrt(diff / norm);
  return d;
}

/**
 * Two outputs of a vocabulary rebuild: the same tokens (mergekit orders the union's new tokens by a hash
 * map's iteration, so ids may differ), the same added tokens; embedding rows compared token by token
 * (padding rows by position), in units in the last place.
 */
async function vocabularyDistance(ours: string, theirs: string, kept: string[]): Promise<{ rows: BitDistance; padding: BitDistance; tensors: number }> {
  const [a, b] = await Promise.all([openCheckpoint(ours), openCheckpoint(theirs)]);
  const [va, vb] = [readTokenizerVocabulary(a)!, readTokenizerVocabulary(b)!];
  expect([...va.vocab.keys()].sort()).toEqual([...vb.vocab.keys()].sort());
  // `kept`: tokens entries for tokens already in the vocabulary, which mergekit re-adds as plain added tokens and weightmix leaves as they are.
  const settings = (v: typeof va) =>
    [...v.added.values()]
      .filter((t) => !kept.includes(t.content))
      .map((t) => JSON.stringify({ ...t, id: undefined }))
      .sort();
  expect(settings(va)).toEqual(settings(vb));
  expect(a.config?.vocab_size).toEqual(b.config?.vocab_size);
  const rows: BitDistance = { maxUlps: 0, signFlips: 0, differing: 0, elements: 0, relL2: 0 };
  const padding: BitDistance = { ...rows };
  const count = (d: BitDistance, p: number, q: number, dtype: FloatDtype) => {
    d.elements++;
    if (p === q) return;
    d.differing++;
    if (Math.sign(decodeFloat(p, dtype)) === Math.sign(decodeFloat(q, dtype))) d.maxUlps = Math.max(d.maxUlps, Math.abs(p - q));
    else d.signFlips++;
  };
  let tensors = 0;
  for (const name of b.names.filter(isEmbeddingMatrix)) {
    const [ta, tb] = [a.tensors.get(name)!, b.tensors.get(name)!];
    expect([name, ta.dtype, ta.shape]).toEqual([name, tb.dtype, tb.shape]);
    const dtype = ta.dtype as FloatDtype;
    const cols = ta.shape[1];
    const [xa, xb] = await Promise.all([readTensorBytes(ta), readTensorBytes(tb)]);
    for (const [token, j] of vb.vocab) {
      const i = va.vocab.get(token)!;
      for (let k = 0; k < cols; k++) count(rows, elementBits(xa, i * cols + k, dtype), elementBits(xb, j * cols + k, dtype), dtype);
    }
    for (let e = vb.vocab.size * cols; e < ta.elementCount; e++) count(padding, elementBits(xa, e, dtype), elementBits(xb, e, dtype), dtype);
    tensors++;
  }
  return { rows, padding, tensors };
}

describe('recipe keys against mergekit, PEFT and transformers', () => {
  let A: string;
  let B: string;
  let C: string;
  let N: string;
  let adapter: string;
  let U: string;
  let V: string;
  let W: string;
  const table: string[] = [];

  useTempDir('weightmix-keys-');

  beforeAll(async () => {
    if (!PYTHON) return;
    const pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', seed: 3 });
    [A, B] = [pair.instruct, pair.thinking];
    // C: B's copy, so that auto has a most common template (mergekit breaks a tie by its set's order).
    C = path.join(dir, 'c');
    await fs.promises.cp(B, C, { recursive: true });
    N = (await makeCheckpointPair({ dir: path.join(dir, 'near'), shape: 'tiny', seed: 3, delta: 0.01 })).thinking;
    adapter = path.join(dir, 'adapter');
    python([HELPER, 'make', A, adapter]);
    // Vocabularies that differ: U and V share all but their last 4 regular tokens; W has V's, with other values.
    const vocab = await makeCheckpointPair({ dir: path.join(dir, 'vocab'), shape: 'tiny', seed: 5, extraTokens: 4 });
    [U, V] = [vocab.instruct, vocab.thinking];
    W = (await makeCheckpointPair({ dir: path.join(dir, 'vocab2'), shape: 'tiny', seed: 6, extraTokens: 4 })).thinking;
  }, 300000);

  afterAll(async () => {
    if (!PYTHON) return;
    console.log(['check | result', ...table].join('\n'));
  });

  const linear = (a: string, b: string, extra: Record<string, unknown> = {}) => ({
    merge_method: 'linear',
    models: [
      { model: a, parameters: { weight: 0.5 } },
      { model: b, parameters: { weight: 0.5 } },
    ],
    dtype: 'float32',
    ...extra,
  });

  /** A linear merge of the named fixtures (U, V, W: replaced by their folders) in f32; weight 1 for the `k`th, 0 for the others. */
  const linearOf = (names: string[]) => (k: number) => ({
    merge_method: 'linear',
    models: names.map((m, i) => ({ model: m, parameters: { weight: i === k ? 1 : 0 } })),
    dtype: 'float32',
  });

  const templates = ['chatml', 'llama3', 'mistral', 'auto', "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"];
  sideBySide(
    "chat_template: the same conversations render to the same text with mergekit's tokenizer and weightmix's",
    async () => {
      for (const [i, template] of templates.entries()) {
        const ours = path.join(dir, `wm-chat-${i}`);
        const theirs = path.join(dir, `mk-chat-${i}`);
        const doc = linear(A, B, { chat_template: template });
        if (template === 'auto') (doc.models as unknown[]).push({ model: C, parameters: { weight: 0.5 } });
        await merge(parseRecipe(doc), { output: ours, threads: 2 });
        mergekit(doc, path.join(dir, `chat-${i}.yml`), theirs);
        const [a, b] = python([HELPER, 'render', ours, theirs]).trim().split('\n');
        expect([template, JSON.parse(a)]).toEqual([template, JSON.parse(b)]);
        table.push(`chat_template ${template.length > 12 ? 'literal' : template} | ${JSON.parse(a).length} renderings identical`);
      }
    },
    600000,
  );

  sideBySide(
    "a slice's base_model: task_arithmetic with a base per slice",
    async () => {
      const src = (model: string, layers: [number, number], weight?: number) => ({
        model,
        layer_range: layers,
        ...(weight === undefined ? {} : { parameters: { weight } }),
      });
      const doc = {
        merge_method: 'task_arithmetic',
        base_model: C,
        dtype: 'float32',
        slices: [
          { sources: [src(A, [0, 2], 0.7), src(B, [0, 2], 0.4), src(N, [0, 2])], base_model: N },
          { sources: [src(A, [2, 4], 0.7), src(B, [2, 4], 0.4), src(C, [2, 4])] },
        ],
      };
      const ours = path.join(dir, 'wm-slice-base');
      const theirs = path.join(dir, 'mk-slice-base');
      await merge(parseRecipe(doc), { output: ours, threads: 2 });
      mergekit(doc, path.join(dir, 'slice-base.yml'), theirs);
      const d = await bitDistance(ours, theirs);
      table.push(`slice base_model (task_arithmetic) | ${d.differing} of ${d.elements} elements differ, max ${d.maxUlps} F32 ulps`);
      expect([d.maxUlps, d.signFlips]).toEqual([0, 0]);
    },
    600000,
  );

  sideBySide(
    "model+lora: weightmix's adapted model against PEFT's merge_and_unload: where they differ, weightmix is nearer the exact value",
    async () => {
      const ours = path.join(dir, 'wm-lora');
      const theirs = path.join(dir, 'peft-lora');
      await merge(parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${adapter}` }] }), { output: ours, threads: 2 });
      python([HELPER, 'merge', A, adapter, theirs]);
      const d = await bitDistance(ours, theirs);
      const [o, p, base, ad] = await Promise.all([openCheckpoint(ours), openCheckpoint(theirs), openCheckpoint(A), readLoraAdapter(adapter)]);
      let farther = 0;
      let nearer = 0;
      for (const [name, u] of ad.updates) {
        const dtype = base.tensors.get(name)!.dtype as FloatDtype;
        const [rows, cols] = base.tensors.get(name)!.shape;
        const [xo, xp, xw] = await Promise.all([o, p, base].map((c) => readTensorBytes(c.tensors.get(name)!)));
        const a = decodeMatrix(await readTensorBytes(u.a), u.a.dtype as FloatDtype, u.a.shape[0], u.a.shape[1]);
        const b = decodeMatrix(await readTensorBytes(u.b), u.b.dtype as FloatDtype, u.b.shape[0], u.b.shape[1]);
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) {
            const e = i * cols + j;
            const [bRow, aCol] = u.transpose ? [j, i] : [i, j];
            let sum = 0;
            for (let k = 0; k < a.rows; k++) sum += b.values[bRow * a.rows + k] * a.values[k * a.cols + aCol];
            const exact = decodeFloat(elementBits(xw, e, dtype), dtype) + u.scale * sum; // f64: far below a BF16 ulp from exact
            const [mine, peft] = [xo, xp].map((x) => Math.abs(decodeFloat(elementBits(x, e, dtype), dtype) - exact));
            if (mine > peft) farther++;
            if (mine < peft) nearer++;
          }
      }
      table.push(
        `LoRA vs PEFT merge_and_unload | ${d.differing} of ${d.elements} elements differ (max ${d.maxUlps} BF16 ulps, ${d.signFlips} of opposite sign, relative L2 ${d.relL2.toExponential(2)}); weightmix nearer the exact value in ${nearer}, farther in ${farther}`,
      );
      expect(farther).toBe(0);
      expect(nearer).toBe(d.differing);
    },
    600000,
  );

  sideBySide(
    "model+lora in a linear merge: mergekit's equals weightmix's linear merge of PEFT's adapted model",
    async () => {
      const doc = linear(`${A}+${adapter}`, B);
      const theirs = path.join(dir, 'mk-lora-linear');
      mergekit(doc, path.join(dir, 'lora-linear.yml'), theirs, ['--lora-merge-cache', path.join(dir, 'lora-cache')]);
      if (!fs.existsSync(path.join(dir, 'peft-lora'))) python([HELPER, 'merge', A, adapter, path.join(dir, 'peft-lora')]);
      const viaPeft = path.join(dir, 'wm-peft-linear');
      await merge(parseRecipe(linear(path.join(dir, 'peft-lora'), B)), { output: viaPeft, threads: 2 });
      const same = await bitDistance(viaPeft, theirs);
      const ours = path.join(dir, 'wm-lora-linear');
      await merge(parseRecipe(doc), { output: ours, threads: 2 });
      const d = await bitDistance(ours, theirs);
      table.push(`LoRA linear: mergekit vs weightmix over PEFT's model | max ${same.maxUlps} F32 ulps, relative L2 ${same.relL2.toExponential(2)}`);
      table.push(`LoRA linear: mergekit vs weightmix's own LoRA | ${d.differing} of ${d.elements} elements differ, relative L2 ${d.relL2.toExponential(2)}`);
      expect([same.maxUlps, same.signFlips]).toEqual([0, 0]);
    },
    600000,
  );
  // Each recipe is run once per model with that model's weight 1 and the others' 0: the output is that model's rebuilt rows.
  const unionRecipes: [string, string[], Record<string, unknown>][] = [
    ['tokenizer_source: union, base_model', ['U', 'V'], { base_model: 'U', tokenizer_source: 'union' }],
    ['tokenizer_source: a model whose vocabulary differs', ['U', 'V'], { tokenizer_source: 'V' }],
    // W's tokenizer alone (V's vocabulary in another model's files): U's rows moved to its ids. (A token no merged model holds
    // is left out: mergekit fails on it, the bugs table of docs/mergekit-parity.md.)
    ['tokenizer_source: a model outside the merge', ['U', 'V'], { tokenizer_source: 'W' }],
    [
      'tokenizer: union, a base that lacks tokens two others hold (means), tokens (force, model_token, a new token), pad_to_multiple_of',
      ['U', 'V', 'W'],
      {
        // With no base_model mergekit builds on a tokenizer picked by a set's order, so the base is given.
        base_model: 'U',
        tokenizer: {
          source: 'union',
          tokens: {
            // (kind: zero is left out: mergekit fails on it, an UnboundLocalError in compute_default_embedding)
            '<own-0>': { source: 'W', force: true },
            '<fill-110>': { source: { kind: 'model_token', model: 'U', token_id: 7 }, force: true },
            '<brand-new>': { source: { kind: 'model_token', model: 'V', token: 'a' } },
          },
          pad_to_multiple_of: 64,
        },
      },
    ],
  ];
  sideBySide(
    "tokenizer union and the tokenizer block: mergekit's vocabulary, tokenizer files and embedding rows, token by token",
    async () => {
      for (const [i, [title, names, extra]] of unionRecipes.entries()) {
        const rows: BitDistance = { maxUlps: 0, signFlips: 0, differing: 0, elements: 0, relL2: 0 };
        const padding: BitDistance = { ...rows };
        for (const k of names.keys()) {
          const written = { ...linearOf(names)(k), ...extra };
          const doc = JSON.parse(JSON.stringify(written).replace(/"([UVW])"/g, (_, m: string) => JSON.stringify({ U, V, W }[m])));
          const ours = path.join(dir, `wm-vocab-${i}-${k}`);
          const theirs = path.join(dir, `mk-vocab-${i}-${k}`);
          await merge(parseRecipe(doc), { output: ours, threads: 2 });
          mergekit(doc, path.join(dir, `vocab-${i}-${k}.yml`), theirs);
          const d = await vocabularyDistance(ours, theirs, ['<fill-110>']);
          expect(d.tensors).toBe(2);
          for (const [sum, one] of [
            [rows, d.rows],
            [padding, d.padding],
          ]) {
            sum.differing += one.differing;
            sum.elements += one.elements;
            sum.signFlips += one.signFlips;
            sum.maxUlps = Math.max(sum.maxUlps, one.maxUlps);
          }
        }
        table.push(
          `${title} | ${names.length} models' embed_tokens and lm_head rows: ${rows.differing} of ${rows.elements} elements differ (max ${rows.maxUlps} F32 ulps); ` +
            `padding rows: ${padding.differing} of ${padding.elements} differ (max ${padding.maxUlps} ulps)`,
        );
        expect([title, rows.maxUlps, rows.signFlips]).toEqual([title, 0, 0]);
        // Padding rows are a mean over every row: weightmix's is correctly rounded (f64 sum), torch.mean's f32 sum is a few ulps off.
        expect([title, padding.maxUlps <= 4, padding.signFlips]).toEqual([title, true, 0]);
      }
    },
    900000,
  );

  sideBySide(
    "modules: {default: …}: mergekit's module parameters between a model's and the recipe's",
    async () => {
      const doc = {
        merge_method: 'linear',
        dtype: 'float32',
        parameters: { normalize: false, weight: 0.25 },
        modules: { default: { parameters: { weight: 1 }, models: [{ model: A }, { model: B, parameters: { weight: 0.5 } }] } },
      };
      const ours = path.join(dir, 'wm-modules');
      const theirs = path.join(dir, 'mk-modules');
      await merge(parseRecipe(doc), { output: ours, threads: 2 });
      mergekit(doc, path.join(dir, 'modules.yml'), theirs);
      const d = await bitDistance(ours, theirs);
      table.push(`modules: {default} (linear) | ${d.differing} of ${d.elements} elements differ, max ${d.maxUlps} F32 ulps`);
      expect([d.maxUlps, d.signFlips]).toEqual([0, 0]);
    },
    600000,
  );
});
