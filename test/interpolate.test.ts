/**
 * End to end: `interpolate` against a slow reference, tensor by tensor and bit for bit, over random
 * inputs with the special values mixed in, every selection flag, differing shard layouts and dtypes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../lib/model/checkpoint';
import { interpolate } from '../lib/interpolation/interpolate';
import { readSafetensorsHeader, SafetensorsDtype } from '../lib/format/safetensors';
import { sweep } from '../lib/interpolation/sweep';
import * as executePlan from '../lib/engine/execute-plan';
import { readTensorBytes } from '../lib/format/tensor-data';
import { listTree, qwen3Names, randomTensor, rng, TensorSpec, writeModel, WrittenModel } from './helpers/models';
import { referenceInterpolation } from './reference/interpolation';
import { dir as root, useTempDir } from './helpers/temp-dir';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`interpolate.test seed ${seed} (replay with WEIGHTMIX_SEED=${seed})`);

let instruct: WrittenModel;
let thinking: WrittenModel;
const LAYERS = 4;
const specs: TensorSpec[] = qwen3Names(LAYERS);

useTempDir('wm-interp-');

beforeAll(async () => {
  const next = rng(seed);
  // Instruct in 3 shards, Thinking in 2: pairing must go by tensor name, never by shard file.
  instruct = await writeModel(
    path.join(root, 'instruct'),
    specs,
    3,
    () => 'BF16',
    (s, d) => randomTensor(d as 'BF16', count(s), next),
    'instruct',
  );
  thinking = await writeModel(
    path.join(root, 'thinking'),
    specs,
    2,
    () => 'BF16',
    (s, d) => randomTensor(d as 'BF16', count(s), next, instruct.data.get(s.name)!.bytes),
    'thinking',
  );
});

function count(s: TensorSpec): number {
  return s.shape.reduce((a, b) => a * b, 1);
}

let outCounter = 0;
function outDir(): string {
  return path.join(root, `out-${outCounter++}`);
}

/** Checks every tensor of `out`: selected ones against the reference, the rest against Instruct's bytes. */
async function expectMerged(
  out: string,
  lambda: number,
  selected: (name: string) => boolean,
  numerics: 'exact' | 'mi' = 'exact',
  outDtype?: SafetensorsDtype,
  a: WrittenModel = instruct,
  b: WrittenModel = thinking,
) {
  const ck = await openCheckpoint(out);
  expect(ck.names.sort()).toEqual(specs.map((s) => s.name).sort());
  for (const spec of specs) {
    const t = ck.tensors.get(spec.name)!;
    const got = await readTensorBytes(t);
    const A = a.data.get(spec.name)!;
    const B = b.data.get(spec.name)!;
    const dtype = outDtype ?? A.dtype;
    expect(t.dtype).toBe(dtype);
    const want = selected(spec.name)
      ? referenceInterpolation(A.bytes, A.dtype, B.bytes, B.dtype, lambda, numerics, dtype)
      : referenceInterpolation(A.bytes, A.dtype, A.bytes, A.dtype, 0, 'exact', dtype);
    if (!got.equals(want)) {
      // Name the first differing element, to make a failure readable.
      const size = dtype === 'F32' ? 4 : 2;
      let i = 0;
      while (i < got.length && got[i] === want[i]) i++;
      const e = Math.floor(i / size);
      throw new Error(
        `${spec.name} differs at element ${e}: got ${got.subarray(e * size, e * size + size).toString('hex')} want ${want.subarray(e * size, e * size + size).toString('hex')} (λ=${lambda}, ${numerics})`,
      );
    }
  }
}

describe('interpolate, exact numerics', () => {
  test.each([0.2, 0.45, 0.5, 0.8, 1.3, -0.25])('λ=%p matches torch.lerp in f32 with one rounding, bit for bit', async (lambda) => {
    const out = outDir();
    const summary = await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda, output: out, threads: 2 });
    expect(summary.selectedTensors).toBe(specs.length);
    await expectMerged(out, lambda, () => true);
  });

  test('λ=0 reproduces the Instruct weights bit for bit (−0, NaN payloads included)', async () => {
    const out = outDir();
    await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0, output: out });
    const ck = await openCheckpoint(out);
    for (const spec of specs) expect((await readTensorBytes(ck.tensors.get(spec.name)!)).equals(instruct.data.get(spec.name)!.bytes)).toBe(true);
  });

  test('λ=1 reproduces the Thinking weights bit for bit', async () => {
    const out = outDir();
    await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 1, output: out });
    const ck = await openCheckpoint(out);
    for (const spec of specs) expect((await readTensorBytes(ck.tensors.get(spec.name)!)).equals(thinking.data.get(spec.name)!.bytes)).toBe(true);
  });

  test('the result does not depend on thread count or block size', async () => {
    const a = outDir();
    const b = outDir();
    await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output: a, threads: 1, blockBytes: 4096 });
    await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output: b, threads: 3, blockBytes: 8 << 20, direct: false });
    for (const f of fs.readdirSync(a).filter((f) => f.endsWith('.safetensors'))) {
      expect(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f)))).toBe(true);
    }
  });
});

describe('selection', () => {
  const layerOf = (n: string) => Number(/^model\.layers\.(\d+)\./.exec(n)?.[1] ?? NaN);
  const cases: [string, object, (n: string) => boolean][] = [
    ['--layers 1-2', { layers: '1-2' }, (n) => layerOf(n) >= 1 && layerOf(n) <= 2],
    ['--layers 0,3', { layers: '0,3' }, (n) => layerOf(n) === 0 || layerOf(n) === 3],
    ['--modules mlp', { modules: 'mlp' }, (n) => n.includes('.mlp.')],
    ['--modules attn', { modules: 'attn' }, (n) => n.includes('.self_attn.')],
    ['--skip-modules attn', { skipModules: 'attn' }, (n) => !n.includes('.self_attn.')],
    ['--skip-modules mlp', { skipModules: 'mlp' }, (n) => !n.includes('.mlp.')],
    ['--modules norm,final_norm', { modules: 'norm,final_norm' }, (n) => n.endsWith('layernorm.weight') || n === 'model.norm.weight'],
    ['--modules embed', { modules: 'embed' }, (n) => n === 'model.embed_tokens.weight'],
    ['--layers 2-3 --modules mlp', { layers: '2-3', modules: 'mlp' }, (n) => layerOf(n) >= 2 && n.includes('.mlp.')],
  ];
  test.each(cases)('%s interpolates exactly the named tensors; the rest are Instruct bytes', async (_label, sel, expected) => {
    const out = outDir();
    const summary = await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output: out, ...sel });
    expect(summary.selectedTensors).toBe(specs.filter((s) => expected(s.name)).length);
    await expectMerged(out, 0.8, expected);
  });

  test('--layers beyond the model is a usage error', async () => {
    await expect(interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output: outDir(), layers: '2-9' })).rejects.toMatchObject({
      code: 'Usage',
      exitCode: 2,
    });
  });

  test('a selection that matches no tensor is a usage error, not a silent copy of Instruct', async () => {
    const out = outDir();
    const run = interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output: out, skipModules: 'attn,mlp,norm,embed,head,final_norm' });
    await expect(run).rejects.toMatchObject({
      code: 'Usage',
      exitCode: 2,
      message: expect.stringMatching(/^the selection \(all layers, except modules .*\) matches none of the \d+ tensors/),
    });
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe("mi numerics (the paper's released script)", () => {
  test.each([0, 0.2, 0.5, 0.8, 1])('λ=%p: bf16 arithmetic rounded after each op, bit for bit', async (lambda) => {
    const out = outDir();
    await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda, output: out, numerics: 'mi' });
    await expectMerged(out, lambda, () => true, 'mi');
  });
});

describe('dtypes', () => {
  test('--dtype F32 writes f32 tensors rounded once, and config torch_dtype follows', async () => {
    const out = outDir();
    await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output: out, dtype: 'F32' });
    await expectMerged(out, 0.8, () => true, 'exact', 'F32');
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
  });

  test('mixed float inputs (F16 Instruct, F32 Thinking) interpolate into the Instruct dtype', async () => {
    const next = rng(seed + 1);
    const a = await writeModel(
      path.join(root, 'mixed-a'),
      specs,
      1,
      () => 'F16',
      (s) => randomTensor('F16', count(s), next),
      'a',
    );
    const b = await writeModel(
      path.join(root, 'mixed-b'),
      specs,
      2,
      () => 'F32',
      (s) => randomTensor('F32', count(s), next),
      'b',
    );
    const out = outDir();
    await interpolate({ instruct: a.dir, thinking: b.dir, lambda: 0.45, output: out });
    await expectMerged(out, 0.45, () => true, 'exact', 'F16', a, b);
  });
});

describe('non-float tensors', () => {
  test('I64, U8 (odd length) and BOOL tensors are copied from Instruct byte for byte while the floats interpolate', async () => {
    const next = rng(seed + 4);
    const extra: TensorSpec[] = [
      { name: 'model.layers.0.self_attn.rotary_emb.positions', shape: [5] },
      { name: 'model.layers.1.mlp.expert_map', shape: [7] },
      { name: 'model.layers.2.mlp.mask', shape: [3, 3] },
    ];
    const dtypeOf = (n: string): SafetensorsDtype =>
      n.endsWith('positions') ? 'I64' : n.endsWith('expert_map') ? 'U8' : n.endsWith('.mask') ? 'BOOL' : 'BF16';
    const bytesOf = (s: TensorSpec, d: SafetensorsDtype) =>
      d === 'BF16'
        ? randomTensor('BF16', count(s), next)
        : Buffer.from(Array.from({ length: count(s) * (d === 'I64' ? 8 : 1) }, () => Math.floor(next() * 256)));
    const all = [...specs, ...extra];
    const a = await writeModel(path.join(root, 'raw-a'), all, 2, dtypeOf, bytesOf, 'a');
    const b = await writeModel(path.join(root, 'raw-b'), all, 1, dtypeOf, bytesOf, 'b');
    const out = outDir();
    await interpolate({ instruct: a.dir, thinking: b.dir, lambda: 0.8, output: out });
    const ck = await openCheckpoint(out);
    for (const spec of all) {
      const A = a.data.get(spec.name)!;
      const want = A.dtype === 'BF16' ? referenceInterpolation(A.bytes, 'BF16', b.data.get(spec.name)!.bytes, 'BF16', 0.8, 'exact', 'BF16') : A.bytes;
      expect([spec.name, (await readTensorBytes(ck.tensors.get(spec.name)!)).equals(want)]).toEqual([spec.name, true]);
    }
  });

  test('F64 and FP8 tensors: copied where both models hold the same bytes or the selection leaves them out, else refused (a copy of Instruct would pass for λ = 1)', async () => {
    const extra: TensorSpec[] = [
      { name: 'model.layers.1.mlp.up_proj.weight_scale', shape: [6] },
      { name: 'model.layers.3.mlp.down_proj.scale64', shape: [3] },
    ];
    const dtypeOf = (n: string): SafetensorsDtype => (n.endsWith('weight_scale') ? 'F8_E4M3' : n.endsWith('scale64') ? 'F64' : 'BF16');
    const model = (name: string, salt: number) => {
      const next = rng(seed + 5);
      return writeModel(
        path.join(root, name),
        [...specs, ...extra],
        1,
        dtypeOf,
        (s, d) =>
          d === 'BF16'
            ? randomTensor('BF16', count(s), next)
            : Buffer.from(Array.from({ length: count(s) * (d === 'F64' ? 8 : 1) }, (_, i) => (i * 29 + salt) & 0xff)),
        name,
      );
    };
    const [a, same, other] = await Promise.all([model('odd-a', 0), model('odd-same', 0), model('odd-other', 1)]);
    const out = outDir();
    await interpolate({ instruct: a.dir, thinking: same.dir, lambda: 1, output: out });
    const ck = await openCheckpoint(out);
    for (const { name } of extra) expect((await readTensorBytes(ck.tensors.get(name)!)).equals(a.data.get(name)!.bytes)).toBe(true);
    const refused = outDir();
    await expect(interpolate({ instruct: a.dir, thinking: other.dir, lambda: 1, output: refused })).rejects.toMatchObject({
      code: 'UnsupportedDtype',
      message: expect.stringMatching(
        /^tensor model\.layers\.1\.mlp\.up_proj\.weight_scale is F8_E4M3 in .*odd-a and differs between the models: .*--skip-modules/,
      ),
    });
    expect(fs.existsSync(refused)).toBe(false);
    // Left out by the selection: the Instruct bytes, as every unselected tensor.
    const kept = outDir();
    await interpolate({ instruct: a.dir, thinking: other.dir, lambda: 1, output: kept, layers: '0' });
    expect((await readTensorBytes((await openCheckpoint(kept)).tensors.get(extra[1].name)!)).equals(a.data.get(extra[1].name)!.bytes)).toBe(true);
  });
});

describe('output layout', () => {
  test('Instruct shard names and layout, index rebuilt from what was written, Thinking sidecars, model card', async () => {
    const out = outDir();
    await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output: out });
    const files = fs.readdirSync(out).sort();
    const instructShards = fs
      .readdirSync(instruct.dir)
      .filter((f) => f.endsWith('.safetensors'))
      .sort();
    expect(files.filter((f) => f.endsWith('.safetensors'))).toEqual(instructShards);
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    const instructIndex = JSON.parse(fs.readFileSync(path.join(instruct.dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.weight_map).toEqual(instructIndex.weight_map);
    let tensorBytes = 0;
    for (const shard of instructShards) {
      const h = await readSafetensorsHeader(path.join(out, shard));
      expect(h.metadata?.format).toBe('pt');
      expect(JSON.parse(h.metadata!.weightmix)).toMatchObject({ method: 'interpolate', lambda: 0.8, numerics: 'exact' });
      expect((8 + h.headerLength) % 8).toBe(0);
      tensorBytes += h.tensors.reduce((n, t) => n + t.byteLength, 0);
    }
    expect(index.metadata.total_size).toBe(tensorBytes);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).tag).toBe('thinking');
    expect(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8')).toContain('template of thinking');
    const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(card).toContain('λ = 0.8');
    expect(card).toContain(instruct.dir);
    expect(card).toContain(thinking.dir);
  });

  test('--files-from instruct copies the Instruct sidecars', async () => {
    const out = outDir();
    await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output: out, filesFrom: 'instruct' });
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).tag).toBe('instruct');
  });
});

describe('errors leave nothing behind', () => {
  test('tensor sets that differ are named, and nothing is written', async () => {
    const next = rng(seed + 2);
    const other = await writeModel(
      path.join(root, 'fewer'),
      specs.slice(0, -1),
      1,
      () => 'BF16',
      (s) => randomTensor('BF16', count(s), next),
      'x',
    );
    const parent = path.join(root, 'err1');
    fs.mkdirSync(parent);
    const err = await interpolate({ instruct: instruct.dir, thinking: other.dir, lambda: 0.5, output: path.join(parent, 'o') }).catch((e) => e);
    expect(err.code).toBe('ModelsDiffer');
    expect(err.message).toContain('model.norm.weight');
    expect(err.message).not.toContain('\n');
    expect(listTree(parent)).toEqual([]);
  });

  test('shapes that differ are refused', async () => {
    const next = rng(seed + 3);
    const reshaped = specs.map((s) => (s.name === 'model.norm.weight' ? { ...s, shape: [s.shape[0] * 2] } : s));
    const other = await writeModel(
      path.join(root, 'reshaped'),
      reshaped,
      1,
      () => 'BF16',
      (s) => randomTensor('BF16', count(s), next),
      'x',
    );
    await expect(interpolate({ instruct: instruct.dir, thinking: other.dir, lambda: 0.5, output: outDir() })).rejects.toMatchObject({ code: 'ShapeMismatch' });
  });

  test('an existing output is refused without --force, and kept intact', async () => {
    const out = outDir();
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'keep.txt'), 'old');
    await expect(interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.5, output: out })).rejects.toMatchObject({ code: 'OutputExists' });
    expect(listTree(out)).toEqual(['keep.txt']);
    expect(fs.readdirSync(root).filter((f) => f.includes('.weightmix'))).toEqual([]);
  });

  test('--force replaces an existing output only once the new one is complete', async () => {
    const out = outDir();
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'old.safetensors'), 'old'); // a model folder's: --force replaces no other (force-target.test.ts)
    // A failing run under --force leaves the old output as it was.
    const controller = new AbortController();
    let aborted = false;
    const failing = interpolate({
      instruct: instruct.dir,
      thinking: thinking.dir,
      lambda: 0.5,
      output: out,
      force: true,
      blockBytes: 4096,
      threads: 1,
      signal: controller.signal,
      onProgress: () => {
        if (!aborted) {
          aborted = true;
          expect(listTree(out)).toEqual(['old.safetensors']);
          controller.abort();
        }
      },
    });
    controller.abort();
    await expect(failing).rejects.toMatchObject({ code: 'Aborted' });
    expect(listTree(out)).toEqual(['old.safetensors']);
    await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.5, output: out, force: true });
    expect(fs.existsSync(path.join(out, 'old.safetensors'))).toBe(false);
    await expectMerged(out, 0.5, () => true);
    expect(fs.readdirSync(root).filter((f) => f.includes('.weightmix'))).toEqual([]);
  });

  test('an abort mid-merge leaves no output, no temporary folder and no lock', async () => {
    const parent = path.join(root, 'abort');
    fs.mkdirSync(parent);
    const controller = new AbortController();
    const run = interpolate({
      instruct: instruct.dir,
      thinking: thinking.dir,
      lambda: 0.5,
      output: path.join(parent, 'o'),
      threads: 1,
      blockBytes: 4096,
      signal: controller.signal,
      onProgress: () => controller.abort(),
    });
    setImmediate(() => controller.abort());
    await expect(run).rejects.toMatchObject({ code: 'Aborted' });
    expect(listTree(parent)).toEqual([]);
  });
});

describe('sweep', () => {
  test('each λ of a sweep is byte-identical to a single interpolate run, selection included', async () => {
    const dir = outDir();
    const lambdas = [0, 0.125, 0.5, 0.8, 1];
    const summary = await sweep({
      instruct: instruct.dir,
      thinking: thinking.dir,
      lambdas: lambdas.join(','),
      output: dir,
      layers: '1-3',
      skipModules: 'attn',
    });
    expect(fs.readdirSync(dir).sort()).toEqual(['lambda-0.00', 'lambda-0.125', 'lambda-0.50', 'lambda-0.80', 'lambda-1.00']);
    expect(summary.outputs).toHaveLength(5);
    for (const lambda of lambdas) {
      const single = outDir();
      await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda, output: single, layers: '1-3', skipModules: 'attn' });
      const swept = path.join(
        dir,
        fs.readdirSync(dir).find((d) => Number(d.slice('lambda-'.length)) === lambda)!,
      );
      for (const f of fs.readdirSync(single)) {
        if (f === 'README.md') continue;
        expect([f, fs.readFileSync(path.join(swept, f)).equals(fs.readFileSync(path.join(single, f)))]).toEqual([f, true]);
      }
    }
  });

  test('a sweep looks for leftovers beside its outputs once, not once per λ (1000 λ spent minutes there)', async () => {
    const out = outDir();
    const listed = jest.spyOn(fs.promises, 'readdir');
    await sweep({ instruct: instruct.dir, thinking: thinking.dir, lambdas: '0:1:0.1', output: out });
    expect(listed.mock.calls.filter(([at]) => at === out)).toHaveLength(1);
    listed.mockRestore();
  });

  test("a sweep's write blocks shrink with its outputs, as a batch's do (each output holds about threads + 2)", async () => {
    const run = jest.spyOn(executePlan, 'executeMergePlan');
    try {
      // 17 outputs × 4 blocks × 8 MiB is over the 512 MiB budget: 4 MiB blocks.
      await sweep({ instruct: instruct.dir, thinking: thinking.dir, lambdas: '0:1:0.0625', output: outDir(), threads: 2, blockBytes: 8 << 20 });
      expect(run.mock.calls.map((c) => c[1].blockBytes)).toEqual([4 << 20]);
    } finally {
      run.mockRestore();
    }
  });
});
