/**
 * nearswap, ram and ramplus_tl: the engine's `nearswap` and `ram` ops and `ram_counts` statistic on raw
 * files of random values with special ones (NaN, ±Inf, ±0, subnormals, the largest finite, differences
 * at epsilon and at t), bit for bit against the f64 oracles of test/reference/elementwise.ts rounded
 * once; then whole recipes over fixtures within one ulp.
 */
import { runPlan } from '../lib/engine/native';
import type { NativeDtype, NativeJob } from '../lib/engine/native-plan';
import { encodeElementwiseParams } from '../lib/engine/elementwise-params';
import { openCheckpoint } from '../lib/model/checkpoint';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { ramPlusLambda } from '../lib/recipes/methods/ram';
import { modelValues, worstUlp } from './helpers/model-values';
import type { Dtype } from './reference/numerics';
import { nearswapRef, ramMasksRef, ramPlusLambdaRef, ramRef } from './reference/elementwise';
import { randomTensors } from './helpers/special-values';
import { expectedBits, writeRaw } from './helpers/raw-values';
import { runRawJob } from './helpers/raw-job';
import { makeNearFarModels } from './helpers/tiny-models';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-elementwise-');

/** One job over raw files and one dest per output dtype; threads and small blocks cut it into pieces. */
async function runElementwise(files: string[], dtypes: Dtype[], n: number, op: 'nearswap' | 'ram', params: number[], threads: number) {
  return (await runRawJob(dir, { files, dtypes, n, op, params, threads })).bits;
}

describe.each([
  ['F32', 'F32'],
  ['BF16', 'F32'],
  ['F16', 'BF16'],
] as [Dtype, Dtype][])('sources %s and %s', (tBase, tModel) => {
  const n = 5003;

  test('nearswap equals the f64 oracle rounded once, bit for bit, into F32, BF16 and F16 (t = 0.001, 0, -1, 10)', async () => {
    for (const [i, t] of [0.001, 0, -1, 10].entries()) {
      const raw = randomTensors(n, 1, 100 + i, [t, 1e-6, 0.5e-6, 2 * t]);
      const base = writeRaw(dir, raw.base, tBase);
      const model = writeRaw(dir, raw.models[0], tModel);
      // Sources in the other order than the op's: the params name them.
      const got = await runElementwise([model.file, base.file], [tModel, tBase], n, 'nearswap', encodeElementwiseParams('nearswap', [1, 0], [t]), 3);
      const ref = nearswapRef(base.held, model.held, t);
      for (const [to, bits] of got) expect(bits).toEqual(expectedBits(ref, to));
    }
  });

  test('ram and ramplus_tl λ: the f64 oracle rounded once, bit for bit; the counts equal the oracle on 1 and 3 threads', async () => {
    const epsilon = 1e-5;
    const raw = randomTensors(n, 3, 7, [epsilon, 0.99 * epsilon, 1.01 * epsilon, 1e-3]);
    const base = writeRaw(dir, raw.base, tBase);
    const models = raw.models.map((m) => writeRaw(dir, m, tModel));
    const files = [base.file, ...models.map((m) => m.file)];
    const dtypes = [tBase, ...models.map(() => tModel)];
    const held = models.map((m) => m.held);
    const { counts } = ramMasksRef(base.held, held, epsilon);
    // Every case of the masks occurs: no model, one, several.
    for (const c of [0, 1, 2, 3]) expect(counts).toContain(c);
    const lambdaRef = ramPlusLambdaRef(base.held, held, epsilon, 0.5, 3);
    for (const threads of [1, 3]) {
      const statParams = [0, epsilon, 1, 1, 2, 1, 3, 1];
      const job: NativeJob = {
        count: n,
        sources: files.map((_, k) => ({ input: k, offset: 0, dtype: dtypes[k] as NativeDtype })),
        dests: [],
        stat: 'ram_counts',
        statParams,
      };
      const { stats } = await runPlan({ inputs: files, outputs: [], jobs: [job], threads, blockBytes: 4096, direct: false });
      const lambda = [0, 1, 2].map((k) => ramPlusLambda(stats[k], stats[3 + k], 0.5, 3, epsilon));
      expect(lambda).toEqual(lambdaRef);
    }
    // λ > 1 somewhere, so that a kernel ignoring it would fail.
    expect(Math.max(...lambdaRef)).toBeGreaterThan(1);
    for (const lambda of [[1, 1, 1], lambdaRef]) {
      const got = await runElementwise(files, dtypes, n, 'ram', encodeElementwiseParams('ram', [0, 1, 2, 3], [epsilon, ...lambda]), 3);
      const ref = ramRef(base.held, held, epsilon, lambda);
      for (const [to, bits] of got) expect(bits).toEqual(expectedBits(ref, to));
    }
  });
});

test('the executor refuses bad nearswap and ram parameters with one line', async () => {
  const { file } = writeRaw(dir, [1, 2, 3], 'F32');
  const run = (op: 'nearswap' | 'ram', params: number[]) =>
    runPlan({
      inputs: [file],
      outputs: [{ path: freshPath('bad', '.bin'), size: 12, head: Buffer.alloc(0) }],
      jobs: [{ count: 3, sources: [{ input: 0, offset: 0, dtype: 'F32' }], dests: [{ output: 0, offset: 0, dtype: 'F32', op, w: [], params }] }],
      threads: 1,
      blockBytes: 4096,
      direct: false,
    });
  await expect(run('nearswap', [0, 1, 0.5])).rejects.toThrow(/^plan: parameters of job 0: a source index is out of range$/);
  await expect(run('nearswap', [0, 0, NaN])).rejects.toThrow(/t is not a finite number/);
  await expect(run('ram', [0, 1e-5, 0])).rejects.toThrow(/ram takes \[base, epsilon, \(source, lambda\)\.\.\. \[, r, alpha, epsilon\]\]/);
  await expect(run('ram', [0, 1e-5, 0, 1, 0.5, NaN, 1e-5])).rejects.toThrow(/^plan: parameters of job 0: alpha is not a finite number$/); // ramplus_tl's open tail
});

describe('recipes over fixtures', () => {
  let A: string;
  let B: string;
  let N: string;
  let F: string;

  beforeAll(async () => {
    ({ A, B, N, F } = await makeNearFarModels(dir, 5));
  }, 60000);

  async function worstUlpOf(doc: Record<string, unknown>, oracle: (name: string) => number[]): Promise<number> {
    const out = freshPath('merged');
    await merge(parseRecipe(doc), { output: out, threads: 2 });
    return worstUlp(await openCheckpoint(out), oracle);
  }

  test('nearswap (t = 0.01) is within half a bf16 ulp of the oracle', async () => {
    const [a, n] = await Promise.all([modelValues(A), modelValues(N)]);
    const doc = { merge_method: 'nearswap', base_model: N, parameters: { t: 0.01 }, models: [{ model: A }, { model: N }] };
    expect(await worstUlpOf(doc, (k) => nearswapRef(n.get(k)!, a.get(k)!, 0.01))).toBeLessThanOrEqual(0.5);
  });

  test('ram (epsilon 0.01) and ramplus_tl (r 0.5, alpha 0.4, F32 out) of three models are within half an ulp of the oracle', async () => {
    const [a, b, f, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(F), modelValues(N)]);
    const models = [{ model: A }, { model: B }, { model: F }];
    const of = (k: string) => [a, b, f].map((m) => m.get(k)!);
    expect(
      await worstUlpOf({ merge_method: 'ram', base_model: N, parameters: { epsilon: 0.01 }, models }, (k) => ramRef(n.get(k)!, of(k), 0.01)),
    ).toBeLessThanOrEqual(0.5);
    const plus = { merge_method: 'ramplus_tl', base_model: N, out_dtype: 'float32', parameters: { epsilon: 0.01, r: 0.5, alpha: 0.4 }, models };
    const oracle = (k: string) => ramRef(n.get(k)!, of(k), 0.01, ramPlusLambdaRef(n.get(k)!, of(k), 0.01, 0.5, 0.4));
    expect(await worstUlpOf(plus, oracle)).toBeLessThanOrEqual(0.5);
  });

  test('nearswap needs a base and exactly one other model; ram needs a base (one line each, at parse time)', () => {
    expect(() => parseRecipe({ merge_method: 'nearswap', parameters: { t: 0.1 }, models: [{ model: A }, { model: B }] })).toThrow(
      /^nearswap needs a base_model$/,
    );
    expect(() => parseRecipe({ merge_method: 'nearswap', base_model: N, parameters: { t: 0.1 }, models: [{ model: A }, { model: B }] })).toThrow(
      /^nearswap merges exactly one model with the base_model, a slice names 2$/,
    );
    expect(() => parseRecipe({ merge_method: 'ram', models: [{ model: A }, { model: B }] })).toThrow(/^ram needs a base_model/);
  });
});
