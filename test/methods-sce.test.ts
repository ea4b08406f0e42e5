/**
 * sce: the engine's variance selection (radix passes over the `sce_histogram` statistic), sums of
 * squares and `sce` op on raw files of random values with special values and many equal variances,
 * bit for bit against the f64 oracle of test/reference/sce.ts rounded once, on 1 and 3 threads;
 * then whole recipes over fixtures within one ulp.
 */
import { runPlan } from '../lib/engine/native';
import type { NativeDtype } from '../lib/engine/native-plan';
import type { TensorRecipe } from '../lib/engine/plan';
import { openCheckpoint } from '../lib/model/checkpoint';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { indexBits } from '../lib/recipes/sparsify';
import { setSceStatistics } from '../lib/recipes/sce-statistics';
import { modelValues, worstUlp } from './helpers/model-values';
import type { Dtype } from './reference/numerics';
import { sceMaskRef, sceMergeRef, sceSelectedRef, sceWeightsRef } from './reference/sce';
import { randomTensors } from './helpers/special-values';
import { expectedBits, writeRaw } from './helpers/raw-values';
import { runRawJob } from './helpers/raw-job';
import { rng } from './helpers/models';
import { makeNearFarModels } from './helpers/tiny-models';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-sce-');

/** The statistics (through lib/recipes/sce-statistics.ts) and the write, over raw files: base first, then the models. */
async function runSce(files: string[], dtypes: Dtype[], n: number, selectTopk: number, threads: number) {
  const m = files.length - 1;
  const models = Array.from({ length: m }, (_, k) => k + 1);
  const recipe: TensorRecipe = {
    op: 'sce',
    models: [0, ...models],
    w: [],
    dtype: 'F32',
    sce: { base: 0, models, weights: [], cut: 0n, indexBits: indexBits(n) },
  };
  const recipes = new Map([['t', recipe]]);
  const source = (model: number) => ({ file: files[model], offset: 0, dtype: dtypes[model] as NativeDtype });
  await setSceStatistics(recipes, [{ name: 't', count: n, selectTopk, source }], (p) =>
    runPlan({ ...p, outputs: [], threads, blockBytes: 4096, direct: false }),
  );
  const params = [
    0,
    Number(recipe.sce!.cut >> 32n),
    Number(recipe.sce!.cut & 0xffffffffn),
    recipe.sce!.indexBits,
    m,
    ...models.flatMap((s, k) => [s, recipe.sce!.weights[k]]),
  ];
  const { bits } = await runRawJob(dir, { files, dtypes, n, op: 'sce', params, threads });
  return { bits, weights: recipe.sce!.weights, cut: recipe.sce!.cut };
}

/** Models whose task vectors take few distinct values: many equal variances, ties at the cut. */
function tiedTensors(n: number, models: number, seed: number): { base: number[]; models: number[][] } {
  const r = rng(seed);
  const base = Array.from({ length: n }, () => Math.fround((r() - 0.5) * 4));
  const steps = [0, 0.25, -0.25, 0.5, -1];
  return { base, models: Array.from({ length: models }, () => base.map((b) => b + steps[Math.floor(r() * steps.length)])) };
}

describe.each([
  ['F32', 'F32'],
  ['BF16', 'F32'],
  ['F16', 'BF16'],
  ['BF16', 'BF16'],
  ['F16', 'F16'],
] as [Dtype, Dtype][])('sources %s and %s', (tBase, tModel) => {
  const n = 5003;
  test.each([
    ['random values with special ones', 0.3],
    ['random values with special ones', 1],
    ['random values with special ones', 0],
    ['random values with special ones, few kept (non-finite sources and -0 bases among the dropped)', 0.05],
    ['many equal variances (ties at the cut)', 0.37],
  ] as [string, number][])('%s, select_topk %p: the f64 oracle rounded once, bit for bit, on 1 and 3 threads', async (what, selectTopk) => {
    const raw = what.startsWith('many') ? tiedTensors(n, 3, 5) : randomTensors(n, 3, 17, [1e-3, 1e-2, 0.5]);
    const base = writeRaw(dir, raw.base, tBase);
    const models = raw.models.map((x) => writeRaw(dir, x, tModel));
    const files = [base.file, ...models.map((x) => x.file)];
    const dtypes = [tBase, ...models.map(() => tModel)];
    const held = models.map((x) => x.held);
    const { t, sumSquares } = sceSelectedRef(base.held, held, selectTopk);
    const one = await runSce(files, dtypes, n, selectTopk, 1);
    const three = await runSce(files, dtypes, n, selectTopk, 3);
    expect(three.cut).toBe(one.cut);
    expect(three.weights).toEqual(one.weights);
    // The weights: the oracle's f64 sums (in another order) within 1e-12.
    const weights = sceWeightsRef(sumSquares, n);
    one.weights.forEach((w, k) => expect(Math.abs(w - weights[k])).toBeLessThanOrEqual(1e-12 * weights[k]));
    // The selection itself: the oracle's kept count, at the engine's weights for the merge.
    const keep = sceMaskRef(
      held.map((x) => x.map((v, i) => v - base.held[i])),
      selectTopk,
    );
    if (selectTopk > 0 && selectTopk < 1) expect(keep.filter(Boolean).length).toBeGreaterThan(100);
    if (what.includes('among the dropped')) {
      // The kept-only merges' rule for a dropped element (base, -0 made +0, NaN where a source is not finite) is reached.
      const dropped = keep.map((k, i) => (k ? -1 : i)).filter((i) => i >= 0);
      expect(dropped.filter((i) => held.some((x) => !Number.isFinite(x[i]))).length).toBeGreaterThan(10);
      expect(dropped.filter((i) => Object.is(base.held[i], -0)).length).toBeGreaterThan(10);
    }
    const ref = sceMergeRef(base.held, t, one.weights);
    for (const [to, bits] of three.bits) {
      expect(bits).toEqual(expectedBits(ref, to));
      expect(one.bits.get(to)).toEqual(bits);
    }
  });
});

describe('recipes over fixtures', () => {
  let A: string;
  let B: string;
  let F: string;
  let N: string;

  beforeAll(async () => {
    ({ A, B, F, N } = await makeNearFarModels(dir, 4));
  }, 60000);

  test.each([0.5, 1])('sce (select_topk %p, three models, F32 out) is within 1 ulp of the oracle', async (selectTopk) => {
    const doc = {
      merge_method: 'sce',
      base_model: N,
      out_dtype: 'float32',
      parameters: { select_topk: selectTopk },
      models: [{ model: A }, { model: B }, { model: F }, { model: N }],
    };
    const out = freshPath('merged');
    await merge(parseRecipe(doc), { output: out, threads: 2 });
    const [a, b, f, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(F), modelValues(N)]);
    const oracle = (name: string) => {
      const { t, sumSquares } = sceSelectedRef(
        n.get(name)!,
        [a, b, f].map((x) => x.get(name)!),
        selectTopk,
      );
      return sceMergeRef(n.get(name)!, t, sceWeightsRef(sumSquares, t[0].length));
    };
    expect(await worstUlp(await openCheckpoint(out), oracle)).toBeLessThanOrEqual(1);
  });

  test('sce needs a base (one line, at parse time); a weight it does not take is ignored with a note, as mergekit ignores it', () => {
    expect(() => parseRecipe({ merge_method: 'sce', models: [{ model: A }, { model: B }] })).toThrow(/^sce needs a base_model/);
    expect(parseRecipe({ merge_method: 'sce', base_model: N, models: [{ model: A, parameters: { weight: 1 } }, { model: N }] }).ignored).toEqual([
      "models[0].parameters: 'weight' ignored: merge_method sce takes no parameter 'weight' (it takes 'select_topk', 'int8_mask'), and mergekit ignores it too",
    ]);
  });
});
