/**
 * arcee_fusion: the importance threshold (radix passes over the `arcee_histogram` statistic, exact
 * order statistics) and the `arcee_fusion` op on raw files of random values with special values,
 * against the f64 oracle of test/reference/arcee-fusion.ts rounded once, on 1 and 3 threads; then
 * recipes over fixtures. Bit for bit except where the oracle's importance lies within one f32 ulp of
 * the threshold (exp and log of the C library and of V8 may differ in the last bit of an f64): there
 * either value is accepted, and such elements are counted and must be rare.
 */
import { runPlan } from '../lib/engine/native';
import type { NativeDtype } from '../lib/engine/native-plan';
import type { TensorRecipe } from '../lib/engine/plan';
import { openCheckpoint } from '../lib/model/checkpoint';
import { readTensorValues } from '../lib/format/tensor-data';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { setArceeFusionThresholds } from '../lib/recipes/arcee-fusion-statistics';
import { modelValues } from './helpers/model-values';
import { CANONICAL_NAN, Dtype, encode } from './reference/numerics';
import { fusionRef, importanceRef, thresholdRef } from './reference/arcee-fusion';
import { ulpDistance } from './reference/merge-methods';
import { randomTensors } from './helpers/special-values';
import { writeRaw } from './helpers/raw-values';
import { runRawJob } from './helpers/raw-job';
import { makeNearModels } from './helpers/tiny-models';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-fusion-');

const bitsOf = (v: number, to: Dtype) => (Number.isNaN(v) ? CANONICAL_NAN[to] : encode(to, v));

/** One f32 ulp of x (at least the smallest subnormal). */
const ulp32 = (x: number) => 2 ** Math.max(Math.floor(Math.log2(Math.abs(x) || 2 ** -126)) - 23, -149);

async function runFusion(files: string[], dtypes: Dtype[], n: number, rowLength: number, threads: number) {
  const recipe: TensorRecipe = { op: 'arcee_fusion', models: [0, 1], w: [], dtype: 'F32', arceeFusion: { base: 0, model: 1, rowLength, threshold: 0 } };
  const source = (model: number) => ({ file: files[model], offset: 0, dtype: dtypes[model] as NativeDtype });
  await setArceeFusionThresholds(new Map([['t', recipe]]), [{ name: 't', count: n, source }], (p) =>
    runPlan({ ...p, outputs: [], threads, blockBytes: 4096, direct: false }),
  );
  const threshold = recipe.arceeFusion!.threshold;
  const { bits } = await runRawJob(dir, { files, dtypes, n, op: 'arcee_fusion', params: [rowLength, 0, 1, threshold], threads });
  return { threshold, bits };
}

describe.each([
  ['F32', 'F32'],
  ['BF16', 'F32'],
  ['F16', 'BF16'],
] as [Dtype, Dtype][])('sources %s and %s', (tBase, tModel) => {
  test.each([
    ['rows of 125, special values in the last two', [40, 125], 2],
    ['one row longer than a block, no special values', [5003], 0],
    ['one row with special values (every importance NaN: a NaN threshold keeps nothing)', [300], 1],
  ] as [string, number[], number][])('%s: the threshold and the fused values equal the oracle, on 1 and 3 threads', async (what, shape, specialRows) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const rowLength = shape[shape.length - 1];
    const raw = randomTensors(n, 1, 23 + n, [1e-3, 1e-2, 0.5]);
    // Special values (NaN, ±Inf, ±0, subnormals, the largest finite) in the last rows only: one NaN or Inf (after rounding
    // to the dtype) makes its whole row's divergence NaN.
    const ordinary = (x: number) => Number.isFinite(x) && Math.abs(x) < 1e4;
    const clean = (xs: number[]) => xs.map((x, i) => (i < n - specialRows * rowLength && !ordinary(x) ? 0.25 : x));
    const base = writeRaw(dir, clean(raw.base), tBase);
    const model = writeRaw(dir, clean(raw.models[0]), tModel);
    const files = [base.file, model.file];
    const importance = importanceRef(base.held, model.held, rowLength);
    const one = await runFusion(files, [tBase, tModel], n, rowLength, 1);
    const three = await runFusion(files, [tBase, tModel], n, rowLength, 3);
    expect(three.threshold).toBe(one.threshold);
    const tRef = thresholdRef(importance);
    if (Number.isNaN(tRef)) expect(one.threshold).toBeNaN();
    else expect(ulpDistance(one.threshold, tRef, 'F32')).toBeLessThanOrEqual(2);
    const t = one.threshold;
    const kept = fusionRef(base.held, model.held, importance, t);
    const dropped = fusionRef(base.held, model.held, importance, Infinity);
    const near = importance.map((x) => Math.abs(x - t) <= ulp32(t));
    expect(near.filter(Boolean).length).toBeLessThanOrEqual(3);
    if (what.includes('NaN threshold')) expect(t).toBeNaN();
    else expect(kept.filter((v, i) => v !== dropped[i]).length).toBeGreaterThan(n / 100);
    for (const [to, bits] of three.bits) {
      expect(one.bits.get(to)).toEqual(bits);
      bits.forEach((b, i) => {
        if (near[i]) expect([bitsOf(kept[i], to), bitsOf(model.held[i], to), bitsOf(dropped[i], to)]).toContain(b);
        else expect(b).toBe(bitsOf(kept[i], to));
      });
    }
  });
});

describe('recipes over fixtures', () => {
  let A: string;
  let B: string;
  let N: string;

  beforeAll(async () => {
    ({ A, B, N } = await makeNearModels(dir, 6));
  }, 60000);

  test('arcee_fusion (F32 out) is within 1 ulp of the oracle except at the threshold, and keeps a part of every matrix', async () => {
    const doc = { merge_method: 'arcee_fusion', base_model: N, out_dtype: 'float32', models: [{ model: A }, { model: N }] };
    const out = freshPath('merged');
    await merge(parseRecipe(doc), { output: out, threads: 2 });
    const [a, n] = await Promise.all([modelValues(A), modelValues(N)]);
    const ckpt = await openCheckpoint(out);
    let boundary = 0;
    for (const name of ckpt.names) {
      const loc = ckpt.tensors.get(name)!;
      const got = await readTensorValues(loc);
      const [av, nv] = [a.get(name)!, n.get(name)!];
      const importance = importanceRef(nv, av, loc.shape[loc.shape.length - 1]);
      const t = thresholdRef(importance);
      const ref = fusionRef(nv, av, importance, t);
      got.forEach((g, i) => {
        if (ulpDistance(g, ref[i], 'F32') <= 1) return;
        boundary++;
        expect(Math.abs(importance[i] - t)).toBeLessThanOrEqual(2 * ulp32(t));
      });
      if (loc.shape.length === 2) expect(got.some((g, i) => g !== nv[i] && g === av[i])).toBe(true);
    }
    expect(boundary).toBeLessThanOrEqual(ckpt.names.length);
  });

  test('arcee_fusion needs a base and exactly one other model (one line, at parse time)', () => {
    expect(() => parseRecipe({ merge_method: 'arcee_fusion', models: [{ model: A }, { model: N }] })).toThrow(/^arcee_fusion needs a base_model$/);
    expect(() => parseRecipe({ merge_method: 'arcee_fusion', base_model: N, models: [{ model: A }, { model: B }, { model: N }] })).toThrow(
      /^arcee_fusion merges exactly one model with the base_model, a slice names 2$/,
    );
  });
});
