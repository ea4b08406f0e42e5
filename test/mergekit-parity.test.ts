/**
 * Where a mergekit user's recipe used to merge differently without a word (issue #14's silent
 * differences), end to end through `merge`: task_arithmetic's rounding, the written dtype and the
 * config that describes it, tokenizer_source's embedding resize.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../lib/model/checkpoint';
import { merge } from '../lib/recipes/merge-recipe';
import { rebuildVocabulary } from '../lib/recipes/vocabulary-rebuild';
import { parseRecipe } from '../lib/recipes/recipe';
import { readTensorBytes, readTensorValues } from '../lib/format/tensor-data';
import { SafetensorsDtype } from '../lib/format/safetensors';
import { qwen3Names, randomTensor, rng, TensorSpec, writeBf16Model, writeModel } from './helpers/models';
import { taskArithmeticRef } from './reference/merge-methods';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-parity-');

const count = (s: TensorSpec) => s.shape.reduce((a, b) => a * b, 1);
/** A one-shard BF16 model of random values, named `name` in the test folder. */
const bf16Model = (name: string, specs: TensorSpec[], next: () => number) => writeBf16Model(path.join(dir, name), specs, next, name);

/** A base and models near it (random bits with special values), every tensor of dtype `dtypes[k]`. */
async function family(seed: number, dtypes: SafetensorsDtype[]): Promise<string[]> {
  const next = rng(seed);
  const specs = qwen3Names(2);
  const baseData = new Map<string, Buffer>();
  const dirs: string[] = [];
  for (const [k, dtype] of dtypes.entries()) {
    const d = path.join(dir, `family-${seed}-${k}`);
    await writeModel(
      d,
      specs,
      1,
      () => dtype,
      (spec, dt) => {
        // Models are near the base (values read back through f32, so mixed dtypes stay near too).
        const base = baseData.get(spec.name);
        const data = randomTensor(dt as 'BF16' | 'F16' | 'F32', count(spec), next, base && dt === dtypes[0] ? base : undefined);
        if (k === 0) baseData.set(spec.name, data);
        return data;
      },
      `m${k}`,
    );
    dirs.push(d);
  }
  return dirs;
}

async function values(model: string): Promise<Map<string, number[]>> {
  const c = await openCheckpoint(model);
  const m = new Map<string, number[]>();
  for (const name of c.names) m.set(name, await readTensorValues(c.tensors.get(name)!));
  return m;
}

/** x rounded to nearest-even in `dtype` (slow and obvious: scale by the ulp, round the integer, scale back). */
function roundTo(x: number, dtype: 'F32' | 'BF16'): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const [mant, minExp, max] = dtype === 'F32' ? [23, -126, 3.4028234663852886e38] : [7, -126, 3.3895313892515355e38];
  const ulp = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(x))), minExp) - mant);
  const q = x / ulp;
  let r = Math.round(q);
  if (Math.abs(q - Math.trunc(q)) === 0.5) r = Math.trunc(q) % 2 === 0 ? Math.trunc(q) : Math.trunc(q) + Math.sign(q);
  const y = r * ulp;
  return Math.abs(y) > max ? Math.sign(y) * Infinity : y;
}

test.each(['F32', 'BF16'] as const)(
  'task_arithmetic into %s is correctly rounded (f64 delta form): every finite element of random inputs with special values',
  async (dtype) => {
    const [base, m1, m2] = await family(11, ['BF16', 'BF16', 'BF16']);
    const [b, x1, x2] = await Promise.all([values(base), values(m1), values(m2)]);
    const out = freshPath('out');
    const outDtype = dtype === 'F32' ? 'float32' : 'bfloat16';
    await merge(
      parseRecipe({
        merge_method: 'task_arithmetic',
        base_model: base,
        out_dtype: outDtype,
        models: [
          { model: m1, parameters: { weight: 0.7 } },
          { model: m2, parameters: { weight: 0.7 } },
        ],
      }),
      { output: out, threads: 2 },
    );
    const got = await values(out);
    let total = 0;
    let correct = 0;
    let nonFinite = 0;
    for (const [name, g] of got) {
      const ref = taskArithmeticRef(b.get(name)!, [x1.get(name)!, x2.get(name)!], [0.7, 0.7], 1, false);
      for (let i = 0; i < g.length; i++) {
        if (!Number.isFinite(ref[i])) {
          nonFinite++;
          expect(Number.isNaN(g[i]) ? NaN : g[i]).toBe(Number.isNaN(ref[i]) ? NaN : ref[i]);
          continue;
        }
        total++;
        if (g[i] === roundTo(ref[i], dtype)) correct++;
      }
    }
    // The f32 form this replaced, (1 − Σw)·base + Σ w·θ, got 57.5% of the F32 case (2,560 of 4,455).
    console.log(
      `task_arithmetic ${dtype}: ${correct}/${total} finite elements correctly rounded (${((100 * correct) / total).toFixed(2)}%), ${nonFinite} non-finite`,
    );
    expect(total).toBeGreaterThan(4000);
    expect(correct).toBe(total);
  },
);

describe("without a dtype key the written dtype is mergekit's, and config.json states it", () => {
  async function dtypesOf(out: string): Promise<{ tensors: Set<string>; config: unknown }> {
    const c = await openCheckpoint(out);
    return { tensors: new Set(c.names.map((n) => c.tensors.get(n)!.dtype)), config: c.config?.torch_dtype ?? c.config?.dtype };
  }
  const setConfigDtype = (d: string, dtype: string) => {
    const file = path.join(d, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), torch_dtype: dtype }));
  };

  test('task_arithmetic from an F32 base with BF16 models writes F32 (mergekit casts to the base dtype), config float32', async () => {
    const [base, m1, m2] = await family(21, ['F32', 'BF16', 'BF16']);
    setConfigDtype(base, 'float32');
    const out = freshPath('out');
    await merge(
      parseRecipe({
        merge_method: 'task_arithmetic',
        base_model: base,
        models: [
          { model: m1, parameters: { weight: 0.5 } },
          { model: m2, parameters: { weight: 0.5 } },
        ],
      }),
      { output: out, threads: 2 },
    );
    expect(await dtypesOf(out)).toEqual({ tensors: new Set(['F32']), config: 'float32' });
  });

  test('linear of a BF16 and an F32 model promotes to F32 as torch does; the base-less config said bfloat16 and now says float32', async () => {
    const [a, b] = await family(22, ['BF16', 'F32']);
    const out = freshPath('out');
    await merge(
      parseRecipe({
        merge_method: 'linear',
        models: [
          { model: a, parameters: { weight: 0.5 } },
          { model: b, parameters: { weight: 0.5 } },
        ],
      }),
      { output: out, threads: 2 },
    );
    expect(await dtypesOf(out)).toEqual({ tensors: new Set(['F32']), config: 'float32' });
  });

  test('slerp from a BF16 base (its config wrongly saying float32) with an F32 model writes BF16 (mergekit casts to the base), config bfloat16; dtype: float16 overrides both', async () => {
    const [base, other] = await family(23, ['BF16', 'F32']);
    setConfigDtype(base, 'float32');
    const out = freshPath('out');
    await merge(parseRecipe({ merge_method: 'slerp', base_model: base, parameters: { t: 0.3 }, models: [{ model: base }, { model: other }] }), {
      output: out,
      threads: 2,
    });
    expect(await dtypesOf(out)).toEqual({ tensors: new Set(['BF16']), config: 'bfloat16' });
    const out16 = freshPath('out');
    await merge(
      parseRecipe({ merge_method: 'slerp', base_model: base, dtype: 'float16', parameters: { t: 0.3 }, models: [{ model: base }, { model: other }] }),
      { output: out16, threads: 2 },
    );
    expect(await dtypesOf(out16)).toEqual({ tensors: new Set(['F16']), config: 'float16' });
  });
});

describe('tokenizer_source: the embeddings are rebuilt for that vocabulary (mergekit), where the rebuild is a cut', () => {
  /** Two BF16 models with 40 embedding rows (embed_tokens and lm_head) and the given tokenizer.json vocabularies. */
  async function pair(seed: number, vocabs: Record<string, number>[]): Promise<string[]> {
    const next = rng(seed);
    const specs = [...qwen3Names(2), { name: 'lm_head.weight', shape: [40, 16] }];
    return Promise.all(
      vocabs.map(async (vocab, k) => {
        const d = path.join(dir, `vocab-${seed}-${k}`);
        await writeModel(
          d,
          specs,
          1,
          () => 'BF16',
          (spec) => randomTensor('BF16', count(spec), next),
          `v${k}`,
        );
        const file = path.join(d, 'config.json');
        fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), vocab_size: 40 }));
        const added = Object.entries(vocab).filter(([t]) => t.startsWith('<|'));
        const plain = Object.fromEntries(Object.entries(vocab).filter(([t]) => !t.startsWith('<|')));
        fs.writeFileSync(
          path.join(d, 'tokenizer.json'),
          JSON.stringify({ added_tokens: added.map(([content, id]) => ({ id, content, special: true })), model: { type: 'BPE', vocab: plain, merges: [] } }),
        );
        return d;
      }),
    );
  }
  const vocabulary = (n: number): Record<string, number> => {
    const v: Record<string, number> = {};
    for (let i = 0; i < n - 2; i++) v[`t${i}`] = i;
    v['<|endoftext|>'] = n - 2;
    v['<|im_end|>'] = n - 1;
    return v;
  };
  const recipe = (a: string, b: string, extra: Record<string, unknown> = {}) => ({
    merge_method: 'linear',
    models: [
      { model: a, parameters: { weight: 0.5 } },
      { model: b, parameters: { weight: 0.5 } },
    ],
    ...extra,
  });

  test('a shared 30-token vocabulary cuts embed_tokens and lm_head from 40 rows to 30, the rows merged as before; config vocab_size 30', async () => {
    const [a, b] = await pair(31, [vocabulary(30), vocabulary(30)]);
    const plain = freshPath('out');
    await merge(parseRecipe(recipe(a, b)), { output: plain, threads: 2 });
    const cut = freshPath('out');
    await merge(parseRecipe(recipe(a, b, { tokenizer_source: b })), { output: cut, threads: 2 });
    const [p, c] = await Promise.all([openCheckpoint(plain), openCheckpoint(cut)]);
    for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
      expect(p.tensors.get(name)!.shape).toEqual([40, 16]);
      expect(c.tensors.get(name)!.shape).toEqual([30, 16]);
      expect(await readTensorValues(c.tensors.get(name)!)).toEqual((await readTensorValues(p.tensors.get(name)!)).slice(0, 30 * 16));
    }
    expect(c.config?.vocab_size).toBe(30);
    expect(p.config?.vocab_size).toBe(40);
    const layer = 'model.layers.1.mlp.up_proj.weight';
    expect(await readTensorValues(c.tensors.get(layer)!)).toEqual(await readTensorValues(p.tensors.get(layer)!));
  });

  test("vocabularies that differ: each model's rows are moved to the vocabulary's ids (mergekit's rebuild); ids past config vocab_size are refused", async () => {
    const other = { ...vocabulary(30), t3: 4, t4: 3 };
    const [a, b] = await pair(32, [vocabulary(30), other]);
    const r = parseRecipe(recipe(a, b, { tokenizer_source: a }));
    const ckpts = await Promise.all(r.models.map((m) => openCheckpoint(m)));
    const rebuilt = await rebuildVocabulary(r, ckpts, freshPath('out'));
    try {
      expect(rebuilt.vocabulary?.kind).toBe('rebuild');
      for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
        const [was, now] = await Promise.all([readTensorBytes(ckpts[1].tensors.get(name)!), readTensorBytes(rebuilt.ckpts[1].tensors.get(name)!)]);
        const row = (buf: Buffer, i: number) => buf.subarray(i * 32, (i + 1) * 32);
        expect(now.length).toBe(30 * 32);
        for (let i = 0; i < 30; i++) expect([name, i, row(now, i)]).toEqual([name, i, row(was, i === 3 ? 4 : i === 4 ? 3 : i)]);
      }
    } finally {
      await rebuilt.cleanup();
    }
    const [c, d] = await pair(33, [vocabulary(41), vocabulary(41)]);
    await expect(merge(parseRecipe(recipe(c, d, { tokenizer_source: c })), { output: freshPath('out') })).rejects.toThrow(
      /at id 40, past its config vocab_size 40/,
    );
  });
});

test('F8_E4M3FNUZ and F8_E5M2FNUZ tensors the models share are copied byte for byte; where they differ the merge is refused (the engine computes on F32, F16 and BF16 only)', async () => {
  const next = rng(41);
  const specs = [
    ...qwen3Names(1),
    { name: 'model.layers.0.mlp.down_proj.weight_scale', shape: [4, 6] },
    { name: 'model.layers.0.mlp.up_proj.weight_scale', shape: [5] },
  ];
  const fp8 = (name: string): SafetensorsDtype =>
    name.endsWith('down_proj.weight_scale') ? 'F8_E4M3FNUZ' : name.endsWith('up_proj.weight_scale') ? 'F8_E5M2FNUZ' : 'BF16';
  // The FP8 bytes: the same in every model (a quantization scale both share), or, with `salt`, this model's own.
  const models = (salt: number[]) =>
    Promise.all(
      [0, 1].map(async (k) => {
        const d = path.join(dir, `fnuz-${salt.join('')}-${k}`);
        await writeModel(
          d,
          specs,
          1,
          fp8,
          (spec, dt) =>
            dt === 'BF16' ? randomTensor('BF16', count(spec), next) : Buffer.from(Array.from({ length: count(spec) }, (_, i) => (i * 37 + salt[k]) & 0xff)),
          `f${k}`,
        );
        return d;
      }),
    );
  const linear = (ms: string[]) => parseRecipe({ merge_method: 'linear', models: ms.map((model) => ({ model, parameters: { weight: 0.5 } })) });
  const shared = await models([0, 0]);
  const out = freshPath('out');
  await merge(linear(shared), { output: out, threads: 2 });
  const [o, first] = await Promise.all([openCheckpoint(out), openCheckpoint(shared[0])]);
  for (const name of ['model.layers.0.mlp.down_proj.weight_scale', 'model.layers.0.mlp.up_proj.weight_scale']) {
    expect(o.tensors.get(name)!.dtype).toBe(fp8(name));
    expect(await readTensorBytes(o.tensors.get(name)!)).toEqual(await readTensorBytes(first.tensors.get(name)!));
  }
  // Different bytes: a copy of the first model's would pass for a merge (at weights 0 and 1 it would even be the wrong model).
  const differ = await models([0, 1]);
  const refused = freshPath('out');
  await expect(merge(linear(differ), { output: refused })).rejects.toMatchObject({
    code: 'UnsupportedDtype',
    message: expect.stringMatching(
      /^tensor model\.layers\.0\.mlp\.(down|up)_proj\.weight_scale is F8_E(4M3|5M2)FNUZ in .* and differs between the models: .*take it from one model \(a passthrough slice\)/,
    ),
  });
  expect(fs.existsSync(refused)).toBe(false);
});

test('a zero-padded layer name (model.layers.01.…) beside layer 1 is its own tensor: kept as written, no crash (it was renamed to layers.1 and collided)', async () => {
  const next = rng(43);
  const specs = [...qwen3Names(2), { name: 'model.layers.01.mlp.up_proj.weight', shape: [4, 4] }];
  const [a, b] = await Promise.all(['padded-a', 'padded-b'].map((name) => bf16Model(name, specs, next)));
  for (const recipe of [
    { merge_method: 'passthrough', models: [{ model: a.dir }] },
    {
      merge_method: 'linear',
      models: [
        { model: a.dir, parameters: { weight: 1 } },
        { model: b.dir, parameters: { weight: 0 } },
      ],
    },
  ]) {
    const out = freshPath('out');
    await merge(parseRecipe(recipe), { output: out });
    const o = await openCheckpoint(out);
    expect(o.names.length).toBe(specs.length);
    for (const spec of specs)
      expect([spec.name, (await readTensorBytes(o.tensors.get(spec.name)!)).equals(a.data.get(spec.name)!.bytes)]).toEqual([spec.name, true]);
  }
});

test("a tied model (no lm_head) beside an untied layout model reads its embed_tokens as its head, as mergekit's tied_names do; tied first is refused", async () => {
  const next = rng(44);
  const untiedSpecs = [...qwen3Names(2), { name: 'lm_head.weight', shape: [40, 16] }];
  const write = (name: string, specs: TensorSpec[]) => bf16Model(name, specs, next);
  const [tied, untied] = await Promise.all([write('tied', qwen3Names(2)), write('untied', untiedSpecs)]);
  // The reference: the tied model as a model that stores its embedding again as lm_head.
  const headOf = (name: string) => tied.data.get(name === 'lm_head.weight' ? 'model.embed_tokens.weight' : name)!.bytes;
  const stored = (
    await writeModel(
      path.join(dir, 'tied-head-stored'),
      untiedSpecs,
      1,
      () => 'BF16',
      (spec) => headOf(spec.name),
      'tied',
    )
  ).dir;
  const recipeOf = (method: string, models: string[]) =>
    method === 'linear'
      ? { merge_method: 'linear', models: models.map((m) => ({ model: m, parameters: { weight: 0.5 } })) }
      : { merge_method: 'passthrough', slices: models.map((m, i) => ({ sources: [{ model: m, layer_range: [i, i + 1] }] })) };
  for (const method of ['linear', 'passthrough']) {
    const out = freshPath('out');
    const expected = freshPath('expected');
    await merge(parseRecipe(recipeOf(method, [untied.dir, tied.dir])), { output: out });
    await merge(parseRecipe(recipeOf(method, [untied.dir, stored])), { output: expected });
    const o = await openCheckpoint(out);
    expect(o.names).toContain('lm_head.weight');
    for (const name of (await openCheckpoint(expected)).names) {
      const same = (await readTensorBytes(o.tensors.get(name)!)).equals(await readTensorBytes((await openCheckpoint(expected)).tensors.get(name)!));
      expect([method, name, same]).toEqual([method, name, true]);
    }
    // Tied first: the output's layout and config are the tied model's, which ties lm_head away; the untied head would be dropped.
    const refused = freshPath('refused');
    await expect(merge(parseRecipe(recipeOf(method, [tied.dir, untied.dir])), { output: refused })).rejects.toMatchObject({
      code: 'ModelsDiffer',
      message: expect.stringMatching(/lm_head\.weight .*is missing from .*tied \(a model with tie_word_embeddings stores none/),
    });
    expect(fs.existsSync(refused)).toBe(false);
  }
});

test("a passthrough whose first and last slices' models hold vocabularies of different sizes is refused, not written with two", async () => {
  const next = rng(45);
  const specs = (rows: number) => [
    ...qwen3Names(2).map((s) => (s.name === 'model.embed_tokens.weight' ? { ...s, shape: [rows, s.shape[1]] } : s)),
    { name: 'lm_head.weight', shape: [rows, 16] },
  ];
  const write = (name: string, rows: number) => bf16Model(name, specs(rows), next);
  const [a, b] = await Promise.all([write('vocab-40', 40), write('vocab-48', 48)]);
  const out = freshPath('out');
  const recipe = { merge_method: 'passthrough', slices: [a, b].map((m, i) => ({ sources: [{ model: m.dir, layer_range: [i, i + 1] }] })) };
  await expect(merge(parseRecipe(recipe), { output: out })).rejects.toMatchObject({
    code: 'ShapeMismatch',
    message: expect.stringMatching(
      /^lm_head\.weight has 48 rows in .*vocab-48, where it comes from, but 40 in .*vocab-40, whose config and tokenizer .*tokenizer_source/,
    ),
  });
  expect(fs.existsSync(out)).toBe(false);
  // A model's own embeddings and head may differ in rows (a head padded otherwise): that is its vocabulary, merged as it is.
  const padded = (name: string) =>
    bf16Model(name, [...specs(40).filter((t) => t.name !== 'lm_head.weight'), { name: 'lm_head.weight', shape: [48, 16] }], next);
  const [c, d] = await Promise.all([padded('own-c'), padded('own-d')]);
  const fine = freshPath('out');
  await merge(parseRecipe({ merge_method: 'linear', models: [c, d].map((m) => ({ model: m.dir, parameters: { weight: 0.5 } })) }), { output: fine });
  expect((await openCheckpoint(fine)).tensors.get('lm_head.weight')!.shape).toEqual([48, 16]);
});

test('int8_mask, rescale and density on task_arithmetic are accepted and change nothing, as in mergekit without sparsification', async () => {
  const [base, m1] = await family(51, ['BF16', 'BF16']);
  const outs = [freshPath('out'), freshPath('out')];
  const recipe = (extra: Record<string, unknown>, density?: number) => ({
    merge_method: 'task_arithmetic',
    base_model: base,
    parameters: extra,
    models: [{ model: m1, parameters: { weight: 0.7, ...(density === undefined ? {} : { density }) } }],
  });
  await merge(parseRecipe(recipe({})), { output: outs[0], threads: 2 });
  await merge(parseRecipe(recipe({ int8_mask: true, rescale: true }, 0.3)), { output: outs[1], threads: 2 });
  const [a, b] = await Promise.all(outs.map((o) => openCheckpoint(o)));
  for (const name of a.names) expect(await readTensorBytes(b.tensors.get(name)!)).toEqual(await readTensorBytes(a.tensors.get(name)!));
});
