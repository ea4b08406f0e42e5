/**
 * arcee_fusion as a tensor-local job (native/local_arcee.h): the threshold resolved by the engine from the
 * tensor read once (row KLs computed once, an in-memory selection of the three order statistics, mergekit's f32
 * threshold steps) gives the same bytes as the planner's streaming radix passes
 * (forced by `localStatistics.maxTensorBytes = 0`), on fresh random inputs with special values (NaN, ±Inf,
 * ±0, subnormals), mixed dtypes, rows of length 1, a 1-D tensor (one row), ties at the quantiles and more
 * than a quarter of NaN importances (a NaN threshold), tensors below and above 2^16 elements (the engine selects
 * in place, or by a sampled window pass with radix counts where ties fill a window), the keys stored or (sources and row
 * KLs alone within the budget) computed again in each pass; 1 and 3 threads; then end to end through `merge`.
 */
import { runPlan } from '../lib/engine/native';
import type { NativeDtype } from '../lib/engine/native-plan';
import type { TensorRecipe } from '../lib/engine/plan';
import { ArceeFusionRecipe, encodeArceeFusionParams } from '../lib/engine/arcee-fusion-params';
import { NATIVE_DTYPE_BYTES } from '../lib/format/dtypes';
import { setArceeFusionThresholds } from '../lib/recipes/arcee-fusion-statistics';
import { localStatistics } from '../lib/recipes/sparsify';
import { rng } from './helpers/models';
import { writeRaw } from './helpers/raw-values';
import { runRawJob } from './helpers/raw-job';
import { randomTensors } from './helpers/special-values';
import { expectLocalStreamedMixedAlike } from './helpers/local-vs-streamed';
import { defaultBytes, dir, setUpTensorLocalTests } from './helpers/tensor-local-setup';
import type { Dtype } from './reference/numerics';
import { makeNearModels } from './helpers/tiny-models';

setUpTensorLocalTests('weightmix-local-arcee-');

/** The merged bits (F32, BF16 and F16 outputs) of one tensor, the threshold left to the engine or streamed. */
async function mergeRaw(files: string[], dtypes: Dtype[], n: number, rowLength: number, threads: number, maxTensorBytes: number) {
  localStatistics.maxTensorBytes = maxTensorBytes;
  const arceeFusion: ArceeFusionRecipe = { base: 0, model: 1, rowLength, threshold: 0 };
  const recipe: TensorRecipe = { op: 'arcee_fusion', models: [0, 1], w: [], dtype: 'F32', arceeFusion };
  const source = (model: number) => ({ file: files[model], offset: 0, dtype: dtypes[model] as NativeDtype });
  await setArceeFusionThresholds(
    new Map([['t', recipe]]),
    [{ name: 't', count: n, source }],
    (p) => runPlan({ ...p, outputs: [], threads, blockBytes: 4096, direct: false }),
    { local: true },
  );
  const params = encodeArceeFusionParams(arceeFusion, (s) => s);
  const { bits } = await runRawJob(dir, { files, dtypes, n, op: 'arcee_fusion', params, threads, blockBytes: 8192 });
  return { open: arceeFusion.open === true, recomputed: arceeFusion.recomputeKeys === true, threshold: arceeFusion.threshold, bits: [...bits.values()] };
}

/** Random values with special ones in the last `dirtyRows` rows only (a special value makes its row's KL NaN). */
function values(n: number, rowLength: number, dirtyRows: number, seed: number): { base: number[]; model: number[] } {
  const raw = randomTensors(n, 1, seed, [1e-3, 1e-2, 0.5]);
  const ordinary = (x: number) => Number.isFinite(x) && Math.abs(x) < 1e4;
  const clean = (xs: number[]) => xs.map((x, i) => (i < n - dirtyRows * rowLength && !ordinary(x) ? 0.25 : x));
  return { base: clean(raw.base), model: clean(raw.models[0]) };
}

/** Few distinct values and many equal task vectors: runs of equal importances across the quartiles. */
function tiedValues(n: number, seed: number): { base: number[]; model: number[] } {
  const r = rng(seed);
  const base = Array.from({ length: n }, () => [0.5, -0.25, 1, 0][Math.floor(r() * 4)]);
  const steps = [0, 0, 0, 0.25, -0.25, 0.5];
  return { base, model: base.map((b) => b + steps[Math.floor(r() * steps.length)]) };
}

/**
 * Local (1 and 3 threads; the keys stored, or with a budget of the sources and row KLs only, computed again in each pass)
 * against streamed: the same bits in every output dtype; returns the streamed threshold.
 */
async function expectLocalAsStreamed(raw: { base: number[]; model: number[] }, dtypes: Dtype[], rowLength: number): Promise<number> {
  const n = raw.base.length;
  const files = [writeRaw(dir, raw.base, dtypes[0]).file, writeRaw(dir, raw.model, dtypes[1]).file];
  const streamed = await mergeRaw(files, dtypes, n, rowLength, 1, 0);
  expect(streamed.open).toBe(false);
  const sourcesAndKls = dtypes.reduce((b, d) => b + n * NATIVE_DTYPE_BYTES[d as NativeDtype], 8 * (n / rowLength));
  for (const threads of [1, 3]) {
    for (const [budget, recomputed] of [
      [defaultBytes, false],
      [sourcesAndKls, true],
    ] as [number, boolean][]) {
      const local = await mergeRaw(files, dtypes, n, rowLength, threads, budget);
      expect(local.open).toBe(true);
      expect(local.recomputed).toBe(recomputed);
      local.bits.forEach((bits, o) => expect(bits).toEqual(streamed.bits[o]));
    }
  }
  return streamed.threshold;
}

test.each([
  ['F32', 'F32', 125, 60, 5],
  ['BF16', 'F16', 125, 60, 5],
  ['F16', 'BF16', 7, 301, 3],
  ['F32', 'BF16', 1, 3001, 0],
  ['BF16', 'F32', 1, 3001, 500],
  ['F32', 'F16', 4099, 1, 0],
  ['BF16', 'BF16', 300, 256, 4], // above 2^16 elements: the engine's radix selection (below, std::nth_element)
  ['F16', 'F32', 70001, 1, 0], // one row longer than the engine's key blocks (16,384 elements)
] as [Dtype, Dtype, number, number, number][])(
  '%s base, %s model, rows of %p x %p (%p with special values): local and streamed bytes agree',
  async (tBase, tModel, rowLength, rows, dirtyRows) => {
    const threshold = await expectLocalAsStreamed(values(rows * rowLength, rowLength, dirtyRows, rowLength * 31 + rows), [tBase, tModel], rowLength);
    expect(Number.isNaN(threshold)).toBe(false);
  },
);

test.each([
  [16, 300],
  [1, 4000],
  [32, 2100],
])('ties at the quartiles (rows of %p): local and streamed bytes agree', async (rowLength, rows) => {
  const raw = tiedValues(rowLength * rows, rowLength + rows);
  await expectLocalAsStreamed(raw, ['F32', 'BF16'], rowLength);
});

/** Random values where a share of the elements (shuffled) equal their base: that many importances are 0, tied. */
function equalShareValues(n: number, share: number, seed: number): { base: number[]; model: number[] } {
  const r = rng(seed);
  const base = Array.from({ length: n }, () => (r() - 0.5) * 0.1);
  const equal = Array.from({ length: n }, (_, i) => i < Math.round(share * n));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [equal[i], equal[j]] = [equal[j], equal[i]];
  }
  return { base, model: base.map((b, i) => (equal[i] ? b : b + (r() - 0.5) * 0.01)) };
}

// Above 2^16 elements the engine places a window of values around each quartile by a sample and counts one pass; ties of
// zero importances over a quartile's whole window leave a window of one value (0.4, 0.8), and ties that end inside a window
// fill its room (0.26, 0.76: the windows reach 1-2 % either side of a quartile), when the engine's radix passes decide.
test.each([0.26, 0.4, 0.76, 0.8])('a share of %p of elements equal to their base, 300 x 256: local and streamed bytes agree', async (share) => {
  await expectLocalAsStreamed(equalShareValues(300 * 256, share, Math.round(share * 100)), ['F32', 'F32'], 256);
});

test('more than a quarter of NaN importances: a NaN threshold (keeps nothing) both ways', async () => {
  const rowLength = 50;
  const rows = 40;
  const raw = values(rows * rowLength, rowLength, 0, 9);
  // Every row from the 25th on holds a NaN: its KL is NaN, and so are its elements' importances (> 1/4 of them).
  for (let row = 24; row < rows; row++) raw.model[row * rowLength + 3] = NaN;
  const threshold = await expectLocalAsStreamed(raw, ['BF16', 'BF16'], rowLength);
  expect(Number.isNaN(threshold)).toBe(true);
});

describe('recipes over fixtures', () => {
  let A: string;
  let N: string;

  beforeAll(async () => {
    ({ A, N } = await makeNearModels(dir, 8, { pair: [2, 1] }));
  }, 60000);

  test('arcee_fusion: local, streamed and mixed give the same files', async () => {
    await expectLocalStreamedMixedAlike(dir, { merge_method: 'arcee_fusion', base_model: N, models: [{ model: A }, { model: N }] });
  });
});
