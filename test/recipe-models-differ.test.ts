/** Models a recipe cannot merge as they are: refused in one line before anything is written, where the output would otherwise be wrong. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { type Checkpoint, openCheckpoint } from '../lib/model/checkpoint';
import { refuseMixedWidths } from '../lib/recipes/plan-refusals';
import { mergeBatch } from '../lib/recipes/batch';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { qwen3Names, rng, TensorSpec, writeBf16Model } from './helpers/models';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-models-differ-');

/** A one-shard BF16 model of random values, named `name` in the test folder. */
const bf16Model = (name: string, specs: TensorSpec[], next: () => number) => writeBf16Model(path.join(dir, name), specs, next, name);

test('models whose configs name different architectures are refused unless allowCrimes (mergekit: --allow-crimes); a batch likewise', async () => {
  const next = rng(47);
  const [qwen, llama] = await Promise.all([bf16Model('arch-qwen', qwen3Names(2), next), bf16Model('arch-llama', qwen3Names(2), next)]);
  const configFile = path.join(llama.dir, 'config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), architectures: ['LlamaForCausalLM'], model_type: 'llama' }),
  );
  const qwenConfig = path.join(qwen.dir, 'config.json');
  // A config that names only its model_type is compared by that: not refused beside one that also names its class.
  const typeOnly = await bf16Model('arch-qwen-type-only', qwen3Names(2), next);
  fs.writeFileSync(
    qwenConfig,
    JSON.stringify({ ...JSON.parse(fs.readFileSync(qwenConfig, 'utf8')), architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3' }),
  );
  const same = { merge_method: 'linear', models: [qwen, typeOnly].map((m) => ({ model: m.dir, parameters: { weight: 0.5 } })) };
  await merge(parseRecipe(same), { output: freshPath('out') });
  const recipe = { merge_method: 'linear', models: [qwen, llama].map((m) => ({ model: m.dir, parameters: { weight: 0.5 } })) };
  const out = freshPath('out');
  await expect(merge(parseRecipe(recipe), { output: out })).rejects.toMatchObject({
    code: 'ModelsDiffer',
    message: expect.stringMatching(
      /arch-llama is a LlamaForCausalLM but .*arch-qwen a \w+: models of different architectures are merged only with allowCrimes/,
    ),
  });
  expect(fs.existsSync(out)).toBe(false);
  await expect(mergeBatch([{ name: 'one', recipe }], { output: freshPath('batch') })).rejects.toThrow(/^one: .*arch-llama is a LlamaForCausalLM/);
  // Refused before any LoRA adapter is read or applied (this folder, no adapter, would be the error otherwise).
  const notAnAdapter = path.join(dir, 'not-an-adapter');
  fs.mkdirSync(notAnAdapter, { recursive: true });
  const adapted = { ...recipe, models: [{ model: `${llama.dir}+${notAnAdapter}`, parameters: { weight: 0.5 } }, recipe.models[0]] };
  await expect(merge(parseRecipe(adapted), { output: freshPath('out') })).rejects.toMatchObject({ code: 'ModelsDiffer' });
  await merge(parseRecipe(recipe), { output: out, allowCrimes: true });
  expect((await openCheckpoint(out)).names.length).toBe(qwen3Names(2).length);
});

test("a layer tensor that one model lacks is refused whichever model comes first (the first's layer names to the output used to drop it)", async () => {
  const next = rng(46);
  const lacking = 'model.layers.1.self_attn.q_norm.weight';
  const write = (name: string, specs: TensorSpec[]) => bf16Model(name, specs, next);
  const [full, partial] = await Promise.all([
    write('full', qwen3Names(2)),
    write(
      'no-q-norm',
      qwen3Names(2).filter((t) => t.name !== lacking),
    ),
  ]);
  for (const [a, b] of [
    [partial, full],
    [full, partial],
  ]) {
    const out = freshPath('out');
    const recipe = { merge_method: 'linear', models: [a, b].map((m) => ({ model: m.dir, parameters: { weight: 0.5 } })) };
    await expect(merge(parseRecipe(recipe), { output: out })).rejects.toMatchObject({
      code: 'ModelsDiffer',
      message: expect.stringContaining(`${lacking}`),
    });
    expect(fs.existsSync(out)).toBe(false);
  }
});

test('a rotary buffer (inv_freq) that only one model stores in its layers is no dropped weight: the merge goes on without it, as mergekit', async () => {
  const next = rng(48);
  const buffers = [0, 1].map((l) => ({ name: `model.layers.${l}.self_attn.rotary_emb.inv_freq`, shape: [4] }));
  const [plain, withBuffers] = await Promise.all([
    bf16Model('no-buffers', qwen3Names(2), next),
    bf16Model('with-buffers', [...qwen3Names(2), ...buffers], next),
  ]);
  const out = freshPath('out');
  await merge(parseRecipe({ merge_method: 'linear', models: [plain, withBuffers].map((m) => ({ model: m.dir, parameters: { weight: 0.5 } })) }), {
    output: out,
  });
  expect((await openCheckpoint(out)).names.length).toBe(qwen3Names(2).length);
});

test('models of different widths (hidden_size) are refused, even with allowCrimes: passthrough stacked their layers into a model nothing loads', async () => {
  const [narrow, wide] = await Promise.all(
    [64, 32].map((scale) => makeCheckpointPair({ dir: path.join(dir, `width-${scale}`), shape: 'qwen3-4b', scale, layers: 2 })),
  );
  const stacked = {
    merge_method: 'passthrough',
    slices: [{ sources: [{ model: narrow.instruct, layer_range: [0, 1] }] }, { sources: [{ model: wide.instruct, layer_range: [1, 2] }] }],
  };
  const out = freshPath('out');
  for (const allowCrimes of [false, true]) {
    await expect(merge(parseRecipe(stacked), { output: out, allowCrimes })).rejects.toMatchObject({
      code: 'ShapeMismatch',
      message: expect.stringMatching(
        /width-32\/instruct has hidden_size \d+ but .*width-64\/instruct \d+: models of different widths cannot be merged, nor their layers stacked into one model$/,
      ),
    });
  }
  expect(fs.existsSync(out)).toBe(false);
  await expect(mergeBatch([{ name: 'one', recipe: stacked }], { output: freshPath('batch') })).rejects.toThrow(/^one: .*width-32\/instruct has hidden_size/);
});

test("a multimodal config's width is its text_config's; a config without one is not judged", () => {
  const ckpt = (config: Record<string, unknown>) => ({ config }) as unknown as Checkpoint;
  const label = (m: number) => `model ${m}`;
  expect(() => refuseMixedWidths([ckpt({ hidden_size: 40 }), ckpt({ text_config: { hidden_size: 80 } })], label)).toThrow(
    'model 1 has hidden_size 80 but model 0 40: models of different widths cannot be merged, nor their layers stacked into one model',
  );
  expect(() => refuseMixedWidths([ckpt({ hidden_size: 40 }), ckpt({ text_config: { hidden_size: 40 } }), ckpt({})], label)).not.toThrow();
});
