/**
 * Each merge method end to end through the engine, against the f64 oracles in
 * test/reference/merge-methods.ts: every output element within one ulp of the output dtype.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, INDEX_FILE, openCheckpoint } from '../lib/model/checkpoint';
import type { MergeProgress } from '../lib/engine/execute-plan';
import { merge } from '../lib/recipes/merge-recipe';
import { localStatistics } from '../lib/recipes/sparsify';
import { parseRecipe } from '../lib/recipes/recipe';
import { readTensorBytes } from '../lib/format/tensor-data';
import { isTokenizerSidecar } from '../lib/model/tokenizer-sidecars';
import { linearRef, modelStockRef, slerpRef, taskArithmeticRef } from './reference/merge-methods';
import { modelValues, worstUlp } from './helpers/model-values';
import { makeNearFarModels } from './helpers/tiny-models';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';
import { slerpSliceRecipe } from './helpers/slerp-recipe';

let A: string; // "instruct"
let B: string; // "thinking", relative distance 0.027 from A
let N: string; // near A (distance 0.01)
let F: string; // far from A (distance 0.3): slerp takes the spherical path

useTempDir('weightmix-methods-');

beforeAll(async () => {
  ({ A, B, N, F } = await makeNearFarModels(dir, 7, { pair: [2, 1], near: [1, 3] }));
}, 60000);

async function run(doc: Record<string, unknown>): Promise<Checkpoint> {
  const out = freshPath('out');
  await merge(parseRecipe(doc), { output: out, threads: 2 });
  return openCheckpoint(out);
}

test('linear of three models with normalize (default) is within 1 bf16 ulp of Σ w·θ / Σ w', async () => {
  const [a, b, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(N)]);
  const out = await run({
    merge_method: 'linear',
    models: [
      { model: A, parameters: { weight: 1 } },
      { model: B, parameters: { weight: 3 } },
      { model: N, parameters: { weight: 1 } },
    ],
  });
  expect(out.tensors.get(out.names[0])!.dtype).toBe('BF16');
  expect(await worstUlp(out, (k) => linearRef([a.get(k)!, b.get(k)!, n.get(k)!], [1, 3, 1], true))).toBeLessThanOrEqual(1);
});

test('linear with normalize: false and out_dtype float32 is within 1 f32 ulp of Σ w·θ', async () => {
  const [a, b] = await Promise.all([modelValues(A), modelValues(B)]);
  const out = await run({
    merge_method: 'linear',
    out_dtype: 'float32',
    parameters: { normalize: false },
    models: [
      { model: A, parameters: { weight: 0.25 } },
      { model: B, parameters: { weight: 0.5 } },
    ],
  });
  expect(out.tensors.get(out.names[0])!.dtype).toBe('F32');
  expect(await worstUlp(out, (k) => linearRef([a.get(k)!, b.get(k)!], [0.25, 0.5], false))).toBeLessThanOrEqual(1);
});

test("linear's models: form with a base_model not among the models weights the base too, as mergekit's normalize_config adds it", async () => {
  const [a, b, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(N)]);
  const out = await run({
    merge_method: 'linear',
    base_model: N,
    parameters: { weight: 0.5 },
    models: [{ model: A }, { model: B, parameters: { weight: 1.5 } }],
  });
  expect(await worstUlp(out, (k) => linearRef([a.get(k)!, b.get(k)!, n.get(k)!], [0.5, 1.5, 0.5], true))).toBeLessThanOrEqual(1);
  // Without a weight for it anywhere, mergekit fails inside torch; weightmix says why.
  await expect(run({ merge_method: 'linear', base_model: N, models: [{ model: A, parameters: { weight: 1 } }] })).rejects.toThrow(
    /linear: base_model .* is not among the models, so it joins them \(as in mergekit\) and needs a weight/,
  );
});

test('dtype float16 sets the output dtype when out_dtype is absent, and config.json says so', async () => {
  const [a, b] = await Promise.all([modelValues(A), modelValues(B)]);
  const out = await run({
    merge_method: 'linear',
    dtype: 'float16',
    models: [
      { model: A, parameters: { weight: 0.2 } },
      { model: B, parameters: { weight: 0.8 } },
    ],
  });
  expect(out.tensors.get(out.names[0])!.dtype).toBe('F16');
  expect(await worstUlp(out, (k) => linearRef([a.get(k)!, b.get(k)!], [0.2, 0.8], true))).toBeLessThanOrEqual(1);
  expect(JSON.stringify(out.config)).toMatch(/float16/);
});

/** A slerp recipe whose one slice is the tiny model's four layers of A (the base) and `other`. */
const slerpSlice = (other: string, t: unknown) => slerpSliceRecipe(A, other, 4, t);

test('slerp of distant models takes the spherical path, per-tensor t from filters, within 1 bf16 ulp', async () => {
  const [a, f] = await Promise.all([modelValues(A), modelValues(F)]);
  const tOf = (name: string) => (name.includes('mlp') ? 0.7 : 0.3);
  let spherical = 0;
  const out = await run({
    merge_method: 'slerp',
    base_model: A,
    models: [{ model: A }, { model: F }],
    parameters: { t: [{ filter: 'mlp', value: 0.7 }, { value: 0.3 }] },
  });
  const worst = await worstUlp(out, (k) => {
    const r = slerpRef(tOf(k), a.get(k)!, f.get(k)!);
    if (!r.lerped) spherical++;
    return r.out;
  });
  expect(spherical).toBeGreaterThan(out.names.length / 2);
  expect(worst).toBeLessThanOrEqual(1);
});

test('slerp of nearly parallel tensors (|cos| > 0.9995) falls back to lerp, as mergekit does', async () => {
  const [a, n] = await Promise.all([modelValues(A), modelValues(N)]);
  let lerped = 0;
  const out = await run(slerpSlice(N, 0.6));
  const worst = await worstUlp(out, (k) => {
    const r = slerpRef(0.6, a.get(k)!, n.get(k)!);
    if (r.lerped) lerped++;
    return r.out;
  });
  expect(lerped).toBeGreaterThan(out.names.length / 2);
  expect(worst).toBeLessThanOrEqual(1);
});

test('slerp t gradients interpolate over the layers of the slice (layer i of 4 at t = i/3)', async () => {
  const [a, f] = await Promise.all([modelValues(A), modelValues(F)]);
  const out = await run(slerpSlice(F, [0, 1]));
  const worst = await worstUlp(out, (k) => {
    const layer = /layers\.(\d+)\./.exec(k);
    return slerpRef(layer ? Number(layer[1]) / 3 : 0, a.get(k)!, f.get(k)!).out;
  });
  expect(worst).toBeLessThanOrEqual(1);
});

test("the moments pass reports progress through the merge's onProgress (stage statistics, then write), ending at its bytes read", async () => {
  // The pass runs for tensors above the local budget only (below it the write pass sums the moments, engine/open-moments.ts).
  const budget = localStatistics.maxTensorBytes;
  localStatistics.maxTensorBytes = 0;
  const events: MergeProgress[] = [];
  const out = freshPath('out');
  const merged = merge(parseRecipe(slerpSlice(F, 0.5)), {
    output: out,
    threads: 2,
    onProgress: (p) => events.push(p),
  });
  await merged.finally(() => (localStatistics.maxTensorBytes = budget));
  const [a, f] = await Promise.all([openCheckpoint(A), openCheckpoint(F)]);
  const floats = a.names.filter((n) => /^(BF16|F16|F32)$/.test(a.tensors.get(n)!.dtype));
  const read = floats.reduce((n, k) => n + a.tensors.get(k)!.byteLength + f.tensors.get(k)!.byteLength, 0);
  const stages = events.map((e) => e.stage);
  expect(stages.indexOf('write')).toBeGreaterThan(stages.lastIndexOf('statistics'));
  const lastStatistics = events[stages.lastIndexOf('statistics')];
  expect(lastStatistics).toMatchObject({ bytesDone: read, bytesTotal: read, tensorsDone: floats.length, tensorsTotal: floats.length });
  const lastWrite = events[events.length - 1];
  expect(lastWrite.stage).toBe('write');
  expect(lastWrite.bytesDone).toBe(lastWrite.bytesTotal);
});

test('task_arithmetic (the paper baseline: 0.7 for both from a base) is within 1 bf16 ulp of base + Σ w·(θ − base)', async () => {
  const [a, b, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(N)]);
  const out = await run({
    merge_method: 'task_arithmetic',
    base_model: N,
    models: [
      { model: A, parameters: { weight: 0.7 } },
      { model: B, parameters: { weight: 0.7 } },
    ],
  });
  expect(await worstUlp(out, (k) => taskArithmeticRef(n.get(k)!, [a.get(k)!, b.get(k)!], [0.7, 0.7], 1, false))).toBeLessThanOrEqual(1);
});

test('task_arithmetic with normalize and lambda scales the normalized task vector', async () => {
  const [a, b, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(N)]);
  const out = await run({
    merge_method: 'task_arithmetic',
    base_model: N,
    parameters: { normalize: true, lambda: 0.5 },
    models: [{ model: N }, { model: A, parameters: { weight: 1 } }, { model: B, parameters: { weight: 3 } }],
  });
  expect(await worstUlp(out, (k) => taskArithmeticRef(n.get(k)!, [a.get(k)!, b.get(k)!], [1, 3], 0.5, true))).toBeLessThanOrEqual(1);
});

test('model_stock of three models around a base is within 1 bf16 ulp of t·mean + (1 − t)·base with the mean pairwise cosine', async () => {
  const [a, b, n, f] = await Promise.all([modelValues(A), modelValues(B), modelValues(N), modelValues(F)]);
  const out = await run({ merge_method: 'model_stock', base_model: A, models: [{ model: B }, { model: N }, { model: F }] });
  expect(await worstUlp(out, (k) => modelStockRef(a.get(k)!, [b.get(k)!, n.get(k)!, f.get(k)!]))).toBeLessThanOrEqual(1);
});

test('passthrough stacks layer ranges into a deeper model: renumbered names, byte-identical data, config depth; embeddings from the first slice, norm and head from the last', async () => {
  const out = await run({
    merge_method: 'passthrough',
    slices: [{ sources: [{ model: A, layer_range: [0, 3] }] }, { sources: [{ model: B, layer_range: [1, 4] }] }],
  });
  const [ca, cb] = await Promise.all([openCheckpoint(A), openCheckpoint(B)]);
  expect(out.config?.num_hidden_layers).toBe(6);
  const layers = new Set(out.names.map((n) => /layers\.(\d+)\./.exec(n)?.[1]).filter(Boolean));
  expect([...layers].map(Number).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5]);
  const perLayer = ca.names.filter((n) => n.includes('layers.0.')).length;
  expect(out.names.length).toBe(ca.names.length + 2 * perLayer);
  const cases: [string, Checkpoint, string][] = [
    ['model.layers.2.mlp.down_proj.weight', ca, 'model.layers.2.mlp.down_proj.weight'],
    ['model.layers.3.self_attn.q_proj.weight', cb, 'model.layers.1.self_attn.q_proj.weight'],
    ['model.layers.5.input_layernorm.weight', cb, 'model.layers.3.input_layernorm.weight'],
    ['model.embed_tokens.weight', ca, 'model.embed_tokens.weight'],
    ['lm_head.weight', cb, 'lm_head.weight'],
    ['model.norm.weight', cb, 'model.norm.weight'],
  ];
  for (const [outName, src, srcName] of cases) {
    expect((await readTensorBytes(out.tensors.get(outName)!)).equals(await readTensorBytes(src.tensors.get(srcName)!))).toBe(true);
  }
  expect(out.names[0]).toBe('model.embed_tokens.weight');
});

test('passthrough scale multiplies a slice (within 1 bf16 ulp), per-source parameters over global', async () => {
  const a = await modelValues(A);
  const out = await run({
    merge_method: 'passthrough',
    parameters: { scale: 2 },
    slices: [
      {
        sources: [
          {
            model: A,
            layer_range: [0, 4],
            parameters: {
              scale: [
                { filter: 'mlp', value: 0.5 },
                { filter: 'layers.', value: 1 },
              ],
            },
          },
        ],
      },
    ],
  });
  expect(await worstUlp(out, (k) => a.get(k)!.map((x) => x * (!k.includes('layers.') ? 2 : k.includes('mlp') ? 0.5 : 1)))).toBeLessThanOrEqual(1);
});

test("tokenizer_source picks the tokenizer's files; config.json and the other sidecars are the base model's, else the first model's (mergekit)", async () => {
  const read = (d: string, f: string) => fs.readFileSync(path.join(d, f), 'utf8');
  const sidecars = fs.readdirSync(A).filter((f) => !f.endsWith('.safetensors') && fs.existsSync(path.join(B, f)) && read(A, f) !== read(B, f));
  const tokenizer = sidecars.filter(isTokenizerSidecar);
  const other = sidecars.filter((f) => !isTokenizerSidecar(f) && f !== 'README.md' && f !== 'config.json' && f !== INDEX_FILE);
  expect([tokenizer.length > 0, other.length > 0]).toEqual([true, true]); // the fixture's models differ in both kinds
  const config = (d: string) => JSON.parse(read(d, 'config.json')) as Record<string, unknown>;
  const toB = await run({
    merge_method: 'linear',
    tokenizer_source: B,
    models: [
      { model: A, parameters: { weight: 1 } },
      { model: B, parameters: { weight: 1 } },
    ],
  });
  for (const f of tokenizer) expect([f, read(toB.dir, f)]).toEqual([f, read(B, f)]);
  for (const f of other) expect([f, read(toB.dir, f)]).toEqual([f, read(A, f)]);
  expect(config(toB.dir)).toEqual({ ...config(A), vocab_size: config(toB.dir).vocab_size });
  expect(read(toB.dir, 'README.md')).toMatch(/config from .*; tokenizer and templates from /);
  const toBase = await run({ merge_method: 'task_arithmetic', base_model: B, tokenizer_source: 'base', models: [{ model: A, parameters: { weight: 0.5 } }] });
  for (const f of [...tokenizer, ...other]) expect([f, read(toBase.dir, f)]).toEqual([f, read(B, f)]);
  expect(read(toBase.dir, 'README.md')).toMatch(/task_arithmetic/);
});

test('weights whose sum overflows normalize as their ratios (1e308 each: the 0.5 / 0.5 mean, not 0); weights summing to 0 are refused by multislerp too', async () => {
  const [a, b] = await Promise.all([modelValues(A), modelValues(B)]);
  const two = (method: string, w: [number, number]) => ({
    merge_method: method,
    models: [
      { model: A, parameters: { weight: w[0] } },
      { model: B, parameters: { weight: w[1] } },
    ],
  });
  const huge = await run(two('linear', [1e308, 1e308]));
  expect(await worstUlp(huge, (k) => linearRef([a.get(k)!, b.get(k)!], [1, 1], true))).toBeLessThanOrEqual(1);
  // mergekit divides by the 0 sum: NaN everywhere, which verify would pass.
  await expect(run(two('multislerp', [1, -1]))).rejects.toThrow(
    /multislerp: the weights of tensor .* sum to 0 and cannot be normalized \(set normalize_weights: false\)/,
  );
});

test('a method that fails on a tensor leaves no output behind', async () => {
  const out = path.join(dir, 'failed');
  await expect(
    merge(
      parseRecipe({
        merge_method: 'linear',
        models: [
          { model: A, parameters: { weight: 1 } },
          { model: B, parameters: { weight: -1 } },
        ],
      }),
      { output: out },
    ),
  ).rejects.toThrow(/sum to 0/);
  expect(fs.existsSync(out)).toBe(false);
});

test('the CLI: weightmix merge RECIPE.yml -o OUT writes the model; a refused recipe exits 1 with one line naming it', async () => {
  const { main } = await import('../lib/cli');
  const file = path.join(dir, 'recipe.yml');
  fs.writeFileSync(file, `merge_method: linear\nmodels:\n  - model: ${A}\n    parameters: {weight: 0.2}\n  - model: ${B}\n    parameters: {weight: 0.8}\n`);
  const out = path.join(dir, 'cli-out');
  expect(await main(['node', 'weightmix', 'merge', file, '-o', out, '-q'])).toBe(0);
  expect((await openCheckpoint(out)).names.length).toBe((await openCheckpoint(A)).names.length);
  fs.writeFileSync(file, `merge_method: frankenmerge\nbase_model: ${A}\nmodels:\n  - model: ${B}\n`);
  const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    expect(await main(['node', 'weightmix', 'merge', file, '-o', path.join(dir, 'cli-refused')])).toBe(1);
    expect(String(write.mock.calls[0][0])).toMatch(/^weightmix: error: merge_method "frankenmerge" is unknown \(weightmix runs linear, /);
  } finally {
    write.mockRestore();
  }
  expect(fs.existsSync(path.join(dir, 'cli-refused'))).toBe(false);
});
