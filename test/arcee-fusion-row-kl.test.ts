/**
 * arcee_fusion's row KLs computed once: the first `arcee_histogram` pass returns each row's KL after its
 * counts, and the later passes and the merge take them as their params' tail (native/kernels/arcee_fusion.h).
 * Both ways (KLs given, KLs computed by the kernel) must give the same counts and the same bytes, on random
 * inputs with special values (NaN, ±Inf, ±0, subnormals, the largest finite) in some rows.
 */
import { runPlan } from '../lib/engine/native';
import type { NativeDtype, NativeJob } from '../lib/engine/native-plan';
import type { TensorRecipe } from '../lib/engine/plan';
import { arceeHistogramParams } from '../lib/engine/arcee-fusion-params';
import { setArceeFusionThresholds } from '../lib/recipes/arcee-fusion-statistics';
import { Dtype } from './reference/numerics';
import { randomTensors } from './helpers/special-values';
import { readRaw, writeRaw } from './helpers/raw-values';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-fusion-kl-');

const plan = { outputs: [], threads: 3, blockBytes: 4096, direct: false };

test.each([
  ['F32', 'F32'],
  ['BF16', 'F16'],
] as [Dtype, Dtype][])('sources %s and %s: counts and bytes with the row KLs given equal those with the KLs computed', async (tBase, tModel) => {
  const rows = 60;
  const rowLength = 125;
  const n = rows * rowLength;
  const raw = randomTensors(n, 1, 77, [1e-3, 1e-2, 0.5]);
  // Special values in the last 5 rows only (they make their rows' KL NaN); ordinary values elsewhere.
  const ordinary = (x: number) => Number.isFinite(x) && Math.abs(x) < 1e4;
  const clean = (xs: number[]) => xs.map((x, i) => (i < n - 5 * rowLength && !ordinary(x) ? 0.25 : x));
  const files = [writeRaw(dir, clean(raw.base), tBase).file, writeRaw(dir, clean(raw.models[0]), tModel).file];
  const sources = files.map((_, k) => ({ input: k, offset: 0, dtype: [tBase, tModel][k] as NativeDtype }));

  const recipe: TensorRecipe = { op: 'arcee_fusion', models: [0, 1], w: [], dtype: 'F32', arceeFusion: { base: 0, model: 1, rowLength, threshold: 0 } };
  const source = (model: number) => ({ file: files[model], offset: 0, dtype: [tBase, tModel][model] as NativeDtype });
  await setArceeFusionThresholds(new Map([['t', recipe]]), [{ name: 't', count: n, source }], (p) => runPlan({ ...p, ...plan }));
  const { threshold, rowDivergence } = recipe.arceeFusion!;
  expect(rowDivergence).toHaveLength(rows);
  expect(rowDivergence!.slice(rows - 5).every(Number.isNaN)).toBe(true);
  expect(rowDivergence!.slice(0, rows - 5).every((kl) => Number.isFinite(kl) && kl >= 0)).toBe(true);

  // Histogram jobs with and without the KLs: the top digit (every element counted, per quantile), then the
  // next digit below the top digit's fullest bucket.
  const histogram = (shift: number, prefix: number, kls?: Float64Array): NativeJob => ({
    count: n,
    sources,
    dests: [],
    stat: 'arcee_histogram',
    statParams: arceeHistogramParams(rowLength, shift, 12, [prefix, prefix, prefix], kls),
  });
  const both = async (shift: number, prefix: number) => {
    const computed = (await runPlan({ inputs: files, jobs: [histogram(shift, prefix)], ...plan })).stats;
    const given = (await runPlan({ inputs: files, jobs: [histogram(shift, prefix, rowDivergence)], ...plan })).stats;
    expect(given).toHaveLength(3 * 4096);
    expect(Array.from(computed.subarray(0, 3 * 4096))).toEqual(Array.from(given));
    expect(Array.from(computed.subarray(3 * 4096))).toEqual(Array.from(rowDivergence!));
    return Array.from(given.subarray(0, 4096));
  };
  const top = await both(20, 0);
  expect(top.reduce((a, b) => a + b, 0)).toBe(n);
  const fullest = top.indexOf(Math.max(...top));
  const next = await both(8, fullest);
  expect(next.reduce((a, b) => a + b, 0)).toBe(top[fullest]);
  expect(top[fullest]).toBeGreaterThan(n / 100);

  const merged = async (kls: number[]) => {
    const out = freshPath('out', '.bin');
    await runPlan({
      inputs: files,
      outputs: [{ path: out, size: n * 4, head: Buffer.alloc(0) }],
      jobs: [{ count: n, sources, dests: [{ output: 0, offset: 0, dtype: 'F32', op: 'arcee_fusion', w: [], params: [rowLength, 0, 1, threshold, ...kls] }] }],
      threads: 3,
      blockBytes: 4096,
      direct: false,
    });
    return readRaw(out, 'F32', n);
  };
  const withKls = await merged(Array.from(rowDivergence!));
  const withoutKls = await merged([]);
  expect(withKls).toEqual(withoutKls);
  // The merge keeps a part of the model (the comparison is not between two copies of the base).
  const baseOnly = await merged(Array.from(rowDivergence!, () => 0));
  expect(withKls).not.toEqual(baseOnly);
});

test('row KLs of the wrong count are refused', async () => {
  const files = [writeRaw(dir, [1, 2, 3, 4], 'F32').file, writeRaw(dir, [1, 2, 3, 5], 'F32').file];
  const sources = files.map((_, k) => ({ input: k, offset: 0, dtype: 'F32' as NativeDtype }));
  const job: NativeJob = { count: 4, sources, dests: [], stat: 'arcee_histogram', statParams: arceeHistogramParams(2, 20, 12, [0, 0, 0], new Float64Array(3)) };
  await expect(runPlan({ inputs: files, jobs: [job], ...plan })).rejects.toThrow(/arcee_fusion statistic parameters/);
});
