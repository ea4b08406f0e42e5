/**
 * `--device`: merges computed on the GPU must be the CPU's bytes, for every op the CUDA path runs
 * (lerp in both numerics, dtype conversion, linear, task arithmetic, slerp/model_stock weights, TIES,
 * DARE and breadcrumbs masks) on random models salted with ±0, subnormals, ±Inf and NaN payloads,
 * with small blocks so that large tensors go through in many pieces. Without a usable GPU the device
 * cases are registered as skipped with the reason in their titles; the CPU-side behaviour of
 * `--device` (errors, the auto fallback, `info --json`) is tested everywhere.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cudaUnavailableReason, resolveDevice } from '../lib/engine/device';
import { interpolate, runInterpolation } from '../lib/interpolation/interpolate';
import { merge } from '../lib/recipes/merge-recipe';
import { mergeBatch } from '../lib/recipes/batch';
import { loadNative, NativeInfo } from '../lib/engine/native';
import { parseRecipe } from '../lib/recipes/recipe';
import { SafetensorsDtype } from '../lib/format/safetensors';
import { ensureCliBuilt, expectOneLineError, leftoversBeside, runCli } from './helpers/cli';
import { qwen3Names, randomTensor, rng, TensorSpec, writeModel } from './helpers/models';
import { testIf } from './helpers/skip';
import { dir, useTempDir } from './helpers/temp-dir';
import { slerpSliceRecipe } from './helpers/slerp-recipe';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log('seed', seed);

const info = loadNative().info();
const unusable = cudaUnavailableReason(info);
/** Cases that need a usable GPU, and cases about its absence: each skipped, with the reason in its title, where it cannot run. */
const withGpu = testIf(unusable === undefined, unusable ?? '');
const withoutGpu = testIf(unusable !== undefined, 'a GPU is usable here');

let A: string;
let B: string;
let N: string;
let counter = 0;

// Mixed dtypes per tensor (the same in every model, as numerics 'mi' needs), one tensor of 300,000
// elements (with 64 KiB blocks it is cut into many pieces over several tasks), and tensors of odd
// element counts, after which a 16-bit tensor leaves the next one 2-byte aligned in a read buffer:
// the device path must still hand every kernel an aligned piece (a GPU faults on misaligned loads).
const ODD: TensorSpec[] = [[7], [3, 5], [1], [9, 11], [13]].map((shape, i) => ({ name: `model.layers.${i % 3}.odd_${i}.weight`, shape }));
const SPECS: TensorSpec[] = [...qwen3Names(3, 32, 48), ...ODD, { name: 'lm_head.weight', shape: [600, 500] }];
const DTYPES: SafetensorsDtype[] = ['BF16', 'F16', 'F32'];
const dtypeOf = (name: string): SafetensorsDtype => DTYPES[[...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7) % 3];
const count = (spec: TensorSpec) => spec.shape.reduce((a, b) => a * b, 1);

useTempDir('weightmix-device-');

beforeAll(async () => {
  const next = rng(seed);
  const base = new Map<string, Buffer>();
  const a = await writeModel(
    path.join(dir, 'A'),
    SPECS,
    2,
    dtypeOf,
    (s, t) => {
      const bytes = randomTensor(t as 'BF16', count(s), next);
      base.set(s.name, bytes);
      return bytes;
    },
    'A',
  );
  const near = (tag: string) => writeModel(path.join(dir, tag), SPECS, 3, dtypeOf, (s, t) => randomTensor(t as 'BF16', count(s), next, base.get(s.name)), tag);
  const [b, n] = await Promise.all([near('B'), near('N')]);
  [A, B, N] = [a.dir, b.dir, n.dir];
}, 120_000);

/** Every output file that holds tensors, by name: the shards and the index. */
function tensorFiles(out: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const f of fs.readdirSync(out).sort()) if (f.endsWith('.safetensors') || f.endsWith('.index.json')) files.set(f, fs.readFileSync(path.join(out, f)));
  return files;
}

function expectSameBytes(cpu: string, cuda: string): void {
  const want = tensorFiles(cpu);
  const got = tensorFiles(cuda);
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [f, bytes] of want) {
    const other = got.get(f)!;
    if (!bytes.equals(other)) {
      let i = 0;
      while (i < bytes.length && bytes[i] === other[i]) i++;
      throw new Error(`${f} differs at byte ${i} of ${bytes.length} (seed ${seed})`);
    }
  }
}

type Engine = { device: 'cpu' | 'cuda'; threads: number; blockBytes: number };
interface Case {
  name: string;
  run: (out: string, engine: Engine) => Promise<unknown>;
}

const lerp =
  (lambda: number, extra: Record<string, unknown> = {}) =>
  (out: string, e: Engine) =>
    interpolate({ instruct: A, thinking: B, lambda, output: out, ...e, ...extra });
// Recipes are built when a case runs: the model folders exist only after beforeAll.
const recipe = (doc: () => Record<string, unknown>) => (out: string, e: Engine) => merge(parseRecipe(doc()), { output: out, ...e });
const models = (ws: number[], extra: Record<string, unknown> = {}) => [A, B].map((model, k) => ({ model, parameters: { weight: ws[k], ...extra } }));

const CASES: Case[] = [
  { name: 'lerp (exact) λ = 0.3', run: lerp(0.3) },
  { name: 'lerp (exact) λ = 0.8 into F16 (mixed input dtypes converted)', run: lerp(0.8, { dtype: 'F16' }) },
  { name: 'lerp (exact) λ = 1.3, extrapolation', run: lerp(1.3) },
  { name: "lerp (mi) λ = 0.45, the paper's bf16 script", run: lerp(0.45, { numerics: 'mi' }) },
  { name: 'convert: λ = 0 into F32 (copies with a dtype conversion)', run: lerp(0, { dtype: 'F32' }) },
  { name: 'layer selection: unselected tensors byte-copied, selected ones lerped', run: lerp(0.6, { layers: '1-2', dtype: 'BF16' }) },
  {
    name: 'sweep: one pass, three λ',
    run: (out, e) =>
      runInterpolation(
        { instruct: A, thinking: B, ...e },
        [0.2, 0.5, 0.9].map((lambda, k) => ({ lambda, dir: path.join(out, `l${k}`) })),
      ),
  },
  { name: 'linear of three models', run: recipe(() => ({ merge_method: 'linear', models: [...models([1, 3]), { model: N, parameters: { weight: 1 } }] })) },
  {
    name: 'linear into float32 without normalize',
    run: recipe(() => ({ merge_method: 'linear', out_dtype: 'float32', parameters: { normalize: false }, models: models([0.25, 0.5]) })),
  },
  { name: 'task arithmetic', run: recipe(() => ({ merge_method: 'task_arithmetic', base_model: N, models: models([0.7, 0.7]) })) },
  {
    name: 'slerp',
    run: recipe(() => slerpSliceRecipe(A, B, 3, 0.4)),
  },
  {
    name: 'model_stock',
    // Two models' bf16 task vectors of a norm (or a 1-element tensor) are exactly opposite in about half the seeds: the base is kept there.
    run: recipe(() => ({ merge_method: 'model_stock', base_model: N, models: [{ model: A }, { model: B }] })),
  },
  { name: 'ties', run: recipe(() => ({ merge_method: 'ties', base_model: N, models: models([0.5, 0.5], { density: 0.3 }), dtype: 'bfloat16' })) },
  {
    name: 'ties, consensus count, lambda 0.8',
    run: recipe(() => ({
      merge_method: 'ties',
      base_model: N,
      parameters: { normalize: false, lambda: 0.8, consensus_method: 'count' },
      models: models([0.6, 1], { density: 0.5 }),
    })),
  },
  {
    name: 'dare_ties (random masks)',
    run: recipe(() => ({ merge_method: 'dare_ties', base_model: N, random_seed: 2510, models: models([0.5, 0.5], { density: 0.5 }) })),
  },
  {
    name: 'dare_linear, rescale inverse',
    run: recipe(() => ({
      merge_method: 'dare_linear',
      base_model: N,
      random_seed: 7,
      parameters: { rescale: 'inverse' },
      models: models([1, 0.5], { density: 0.4 }),
    })),
  },
  {
    name: 'breadcrumbs_ties',
    run: recipe(() => ({ merge_method: 'breadcrumbs_ties', base_model: N, models: models([0.6, 0.6], { density: 0.4, gamma: 0.05 }) })),
  },
  // CPU-only ops: a cuda plan routes these dests to the CPU share of each task.
  {
    name: 'nearswap (CPU kernel)',
    run: recipe(() => ({ merge_method: 'nearswap', base_model: N, parameters: { t: 0.01 }, models: [{ model: A }, { model: N }] })),
  },
  {
    name: 'ramplus_tl (CPU kernel, counting pass)',
    run: recipe(() => ({ merge_method: 'ramplus_tl', base_model: N, parameters: { epsilon: 0.01 }, models: [{ model: A }, { model: B }, { model: N }] })),
  },
  {
    name: 'nuslerp nuslerp_flatten: false (CPU kernel, row moments)',
    run: recipe(() => ({ merge_method: 'nuslerp', parameters: { nuslerp_flatten: false }, models: models([1, 3]) })),
  },
  {
    name: 'della (CPU kernel, tensor-local L1 factors, pieces of whole rows)',
    run: recipe(() => ({ merge_method: 'della', base_model: N, random_seed: 3, models: models([0.6, 0.4], { density: 0.5, epsilon: 0.1 }) })),
  },
  {
    name: 'sce (CPU kernel, variance selection and sums of squares)',
    run: recipe(() => ({ merge_method: 'sce', base_model: N, parameters: { select_topk: 0.5 }, models: [{ model: A }, { model: B }, { model: N }] })),
  },
  {
    name: 'arcee_fusion (CPU kernel, quantile passes, pieces of whole rows)',
    run: recipe(() => ({ merge_method: 'arcee_fusion', base_model: N, models: [{ model: A }, { model: N }] })),
  },
  {
    // One write pass whose fused jobs hold GPU dests (ties, linear) beside CPU-only ones (della, arcee_fusion); outputs l0 … l3.
    name: 'batch: ties, linear, della and arcee_fusion fused over shared models',
    run: (out, e) =>
      mergeBatch(
        [
          { merge_method: 'ties', base_model: N, models: models([0.6, 0.6], { density: 0.4 }) },
          { merge_method: 'linear', models: models([1, 3]) },
          { merge_method: 'della', base_model: N, random_seed: 3, models: models([0.6, 0.4], { density: 0.5, epsilon: 0.1 }) },
          { merge_method: 'arcee_fusion', base_model: N, models: [{ model: A }, { model: N }] },
        ].map((recipe, k) => ({ name: `l${k}`, recipe })),
        { output: out, ...e },
      ),
  },
];

describe("cuda merges are the CPU's bytes", () => {
  for (const c of CASES) {
    withGpu(
      `cuda: ${c.name}`,
      async () => {
        const cpu = path.join(dir, `cpu-${counter}`);
        const cuda = path.join(dir, `cuda-${counter++}`);
        await c.run(cpu, { device: 'cpu', threads: 2, blockBytes: 65536 });
        await c.run(cuda, { device: 'cuda', threads: 3, blockBytes: 65536 });
        // A sweep's or a batch's outputs: l0, l1, …
        const sweep = fs.readdirSync(cpu).filter((f) => /^l\d$/.test(f));
        if (sweep.length > 0) for (const s of sweep) expectSameBytes(path.join(cpu, s), path.join(cuda, s));
        else expectSameBytes(cpu, cuda);
      },
      120_000,
    );
  }
});

describe('--device on any machine', () => {
  const fake = (over: Partial<NativeInfo>): NativeInfo => ({
    simd: 'scalar',
    build: { system: 'cmake-js', compiler: 'test', date: '2026-12-02', napiVersion: 8 },
    hardwareThreads: 1,
    cudaCompiled: true,
    ...over,
  });

  test('auto takes a usable GPU, cpu never does', () => {
    const gpu = fake({ cudaDevices: [{ name: 'H100', memoryBytes: 8e10, computeCapability: '9.0' }] });
    expect(resolveDevice('auto', gpu)).toEqual({ device: 'cuda' });
    expect(resolveDevice('cuda', gpu)).toEqual({ device: 'cuda' });
    expect(resolveDevice('cpu', gpu)).toEqual({ device: 'cpu' });
  });

  test('auto without a usable GPU takes the CPU and names the reason, whatever the reason; --device cpu gives none', () => {
    for (const [kind, reason] of [
      ['no-driver', 'no NVIDIA driver (libcuda.so.1 not found)'],
      ['no-device', 'no CUDA device'],
      ['out-of-memory', 'out of memory on GPU H100 (12 MiB free)'],
      ['unsupported', 'GPU T4 (compute capability 7.5) has no kernels in this build'],
    ] as const) {
      const info = fake({ cudaUnavailable: reason, cudaUnavailableKind: kind });
      expect(resolveDevice('auto', info)).toEqual({ device: 'cpu', cpuBecause: `no usable GPU: ${reason}` });
      expect(resolveDevice('cpu', info)).toEqual({ device: 'cpu' });
    }
    expect(resolveDevice('auto', fake({ cudaCompiled: false, cudaUnavailableKind: 'not-compiled' }))).toEqual({
      device: 'cpu',
      cpuBecause: 'no usable GPU: this build has no CUDA kernels (built without nvcc)',
    });
  });

  test('the reason is said once, in the summary line, so that an error stays one line', async () => {
    const out = path.join(dir, `auto-cli-${++counter}`);
    const done = await runCli(['interpolate', '--instruct', A, '--thinking', B, '--lambda', '0.5', '-o', out]);
    expect(done.status).toBe(0);
    expect(done.stderr).toBe('');
    const where = unusable === undefined ? '; on the GPU' : `; on the CPU (no usable GPU: ${unusable})`;
    expect(done.stdout.trim().endsWith(where)).toBe(true);
    const cpu = await runCli(['interpolate', '--instruct', A, '--thinking', B, '--lambda', '0.5', '-o', `${out}-cpu`, '--device', 'cpu']);
    expect(cpu.stdout).not.toContain('GPU');
    const failed = await runCli(['interpolate', '--instruct', A, '--thinking', path.join(dir, 'nowhere'), '--lambda', '0.5', '-o', `${out}-bad`]);
    expectOneLineError(failed);
  }, 60_000);

  test('cuda without a usable GPU is an error naming the reason', () => {
    expect(() => resolveDevice('cuda', fake({ cudaUnavailable: 'no CUDA device', cudaUnavailableKind: 'no-device' }))).toThrow(
      '--device cuda: no usable GPU: no CUDA device',
    );
  });

  test('the API validates the option up front, naming it as the API does', async () => {
    await expect(interpolate({ instruct: A, thinking: B, lambda: 0.5, output: path.join(dir, 'bad'), device: 'gpu' as 'cuda' })).rejects.toThrow(
      /^device must be one of cpu, cuda, auto, got "gpu"$/,
    );
    if (unusable !== undefined) {
      await expect(interpolate({ instruct: A, thinking: B, lambda: 0.5, output: path.join(dir, 'bad'), device: 'cuda' })).rejects.toMatchObject({
        code: 'CudaUnavailable',
        message: `device cuda: no usable GPU: ${unusable}`,
      });
    }
  });

  test("auto merges here give the CPU's bytes", async () => {
    const cpu = path.join(dir, 'auto-cpu');
    const auto = path.join(dir, 'auto-auto');
    const byCpu = await interpolate({ instruct: A, thinking: B, lambda: 0.7, output: cpu, device: 'cpu', blockBytes: 65536 });
    const byAuto = await interpolate({ instruct: A, thinking: B, lambda: 0.7, output: auto, blockBytes: 65536 });
    expectSameBytes(cpu, auto);
    expect([byCpu.device, byCpu.cpuBecause]).toEqual(['cpu', undefined]);
    expect([byAuto.device, byAuto.cpuBecause]).toEqual(unusable === undefined ? ['cuda', undefined] : ['cpu', `no usable GPU: ${unusable}`]);
  }, 60_000);

  test('info --json reports the SIMD path, whether CUDA is compiled, and the GPU or why there is none', async () => {
    ensureCliBuilt();
    const r = await runCli(['info', '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(typeof report.simd).toBe('string');
    expect(typeof report.cudaCompiled).toBe('boolean');
    if (unusable === undefined) {
      expect(report.cudaDevices[0]).toEqual({
        name: expect.any(String),
        memoryBytes: expect.any(Number),
        computeCapability: expect.stringMatching(/^\d+\.\d+$/),
      });
    } else {
      expect(report.cudaUnavailable).toBe(unusable);
      expect(report.cudaDevices).toBeUndefined();
    }
  });

  withoutGpu('--device cuda without a usable GPU exits 1 with one line naming the reason', async () => {
    ensureCliBuilt();
    const out = path.join(dir, 'cli-cuda', 'out');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const r = await runCli(['interpolate', '--instruct', A, '--thinking', B, '--lambda', '0.5', '-o', out, '--device', 'cuda']);
    const line = expectOneLineError(r, 1);
    expect(line).toBe(`weightmix: error: --device cuda: no usable GPU: ${unusable}`);
    expect(leftoversBeside(out)).toEqual([]);
  });

  test('--device with an unknown value is a usage error (exit 2)', async () => {
    ensureCliBuilt();
    const r = await runCli(['interpolate', '--instruct', A, '--thinking', B, '--lambda', '0.5', '-o', path.join(dir, 'x'), '--device', 'tpu']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--device/);
  });

  withoutGpu('a native plan asking for cuda without a usable GPU is refused before any output exists', async () => {
    const out = path.join(dir, 'native-cuda.bin');
    const { runPlan } = await import('../lib/engine/native');
    await expect(
      runPlan({
        inputs: [],
        outputs: [{ path: out, size: 4, head: Buffer.from('abcd') }],
        jobs: [],
        threads: 1,
        blockBytes: 4096,
        direct: false,
        device: 'cuda',
      }),
    ).rejects.toMatchObject({
      code: 'CudaUnavailable',
    });
    expect(fs.existsSync(out)).toBe(false);
  });
});
