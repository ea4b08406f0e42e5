/**
 * della and della_linear as tensor-local jobs (native/local_job.h's resolveLocalDella): a tensor whose
 * sources fit `localStatistics.maxTensorBytes` is read once and its L1 factors resolved by the engine,
 * which must give the bytes of the streaming fallback (the `della_l1` pass, forced by a zero budget):
 * the factor's arithmetic ported from lib/recipes/della-rescale.ts bit for bit on random sums, raw
 * tensors of random values with special ones (F32, BF16, F16; rows longer than a block; 1 and 3
 * threads), and whole recipes over fixtures.
 */
import * as fs from 'node:fs';
import { localJobReads } from '../lib/engine/execute-plan';
import { loadNative, NativePlan, runPlan } from '../lib/engine/native';
import type { NativeDtype } from '../lib/engine/native-plan';
import { DellaRecipe, dellaRows, encodeDellaParams } from '../lib/engine/della-params';
import { encodeArceeFusionParams } from '../lib/engine/arcee-fusion-params';
import type { TensorRecipe } from '../lib/engine/plan';
import { setDellaScales } from '../lib/recipes/della-rescale';
import { l1Scale, localStatistics, maskKey } from '../lib/recipes/sparsify';
import { rng } from './helpers/models';
import { writeRaw } from './helpers/raw-values';
import { runRawJob, type RawJob } from './helpers/raw-job';
import { randomTensors } from './helpers/special-values';
import { expectLocalStreamedMixedAlike } from './helpers/local-vs-streamed';
import { defaultBytes, dir, setUpTensorLocalTests } from './helpers/tensor-local-setup';
import type { Dtype } from './reference/numerics';
import { makeNearModels } from './helpers/tiny-models';

setUpTensorLocalTests('weightmix-della-local-');

test("the engine's L1 factor is della-rescale.ts's Math.fround(l1Scale(before, after)), bit for bit on random sums", () => {
  const r = rng(17);
  const magnitude = () => (r() - 0.2) * 2 ** Math.floor(r() * 400 - 200);
  const edges = [0, -0, 1e-7, 1e-7 * (1 + 2 ** -52), 1e-7 * (1 - 2 ** -53), 5e-324, 1e300, 3.4028234663852886e38, Infinity, NaN];
  const pick = () => (r() < 0.15 ? edges[Math.floor(r() * edges.length)] : magnitude());
  const n = 20000;
  const before = new Float64Array(n);
  const after = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    before[i] = pick();
    // After ≤ before in the engine's sums; also ratios near 1, just above f32's largest and far past it.
    after[i] = r() < 0.3 ? before[i] * [1, 1 - 2 ** -30, 0.5, 2 ** -128, 2 ** -200][Math.floor(r() * 5)] : pick();
  }
  const addon = loadNative() as unknown as { runKernelForTest(op: 'l1Scale', args: { before: Float64Array; after: Float64Array }): Float32Array };
  const got = addon.runKernelForTest('l1Scale', { before, after });
  const want = Float32Array.from(before, (b, i) => Math.fround(l1Scale(b, after[i])));
  // Bit patterns, but any NaN as one (Inf / Inf's NaN may carry either sign; the engine's sums are finite anyway).
  const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length), (x, i) => (Number.isNaN(a[i]) ? -1 : x));
  expect(got.length).toBe(n);
  expect(bits(got)).toEqual(bits(want));
  expect(want.some((x) => x === Infinity) && want.some((x) => x === 1) && want.some((x) => x > 1 && x < 2)).toBe(true);
});

describe('raw tensors: local L1 factors against the della_l1 pass', () => {
  const NAME = 'model.layers.5.self_attn.o_proj.weight';

  /** The merged bytes of one della tensor, its factors resolved by `setDellaScales` within `maxTensorBytes`, one dest per output dtype. */
  async function merged(
    files: string[],
    dtypes: Dtype[],
    shape: number[],
    recipe: DellaRecipe,
    maxTensorBytes: number,
    threads: number,
    chunkedLocalBytes?: number,
    extraDests?: RawJob['extraDests'],
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    const della: DellaRecipe = { ...recipe, models: recipe.models.map((m) => ({ ...m })) };
    const recipes = new Map<string, TensorRecipe>([[NAME, { op: 'della', models: [0, 1, 2], w: [], dtype: 'BF16', della }]]);
    localStatistics.maxTensorBytes = maxTensorBytes;
    const run = (p: Pick<NativePlan, 'inputs' | 'jobs'>) => runPlan({ ...p, outputs: [], threads, blockBytes: 4096, direct: false });
    const source = (m: number) => ({ file: files[m], offset: 0, dtype: dtypes[m] as NativeDtype });
    await setDellaScales(recipes, [{ name: NAME, count: n, source }], run);
    const params = encodeDellaParams(della, (m) => m);
    const { outFiles, extraFiles } = await runRawJob(dir, { files, dtypes, n, op: 'della', params, threads, chunkedLocalBytes, extraDests });
    return { params, bytes: Buffer.concat(outFiles.map((f) => fs.readFileSync(f))), extra: Buffer.concat(extraFiles.map((f) => fs.readFileSync(f))) };
  }

  const SHAPES: [string, number[]][] = [
    ['rows longer than a block (3 x 1500)', [3, 1500]],
    ['a 3-D tensor (rows along dim 1, stride 5)', [4, 7, 5]],
    ['a 1-D tensor of 5003 (one row over several blocks)', [5003]],
    ['rows of one element', [9, 1]],
    ['600 rows of 8 (several chunks when read in chunks)', [600, 8]],
    ['300 rows of 12 (chunks of whole rows, not of 8 rows)', [300, 12]],
  ];
  describe.each([
    ['F32', 'F32'],
    ['BF16', 'BF16'],
    ['F16', 'F16'],
    ['BF16', 'F32'],
  ] as [Dtype, Dtype][])('base %s, models %s', (tBase, tModel) => {
    test.each(SHAPES)('%s: the same bytes on 1 and 3 threads', async (_what, shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const raw = randomTensors(n, 2, n + shape.length * 101, [1e-3, 1e-2, 0.5]);
      const files = [writeRaw(dir, raw.base, tBase).file, ...raw.models.map((m) => writeRaw(dir, m, tModel).file)];
      const dtypes = [tBase, tModel, tModel];
      for (const [consensus, normalize, lambda, densities] of [
        [true, true, 0.9, [0.5, 0.3]],
        [false, false, 1, [0.7, 1]], // a model that does not thin keeps its factor 1 and no statistic
      ] as [boolean, boolean, number, number[]][]) {
        const recipe: DellaRecipe = {
          base: 0,
          consensus,
          normalize,
          lambda,
          rows: dellaRows(shape),
          models: [1, 2].map((m, k) => ({ model: m, weight: [0.7, -0.4][k], density: densities[k], epsilon: 0.2, seedKey: maskKey(5, NAME, m), scale: 1 })),
        };
        const streamed = await merged(files, dtypes, shape, recipe, 0, 3);
        const thinned = densities.filter((d) => d < 1).length;
        expect(streamed.params.length).toBe(7 + 7 * 2); // resolved: no open tail
        for (const threads of [1, 3]) {
          const local = await merged(files, dtypes, shape, recipe, defaultBytes, threads);
          expect(local.params.length).toBe(7 + 8 * 2); // the open tail: the engine resolves the factors
          expect(local.params.slice(7 + 7 * 2).filter((x) => x === 1).length).toBe(thinned);
          expect(local.bytes.equals(streamed.bytes)).toBe(true);
        }
        // The local job read in chunks of whole blocks of rows (native/executor.cc's readsInChunks) instead of held whole.
        const chunked = await merged(files, dtypes, shape, recipe, defaultBytes, 2, 0);
        expect(chunked.bytes.equals(streamed.bytes)).toBe(true);
      }
    });
  });

  // A batch of recipes fuses one tensor's dests into one job: a dest of another op holds no rows, and the della dest's
  // chunks must still be whole blocks of its rows (dellaChunkUnit), held whole or read in chunks.
  test.each([
    ['rows of 1500 over two 64 Ki chunks', [50, 1500]],
    ['rows of 12, chunks not a multiple of 8 rows', [300, 12]],
  ])('fused with a linear dest, %s: the bytes of the streamed della', async (_what, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const raw = randomTensors(n, 2, n + 7, [1e-3, 1e-2, 0.5]);
    const files = [writeRaw(dir, raw.base, 'BF16').file, ...raw.models.map((m) => writeRaw(dir, m, 'BF16').file)];
    const dtypes: Dtype[] = ['BF16', 'BF16', 'BF16'];
    const recipe: DellaRecipe = {
      base: 0,
      consensus: true,
      normalize: true,
      lambda: 1,
      rows: dellaRows(shape),
      models: [1, 2].map((m, k) => ({ model: m, weight: [0.6, 0.4][k], density: 0.5, epsilon: 0.1, seedKey: maskKey(3, NAME, m), scale: 1 })),
    };
    const linear: RawJob['extraDests'] = [{ op: 'linear', w: [0.25, 0.5, 0.25] }];
    const streamed = await merged(files, dtypes, shape, recipe, 0, 2, undefined, linear);
    for (const chunkedLocalBytes of [undefined, 0]) {
      const fused = await merged(files, dtypes, shape, recipe, defaultBytes, 2, chunkedLocalBytes, linear);
      expect(fused.params.length).toBe(7 + 8 * 2); // local: the engine resolves the factors
      expect(fused.bytes.equals(streamed.bytes)).toBe(true);
      expect(fused.extra.equals(streamed.extra)).toBe(true);
    }
  });

  // arcee_fusion works within rows of the last dimension, della within blocks along dim 1: on a 3-D tensor a fused job's
  // pieces must hold whole ones of both (native/executor.cc's rowBlock: their lcm), whichever dest comes first.
  test('fused after an arcee_fusion dest, a 3-D tensor: each dest writes what it writes alone', async () => {
    const shape = [3, 40, 24];
    const n = shape.reduce((a, b) => a * b, 1);
    const raw = randomTensors(n, 2, 91, [1e-3, 1e-2, 0.5]);
    const files = [writeRaw(dir, raw.base, 'BF16').file, ...raw.models.map((m) => writeRaw(dir, m, 'BF16').file)];
    const dtypes: Dtype[] = ['BF16', 'BF16', 'BF16'];
    const della = encodeDellaParams(
      {
        base: 0,
        consensus: true,
        normalize: true,
        lambda: 1,
        rows: dellaRows(shape),
        models: [1, 2].map((m, k) => ({ model: m, weight: [0.6, 0.4][k], density: 0.5, epsilon: 0.1, seedKey: maskKey(3, NAME, m), scale: 1.25 })),
      },
      (m) => m,
    );
    const arcee = encodeArceeFusionParams({ base: 0, model: 1, rowLength: shape[2], threshold: 1e-4 }, (m) => m);
    const job = { files, dtypes, n, threads: 2 };
    const fused = await runRawJob(dir, { ...job, op: 'arcee_fusion', params: arcee, extraDests: [{ op: 'della', w: [], params: della }] });
    const arceeAlone = await runRawJob(dir, { ...job, op: 'arcee_fusion', params: arcee });
    const dellaAlone = await runRawJob(dir, { ...job, op: 'della', params: della });
    const bytes = (files: string[]) => Buffer.concat(files.map((f) => fs.readFileSync(f)));
    expect(bytes(fused.outFiles).equals(bytes(arceeAlone.outFiles))).toBe(true);
    expect(bytes(fused.extraFiles).equals(fs.readFileSync(dellaAlone.outFiles[0]))).toBe(true); // the F32 output
  });
});

describe('merge: della and della_linear, tensor-local and streamed, write the same model', () => {
  let A: string;
  let B: string;
  let N: string;

  beforeAll(async () => {
    ({ A, B, N } = await makeNearModels(dir, 4, { pair: [2, 1], near: [1, 2] }));
  }, 60000);

  test.each([
    ['della', 'bfloat16'],
    ['della_linear', 'float32'],
  ])('%s (out_dtype %s)', async (method, outDtype) => {
    const doc = {
      merge_method: method,
      base_model: N,
      random_seed: 3,
      out_dtype: outDtype,
      models: [
        { model: A, parameters: { weight: 0.6, density: 0.5, epsilon: 0.1 } },
        { model: B, parameters: { weight: 0.5, density: 0.3, epsilon: 0.2 } },
      ],
    };
    await expectLocalStreamedMixedAlike(dir, doc, { local: 3, streamed: 2, mixed: 1 });
    // With every local job read in chunks: the same files again.
    localJobReads.chunkedLocalBytes = 0;
    try {
      await expectLocalStreamedMixedAlike(dir, doc, { local: 3, streamed: 2, mixed: 1 });
    } finally {
      localJobReads.chunkedLocalBytes = undefined;
    }
  });
});
