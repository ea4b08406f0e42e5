/**
 * mergekit's `model+lora`: a PEFT LoRA adapter applied to a model before merging. The arithmetic is
 * checked bit for bit against an exact reference (test/reference/lora.ts) on random inputs with special
 * values; the adapter folder's reading (names, scale, rslora, patterns, modules_to_save) and refusals;
 * end to end through `merge`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeFloat, elementBits, encodeFloat } from '../lib/format/float-bits';
import { FLOAT_LAYOUTS, FloatDtype } from '../lib/format/dtypes';
import { writeSafetensorsFile } from '../lib/format/safetensors';
import { readTensorBytes } from '../lib/format/tensor-data';
import { openCheckpoint } from '../lib/model/checkpoint';
import { neededFiles } from '../lib/hub/model-files';
import { applyLoraUpdate, decodeMatrix } from '../lib/recipes/lora/lora-delta';
import { readLoraAdapter } from '../lib/recipes/lora/lora-adapter';
import { applyLoraAdapter } from '../lib/recipes/lora/apply-lora';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { mergeBatch } from '../lib/recipes/batch';
import { qwen3Names, rng, SPECIAL_BF16, SPECIAL_F16, SPECIAL_F32, writeRandomBf16Model } from './helpers/models';
import { loraElementRef } from './reference/lora';
import { filesFromFolder, repoOf, startHubServer } from './helpers/hub-server';
import { dir, useTempDir } from './helpers/temp-dir';

let counter = 0;

useTempDir('weightmix-lora-');

const SPECIALS: Record<FloatDtype, number[]> = { BF16: SPECIAL_BF16, F16: SPECIAL_F16, F32: SPECIAL_F32 };

/** Random values over many binades (about 2^-36 … 2^1), one in `specialEvery` a special value of the dtype. */
function values(dtype: FloatDtype, count: number, next: () => number, specialEvery: number): Buffer {
  const size = FLOAT_LAYOUTS[dtype].bytes;
  const out = Buffer.alloc(count * size);
  for (let i = 0; i < count; i++) {
    const x = (next() + next() + next() - 1.5) * 2 ** -Math.floor(next() * (dtype === 'F16' ? 12 : 36));
    const bits = next() < 1 / specialEvery ? SPECIALS[dtype][Math.floor(next() * SPECIALS[dtype].length)] : encodeFloat(x, dtype);
    if (size === 4) out.writeUInt32LE(bits >>> 0, 4 * i);
    else out.writeUInt16LE(bits, 2 * i);
  }
  return out;
}

describe('W + scale·B·A: f64 and one rounding equal the exact result correctly rounded, bit for bit', () => {
  const cases: [FloatDtype, FloatDtype, boolean, number][] = [
    ['F32', 'F32', false, 2],
    ['BF16', 'F32', false, 1 / Math.sqrt(8)],
    ['F16', 'BF16', true, 4],
    ['BF16', 'BF16', true, 0.75],
    ['F32', 'F16', true, 16 / Math.sqrt(3)],
  ];
  test.each(cases)('W %s, adapter %s, transposed %s, scale %d', (wDtype, abDtype, transpose, scale) => {
    const seed = 1000 + counter++;
    const next = rng(seed);
    const [out, inn, r] = [23, 17, 5];
    const [rows, cols] = transpose ? [inn, out] : [out, inn];
    const w = values(wDtype, rows * cols, next, 8);
    const a = decodeMatrix(values(abDtype, r * inn, next, 60), abDtype, r, inn);
    const b = decodeMatrix(values(abDtype, out * r, next, 60), abDtype, out, r);
    const got = applyLoraUpdate(w, wDtype, [rows, cols], a, b, scale, transpose);
    const av = [...a.values];
    const bv = [...b.values];
    let mismatches = 0;
    let finite = 0;
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const e = i * cols + j;
        const wv = decodeFloat(elementBits(w, e, wDtype), wDtype);
        const want = loraElementRef(wv, av, bv, r, inn, transpose ? j : i, transpose ? i : j, scale, wDtype);
        const have = elementBits(got, e, wDtype);
        if (have !== want) mismatches++;
        if (Number.isFinite(decodeFloat(have, wDtype))) finite++;
      }
    }
    expect({ seed, mismatches }).toEqual({ seed, mismatches: 0 });
    expect(finite).toBeGreaterThan((rows * cols) / 2); // the specials do not swamp the check
  });
  test('a shape that does not fit B·A is refused', () => {
    const m = (rows: number, cols: number) => ({ rows, cols, values: new Float64Array(rows * cols) });
    expect(() => applyLoraUpdate(Buffer.alloc(4 * 6), 'F32', [2, 3], m(1, 2), m(2, 1), 1, false)).toThrow(/does not fit a tensor of shape \[2,3\]/);
  });
});

/** A PEFT-shaped adapter folder over qwen3Names(2): lora_A/lora_B pairs, optional embedding LoRA and modules_to_save. */
async function writeAdapter(
  name: string,
  config: Record<string, unknown>,
  tensors: { name: string; shape: number[]; dtype?: FloatDtype }[],
  seed: number,
): Promise<string> {
  const d = path.join(dir, name);
  await fs.promises.mkdir(d, { recursive: true });
  const next = rng(seed);
  await fs.promises.writeFile(path.join(d, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, ...config }));
  await writeSafetensorsFile(
    path.join(d, 'adapter_model.safetensors'),
    tensors.map((t) => {
      const dtype = t.dtype ?? 'F32';
      return {
        name: t.name,
        dtype,
        shape: t.shape,
        data: values(
          dtype,
          t.shape.reduce((x, y) => x * y, 1),
          next,
          1e9,
        ),
      };
    }),
  );
  return d;
}

const P = 'base_model.model.';
const pair = (module: string, out: number, inn: number, r = 4) => [
  { name: `${P}${module}.lora_A.weight`, shape: [r, inn] },
  { name: `${P}${module}.lora_B.weight`, shape: [out, r] },
];

describe('the adapter folder', () => {
  test('names, scales (alpha/r, rslora alpha/√r, alpha_pattern, rank_pattern), embeddings transposed, modules_to_save', async () => {
    const d = await writeAdapter(
      'read-1',
      { r: 4, lora_alpha: 8, alpha_pattern: { 'layers\\.1\\.self_attn\\.q_proj': 3 }, rank_pattern: { v_proj: 2 } },
      [
        ...pair('model.layers.0.self_attn.q_proj', 16, 16),
        ...pair('model.layers.1.self_attn.q_proj', 16, 16),
        ...pair('model.layers.0.self_attn.v_proj', 16, 16, 2),
        { name: `${P}model.embed_tokens.lora_embedding_A`, shape: [4, 40] },
        { name: `${P}model.embed_tokens.lora_embedding_B`, shape: [16, 4] },
        { name: `${P}model.embed_tokens.base_layer.weight`, shape: [40, 16] },
        { name: `${P}model.norm.weight`, shape: [16] },
      ],
      1,
    );
    const a = await readLoraAdapter(d);
    const scale = (n: string) => a.updates.get(n)!.scale;
    expect(scale('model.layers.0.self_attn.q_proj.weight')).toBe(2);
    expect(scale('model.layers.1.self_attn.q_proj.weight')).toBe(0.75);
    expect(scale('model.layers.0.self_attn.v_proj.weight')).toBe(4);
    expect(a.updates.get('model.embed_tokens.weight')!.transpose).toBe(true);
    expect(a.updates.get('model.layers.0.self_attn.q_proj.weight')!.transpose).toBe(false);
    expect([...a.replacements.keys()].sort()).toEqual(['model.embed_tokens.weight', 'model.norm.weight']);
    const rs = await writeAdapter('read-2', { r: 4, lora_alpha: 16, use_rslora: true, fan_in_fan_out: true }, pair('model.layers.0.mlp.up_proj', 24, 16), 2);
    const u = (await readLoraAdapter(rs)).updates.get('model.layers.0.mlp.up_proj.weight')!;
    expect([u.scale, u.transpose]).toEqual([8, true]);
  });
  test('refusals name what they refuse', async () => {
    const refuse = async (name: string, config: Record<string, unknown>, tensors: { name: string; shape: number[] }[], message: RegExp) =>
      expect(readLoraAdapter(await writeAdapter(name, config, tensors, 3))).rejects.toThrow(message);
    const q = pair('model.layers.0.self_attn.q_proj', 16, 16);
    await refuse('dora', { use_dora: true }, q, /DoRA adapter \(use_dora\)/);
    await refuse('bias', { lora_bias: true }, q, /LoRA biases/);
    await refuse('ia3', { peft_type: 'IA3' }, q, /peft_type "IA3": weightmix applies LoRA adapters only/);
    await refuse('params', { target_parameters: ['experts.gate_up_proj'] }, q, /target_parameters/);
    await refuse('rank', { r: 8 }, q, /do not have rank 8/);
    await refuse('half', {}, q.slice(0, 1), /has lora_A without lora_B/);
    await refuse('odd', {}, [...q, { name: 'something.else', shape: [2] }], /something.else is not a LoRA weight weightmix knows/);
    const none = path.join(dir, 'no-config');
    fs.mkdirSync(none);
    await expect(readLoraAdapter(none)).rejects.toThrow(/no adapter_config.json/);
    // A folder where the file goes: the adapter's error, naming it (merge said "cannot finish OUT: EISDIR").
    fs.mkdirSync(path.join(none, 'adapter_config.json'));
    await expect(readLoraAdapter(none)).rejects.toMatchObject({
      code: 'InvalidLoraAdapter',
      message: expect.stringMatching(/no-config: cannot read adapter_config.json: EISDIR/),
    });
  });
  test('a hub adapter fetches only its two files', () => {
    const files = ['adapter_config.json', 'adapter_model.safetensors', 'README.md', 'model.safetensors', 'tokenizer.json'].map((p) => ({ path: p, size: 1 }));
    expect(neededFiles(files as never, 'adapter').map((f) => f.path)).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  });
});

describe('model+lora in a recipe', () => {
  let A: string;
  let B: string;
  let adapter: string;
  beforeAll(async () => {
    const next = rng(77);
    const specs = qwen3Names(2);
    A = await writeRandomBf16Model(path.join(dir, 'A'), specs, next, 'A', 2);
    B = await writeRandomBf16Model(path.join(dir, 'B+plus'), specs, next, 'B');
    adapter = await writeAdapter(
      'adapter',
      { r: 4, lora_alpha: 8 },
      [
        ...pair('model.layers.1.self_attn.q_proj', 16, 16),
        ...pair('model.layers.0.mlp.down_proj', 16, 24),
        { name: `${P}model.embed_tokens.lora_embedding_A`, shape: [4, 40] },
        { name: `${P}model.embed_tokens.lora_embedding_B`, shape: [16, 4] },
        { name: `${P}model.norm.weight`, shape: [16], dtype: 'F32' },
      ],
      4,
    );
  });

  test('parsing: model+lora, the same model with and without it are two models, a folder named with + is a model, A+B+C refused', () => {
    const r = parseRecipe({
      merge_method: 'linear',
      models: [
        { model: `${A}+${adapter}`, parameters: { weight: 1 } },
        { model: A, parameters: { weight: 1 } },
      ],
    });
    expect(r.models).toEqual([A, A]);
    expect(r.adapters).toEqual([adapter, null]);
    expect(parseRecipe({ merge_method: 'linear', models: [{ model: B, parameters: { weight: 1 } }] }).adapters).toEqual([null]);
    expect(() => parseRecipe({ merge_method: 'linear', models: [{ model: `${A}+${adapter}+x` }] })).toThrow(/is not of mergekit's form model\+lora/);
    expect(() => parseRecipe({ merge_method: 'linear', models: [{ model: `${A}+${path.join(dir, 'nope')}` }] })).toThrow(
      /\(LoRA adapter\): model folder not found/,
    );
  });

  test('passthrough of A+lora: the adapted tensors are the reference applied to A, modules_to_save replaces, the rest is A; no temporary folder is left', async () => {
    const out = path.join(dir, 'out-pass');
    const summary = await merge(parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${adapter}` }] }), { output: out, threads: 2 });
    expect(summary.tensors).toBe(qwen3Names(2).length);
    const [o, a, ad] = await Promise.all([openCheckpoint(out), openCheckpoint(A), readLoraAdapter(adapter)]);
    expect(o.shards.map((s) => s.name)).toEqual(a.shards.map((s) => s.name));
    for (const name of a.names) {
      const got = await readTensorBytes(o.tensors.get(name)!);
      const base = await readTensorBytes(a.tensors.get(name)!);
      const u = ad.updates.get(name);
      if (name === 'model.norm.weight') {
        // F32 in the adapter, BF16 in the model: converted, rounded once.
        const rep = await readTensorBytes(ad.replacements.get(name)!);
        for (let i = 0; i < 16; i++) expect(elementBits(got, i, 'BF16')).toBe(encodeFloat(rep.readFloatLE(4 * i), 'BF16'));
        expect(got.equals(base)).toBe(false);
      } else if (!u) {
        expect(got.equals(base)).toBe(true);
      } else {
        const av = [...decodeMatrix(await readTensorBytes(u.a), 'F32', u.a.shape[0], u.a.shape[1]).values];
        const bv = [...decodeMatrix(await readTensorBytes(u.b), 'F32', u.b.shape[0], u.b.shape[1]).values];
        const [rows, cols] = a.tensors.get(name)!.shape;
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) {
            const e = i * cols + j;
            const want = loraElementRef(
              decodeFloat(elementBits(base, e, 'BF16'), 'BF16'),
              av,
              bv,
              4,
              u.a.shape[1],
              u.transpose ? j : i,
              u.transpose ? i : j,
              u.scale,
              'BF16',
            );
            expect(elementBits(got, e, 'BF16')).toBe(want);
          }
      }
    }
    expect(fs.readdirSync(dir).filter((n) => n.includes('.weightmix-lora-'))).toEqual([]);
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8')).toMatch(/the LoRA adapter applied first/);
  });

  test('computed in blocks of rows (here 40 elements: two rows of 16, or one of 24, a last block short), the same bytes', async () => {
    const [ckpt, ad] = await Promise.all([openCheckpoint(A), readLoraAdapter(adapter)]);
    const whole = await applyLoraAdapter(ckpt, 'A', ad, path.join(dir, 'whole.safetensors'));
    const blocks = await applyLoraAdapter(ckpt, 'A', ad, path.join(dir, 'blocks.safetensors'), 40);
    const changed = ckpt.names.filter((n) => ad.updates.has(n) || ad.replacements.has(n));
    expect(changed).toHaveLength(4);
    for (const name of changed) {
      expect(whole.tensors.get(name)!.file).toBe(path.join(dir, 'whole.safetensors'));
      expect((await readTensorBytes(blocks.tensors.get(name)!)).equals(await readTensorBytes(whole.tensors.get(name)!))).toBe(true);
    }
    expect(fs.readFileSync(path.join(dir, 'blocks.safetensors')).equals(fs.readFileSync(path.join(dir, 'whole.safetensors')))).toBe(true);
  });

  test('an abort stops the application between blocks of rows', async () => {
    const [ckpt, ad] = await Promise.all([openCheckpoint(A), readLoraAdapter(adapter)]);
    await expect(applyLoraAdapter(ckpt, 'A', ad, path.join(dir, 'aborted.safetensors'), 40, AbortSignal.abort())).rejects.toMatchObject({
      code: 'Aborted',
      message: 'the merge was aborted while it applied a LoRA adapter',
    });
  });

  test('an adapter that does not fit its model fails with one line, leaving no output and no temporary folder', async () => {
    const bad = await writeAdapter('bad', {}, pair('model.layers.7.self_attn.q_proj', 16, 16), 5);
    const out = path.join(dir, 'out-bad');
    await expect(merge(parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${bad}` }] }), { output: out })).rejects.toThrow(
      /the adapter changes model.layers.7.self_attn.q_proj.weight, which .* does not have/,
    );
    const wide = await writeAdapter('wide', {}, pair('model.layers.0.self_attn.q_proj', 24, 16), 6);
    await expect(merge(parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${wide}` }] }), { output: out })).rejects.toThrow(
      /q_proj.weight: LoRA B \[24, 4\] · A \[4, 16\] does not fit a tensor of shape \[16,16\]/,
    );
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((n) => n.includes('.weightmix-lora-'))).toEqual([]);
  });

  test("an output in folders not made yet: the adapted tensors lie in the output's own folder, made for them (where the next run looks for a killed run's), and a failed run leaves no folder", async () => {
    const out = path.join(dir, 'new-a', 'new-b', 'out');
    let during: string[] = [];
    await merge(parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${adapter}` }] }), {
      output: out,
      threads: 2,
      onProgress: () => {
        if (during.length === 0) during = fs.readdirSync(path.dirname(out));
      },
    });
    expect(during.filter((n) => n.startsWith('.out.weightmix-lora-'))).toHaveLength(1);
    expect(fs.readdirSync(path.dirname(out))).toEqual(['out']);
    const bad = await writeAdapter('bad-nested', {}, pair('model.layers.7.self_attn.q_proj', 16, 16), 5);
    const failed = path.join(dir, 'new-c', 'new-d', 'out');
    await expect(merge(parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${bad}` }] }), { output: failed })).rejects.toThrow(/does not have/);
    expect(fs.existsSync(path.join(dir, 'new-c'))).toBe(false);
  });

  test("a killed run's adapted tensors (beside the output, named after it and its pid) are removed by the next run on that output; a live run's are not", async () => {
    const out = path.join(dir, 'out-killed');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const killed = path.join(dir, `.out-killed.weightmix-lora-${dead}-Ab12Cd`);
    const live = path.join(dir, `.out-killed.weightmix-lora-${process.ppid}-Ef34Gh`);
    for (const folder of [killed, live]) {
      fs.mkdirSync(folder);
      fs.writeFileSync(path.join(folder, 'model-0.safetensors'), 'adapted');
    }
    await merge(parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${adapter}` }] }), { output: out, threads: 2 });
    expect(fs.readdirSync(dir).filter((n) => n.includes('.weightmix-lora-'))).toEqual([path.basename(live)]);
    fs.rmSync(live, { recursive: true });
  });

  test('hub ids on both sides of the +: the adapter repo gives its two files only, and the merge writes what the folders give', async () => {
    const server = await startHubServer({
      'Org/Model': repoOf(filesFromFolder(A)),
      'Org/Adapter': repoOf(filesFromFolder(adapter, { 'README.md': '# card', 'model.safetensors': 'not an adapter file' })),
    });
    try {
      const env = {
        HF_ENDPOINT: server.endpoint,
        HF_HOME: path.join(dir, 'hf-home'),
        HF_HUB_CACHE: '',
        HF_TOKEN: '',
        HF_HUB_OFFLINE: '0',
        HUGGING_FACE_HUB_TOKEN: '',
      };
      const recipe = parseRecipe({ merge_method: 'passthrough', models: [{ model: 'Org/Model+Org/Adapter' }] }, { env });
      expect([recipe.models, recipe.adapters]).toEqual([['Org/Model'], ['Org/Adapter']]);
      const out = path.join(dir, 'out-hub');
      await merge(recipe, { output: out, threads: 2, env });
      const local = path.join(dir, 'out-local');
      await merge(parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${adapter}` }] }), { output: local, threads: 2 });
      const [h, l] = await Promise.all([openCheckpoint(out), openCheckpoint(local)]);
      for (const name of l.names) expect((await readTensorBytes(h.tensors.get(name)!)).equals(await readTensorBytes(l.tensors.get(name)!))).toBe(true);
      const recorded = JSON.parse(h.shards[0].header.metadata!.weightmix);
      expect(recorded.adapterHub).toEqual([{ repo: 'Org/Adapter', revision: 'main', commit: expect.stringMatching(/^[0-9a-f]{40}$/) }]);
      expect(recorded.hub[0].repo).toBe('Org/Model');
      expect(JSON.parse(l.shards[0].header.metadata!.weightmix)).not.toHaveProperty('adapterHub');
      const fetched = server.log.filter((r) => r.url.includes('/Org/Adapter/resolve/')).map((r) => path.basename(r.url));
      expect([...new Set(fetched)].sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    } finally {
      await server.close();
    }
  });

  test('a batch refuses a LoRA recipe by name (merge it on its own)', async () => {
    await expect(
      mergeBatch([{ name: 'x', recipe: parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${adapter}` }] }) }], {
        output: path.join(dir, 'batch'),
      }),
    ).rejects.toThrow(/x: .* applies a LoRA adapter \(model\+lora\), which a batch does not do yet/);
  });
});
