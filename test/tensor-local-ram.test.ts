/**
 * ramplus_tl as a tensor-local job (native/local_ram.h): a tensor whose sources fit
 * `localStatistics.maxTensorBytes` leaves its λ open and the engine counts the tensor it holds in memory,
 * which must give the bytes of the streaming fallback (the `ram_counts` pass, forced by a zero budget):
 * the λ formula ported from methods/ram.ts bit for bit on random counts with edge values, raw tensors
 * of random values with special ones (F32, BF16, F16, mixed; 1-3 models; 1 and 3 threads), and whole recipes.
 */
import * as fs from 'node:fs';
import { loadNative, NativePlan, runPlan } from '../lib/engine/native';
import type { NativeDtype } from '../lib/engine/native-plan';
import { encodeElementwiseParams } from '../lib/engine/elementwise-params';
import type { TensorRecipe } from '../lib/engine/plan';
import { ramPlusLambda } from '../lib/recipes/methods/ram';
import { setRamPlusLambdas } from '../lib/recipes/ram-counts';
import { localStatistics } from '../lib/recipes/sparsify';
import { rng } from './helpers/models';
import { writeRaw } from './helpers/raw-values';
import { runRawJob } from './helpers/raw-job';
import { randomTensors } from './helpers/special-values';
import { expectLocalStreamedMixedAlike } from './helpers/local-vs-streamed';
import { defaultBytes, dir, setUpTensorLocalTests } from './helpers/tensor-local-setup';
import type { Dtype } from './reference/numerics';
import { makeNearModels } from './helpers/tiny-models';

setUpTensorLocalTests('weightmix-ram-local-');

test("the engine's λ is methods/ram.ts's ramPlusLambda, bit for bit on random counts and edge parameters", () => {
  const r = rng(23);
  const n = 20000;
  const count = () => (r() < 0.2 ? [0, 1, 2, 2 ** 53 - 1][Math.floor(r() * 4)] : Math.floor(r() * 2 ** Math.floor(r() * 40)));
  const param = (edges: number[]) => (r() < 0.3 ? edges[Math.floor(r() * edges.length)] : (r() - 0.2) * 2 ** Math.floor(r() * 20 - 10));
  const arrays = { shared: new Float64Array(n), unique: new Float64Array(n), r: new Float64Array(n), alpha: new Float64Array(n), epsilon: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    arrays.shared[i] = count();
    arrays.unique[i] = count();
    arrays.r[i] = param([0, -0, 0.5, 1e300, -2]);
    arrays.alpha[i] = param([0, -0, 0.2, 1e-300, -1]);
    arrays.epsilon[i] = param([0, -0, 1e-5, 3, -1, 5e-324]);
  }
  const addon = loadNative() as unknown as { runKernelForTest(op: 'ramPlusLambda', args: typeof arrays): Float64Array };
  const got = addon.runKernelForTest('ramPlusLambda', arrays);
  const want = Float64Array.from(arrays.shared, (s, i) => ramPlusLambda(s, arrays.unique[i], arrays.r[i], arrays.alpha[i], arrays.epsilon[i]));
  // Bit patterns (the sign of a zero λ counts), any NaN as one.
  const bits = (a: Float64Array) => Array.from(new BigUint64Array(a.buffer, a.byteOffset, a.length), (x, i) => (Number.isNaN(a[i]) ? -1n : x));
  expect(bits(got)).toEqual(bits(want));
  // The cases that tell Math.max/min from std::max/min were drawn: NaN (0 / 0), a clamp at 0 and at alpha, -0.
  expect(want.some(Number.isNaN) && want.some((x) => x === 1) && want.some((x, i) => x === 1 + arrays.r[i] * arrays.alpha[i] && x !== 1)).toBe(true);
  expect(want.some((x) => Object.is(x, -0) || x === 0)).toBe(true);
});

describe('raw tensors: local λ against the ram_counts pass', () => {
  const NAME = 'model.layers.2.mlp.down_proj.weight';

  /** The merged bytes of one ramplus_tl tensor over `files` (base first), its λ from `setRamPlusLambdas` within `maxTensorBytes`. */
  async function merged(files: string[], dtypes: Dtype[], n: number, maxTensorBytes: number, threads: number) {
    const models = files.map((_, k) => k);
    const recipe: TensorRecipe = { op: 'ram', models, w: [0.01, ...models.slice(1).map(() => 1)], dtype: 'BF16' };
    localStatistics.maxTensorBytes = maxTensorBytes;
    const run = (p: Pick<NativePlan, 'inputs' | 'jobs'>) => runPlan({ ...p, outputs: [], threads, blockBytes: 4096, direct: false });
    const source = (m: number) => ({ file: files[m], offset: 0, dtype: dtypes[m] as NativeDtype });
    await setRamPlusLambdas(new Map([[NAME, recipe]]), [{ name: NAME, count: n, models, epsilon: 0.01, r: 0.5, alpha: 0.4, source }], run);
    const params = encodeElementwiseParams('ram', models, recipe.w, undefined, recipe.ramPlus);
    const { outFiles } = await runRawJob(dir, { files, dtypes, n, op: 'ram', params, threads });
    return { params, bytes: Buffer.concat(outFiles.map((f) => fs.readFileSync(f))) };
  }

  test.each([
    ['F32', 'F32', 1],
    ['BF16', 'BF16', 2],
    ['F16', 'F16', 3],
    ['BF16', 'F32', 2],
  ] as [Dtype, Dtype, number][])('base %s, models %s, %d model(s): the same bytes on 1 and 3 threads', async (tBase, tModel, m) => {
    const n = 7001; // over several 4 KiB blocks
    const raw = randomTensors(n, m, 31 + m, [1e-3, 1e-2, 0.5]);
    const files = [writeRaw(dir, raw.base, tBase).file, ...raw.models.map((x) => writeRaw(dir, x, tModel).file)];
    const dtypes = [tBase, ...raw.models.map(() => tModel)];
    const streamed = await merged(files, dtypes, n, 0, 3);
    expect(streamed.params.length % 2).toBe(0); // counted: no open tail
    const lambdas = streamed.params.slice(3).filter((_, i) => i % 2 === 0);
    // One model shares nothing (λ = 1); with more, λ ≠ 1 somewhere: the counts matter.
    expect(lambdas.some((l) => l !== 1)).toBe(m > 1);
    for (const threads of [1, 3]) {
      const local = await merged(files, dtypes, n, defaultBytes, threads);
      expect(local.params.length).toBe(streamed.params.length + 3); // the open tail [r, alpha, epsilon]
      expect(local.bytes.equals(streamed.bytes)).toBe(true);
    }
  });
});

describe('merge: ramplus_tl, tensor-local and streamed, writes the same model', () => {
  let A: string;
  let B: string;
  let N: string;

  beforeAll(async () => {
    ({ A, B, N } = await makeNearModels(dir, 6, { pair: [2, 1], near: [1, 2] }));
  }, 60000);

  test.each([['bfloat16'], ['float32']])('out_dtype %s', async (outDtype) => {
    const doc = {
      merge_method: 'ramplus_tl',
      base_model: N,
      out_dtype: outDtype,
      parameters: { epsilon: 0.001, r: 0.5, alpha: 0.3 },
      models: [{ model: A }, { model: B }],
    };
    await expectLocalStreamedMixedAlike(dir, doc, { local: 3, streamed: 2, mixed: 1 });
  });
});
