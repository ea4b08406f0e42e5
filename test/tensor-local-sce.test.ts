/**
 * sce as a tensor-local job (native/local_sce.h): the variance cut and the weights resolved by the engine
 * from the tensor read once give the same bytes as the planner's streaming passes (forced by
 * `localStatistics.maxTensorBytes = 0`), on fresh random inputs with special values and with ties at
 * the cut, 1 to 3 task vectors, select_topk 0.1, 0.5 and 1, 1 and 3 threads, the variances stored or (sources alone
 * within the budget) computed again in each pass, from the tensor held whole or read a piece at a time; then end to end through `merge`.
 */
import { runPlan } from '../lib/engine/native';
import type { NativeDtype } from '../lib/engine/native-plan';
import type { TensorRecipe } from '../lib/engine/plan';
import { encodeSceParams, SceRecipe } from '../lib/engine/sce-params';
import { NATIVE_DTYPE_BYTES } from '../lib/format/dtypes';
import { setSceStatistics } from '../lib/recipes/sce-statistics';
import { indexBits, localStatistics } from '../lib/recipes/sparsify';
import { rng } from './helpers/models';
import { writeRaw } from './helpers/raw-values';
import { runRawJob } from './helpers/raw-job';
import { randomTensors } from './helpers/special-values';
import { expectLocalStreamedMixedAlike } from './helpers/local-vs-streamed';
import { defaultBytes, dir, setUpTensorLocalTests } from './helpers/tensor-local-setup';
import type { Dtype } from './reference/numerics';
import { sceVariancesRef } from './reference/sce';
import { makeNearFarModels } from './helpers/tiny-models';

// The statistics plans' blocks (pieces of 1024 elements: the sums of squares add five of them) differ from the write plan's.
const STATISTICS_BLOCK = 4096;
const WRITE_BLOCK = 8192;

setUpTensorLocalTests('weightmix-local-sce-');

/** The merged bits (F32, BF16 and F16 outputs) of one tensor, statistics left to the engine or streamed; base first in `files`. */
async function mergeRaw(
  files: string[],
  dtypes: Dtype[],
  n: number,
  selectTopk: number,
  threads: number,
  maxTensorBytes: number,
  chunkedLocalBytes?: number,
  blocks = { statistics: STATISTICS_BLOCK, write: WRITE_BLOCK },
) {
  localStatistics.maxTensorBytes = maxTensorBytes;
  const m = files.length - 1;
  const models = Array.from({ length: m }, (_, k) => k + 1);
  const sce: SceRecipe = { base: 0, models, weights: models.map(() => 1 / m), cut: 0n, indexBits: indexBits(n) };
  const recipe: TensorRecipe = { op: 'sce', models: [0, ...models], w: [], dtype: 'F32', sce };
  const source = (model: number) => ({ file: files[model], offset: 0, dtype: dtypes[model] as NativeDtype });
  await setSceStatistics(
    new Map([['t', recipe]]),
    [{ name: 't', count: n, selectTopk, source }],
    (p) => runPlan({ ...p, outputs: [], threads, blockBytes: blocks.statistics, direct: false }),
    { statisticsBlockBytes: blocks.statistics },
  );
  const params = encodeSceParams(sce, (s) => s);
  const { bits } = await runRawJob(dir, { files, dtypes, n, op: 'sce', params, threads, blockBytes: blocks.write, chunkedLocalBytes });
  return { open: sce.open !== undefined, recomputed: sce.open?.recomputeVariances === true, bits: [...bits.values()] };
}

/** Task vectors of few distinct values: many equal variances, and the cut inside a run of them. */
function tiedTensors(n: number, models: number, seed: number): { base: number[]; models: number[][] } {
  const r = rng(seed);
  const base = Array.from({ length: n }, () => Math.fround((r() - 0.5) * 4));
  const steps = [0, 0.25, -0.25, 0.5, -1, NaN];
  return { base, models: Array.from({ length: models }, () => base.map((b) => b + steps[Math.floor(r() * steps.length)])) };
}

/** Whether the k-th and (k+1)-th largest variances (NaN above all) are equal: a tie that the element index breaks. */
function tieAtCut(base: number[], models: number[][], selectTopk: number): boolean {
  const v = sceVariancesRef(models.map((x) => x.map((y, i) => y - base[i]))).map((x) => (Number.isNaN(x) ? Infinity : x));
  const k = Math.trunc(v.filter((x) => x !== 0).length * selectTopk);
  const sorted = [...v].sort((a, b) => b - a);
  return k > 0 && sorted[k - 1] === sorted[k];
}

describe.each([1, 2, 3])('%p task vectors', (m) => {
  const n = 5003;
  test.each([
    ['random values with special ones', 0.1, 'BF16', 'F32'],
    ['random values with special ones', 0.5, 'F32', 'BF16'],
    ['random values with special ones', 1, 'F16', 'F32'],
    ['few distinct values (ties at the cut)', 0.1, 'F32', 'BF16'],
    ['few distinct values (ties at the cut)', 0.5, 'BF16', 'BF16'],
  ] as [string, number, Dtype, Dtype][])(
    '%s, select_topk %p (%s base, %s models): local and streamed bytes agree on 1 and 3 threads',
    async (what, selectTopk, tBase, tModel) => {
      const seed = 1000 * m + Math.round(selectTopk * 100);
      const raw = what.startsWith('few') ? tiedTensors(n, m, seed) : randomTensors(n, m, seed, [1e-3, 1e-2, 0.5]);
      const base = writeRaw(dir, raw.base, tBase);
      const models = raw.models.map((x) => writeRaw(dir, x, tModel));
      const files = [base.file, ...models.map((x) => x.file)];
      const dtypes = [tBase, ...models.map(() => tModel)];
      if (what.startsWith('few') && m > 1)
        expect(
          tieAtCut(
            base.held,
            models.map((x) => x.held),
            selectTopk,
          ),
        ).toBe(true);
      const streamed = await mergeRaw(files, dtypes, n, selectTopk, 1, 0);
      expect(streamed.open).toBe(false);
      // A budget of the sources' bytes: no room for the variances, which a selecting tensor then computes again in each pass
      // (one that keeps all needs none).
      const sourceBytes = dtypes.reduce((b, d) => b + n * NATIVE_DTYPE_BYTES[d as NativeDtype], 0);
      const selects = selectTopk > 0 && selectTopk < 1;
      for (const threads of [1, 3]) {
        // The third: computed again, from the tensor read a piece at a time (native/local_sce.h's resolveLocalSceInChunks) where it selects.
        for (const [budget, recomputed, chunked] of [
          [defaultBytes, false, undefined],
          [sourceBytes, selects, undefined],
          [sourceBytes, selects, 0],
        ] as [number, boolean, number | undefined][]) {
          const local = await mergeRaw(files, dtypes, n, selectTopk, threads, budget, chunked);
          expect(local.open).toBe(true);
          expect(local.recomputed).toBe(recomputed);
          local.bits.forEach((bits, o) => expect(bits).toEqual(streamed.bits[o]));
        }
      }
    },
  );
});

test('streamed: a pass over index bits reads only the run of elements its prefix allows', async () => {
  // Task vectors +0.25 and −0.25 everywhere: every variance equal, so the cut is an element index, which the last pass resolves.
  const n = 40000;
  const r = rng(91);
  const base = Array.from({ length: n }, () => Math.round((r() - 0.5) * 16) / 4); // quarters: b ± 0.25 exact
  const files = [base, base.map((b) => b + 0.25), base.map((b) => b - 0.25)].map((x) => writeRaw(dir, x, 'F32').file);
  localStatistics.maxTensorBytes = 0;
  const sce: SceRecipe = { base: 0, models: [1, 2], weights: [0.5, 0.5], cut: 0n, indexBits: indexBits(n) };
  const recipe: TensorRecipe = { op: 'sce', models: [0, 1, 2], w: [], dtype: 'F32', sce };
  const passes: number[][] = [];
  await setSceStatistics(
    new Map([['t', recipe]]),
    [{ name: 't', count: n, selectTopk: 0.3, source: (m) => ({ file: files[m], offset: 0, dtype: 'F32' as NativeDtype }) }],
    (p) => {
      passes.push(p.jobs.filter((j) => j.stat === 'sce_histogram').map((j) => j.count));
      return runPlan({ ...p, outputs: [], threads: 2, blockBytes: STATISTICS_BLOCK, direct: false });
    },
    { statisticsBlockBytes: STATISTICS_BLOCK },
  );
  const histograms = passes.filter((p) => p.length > 0);
  // 31 + 16 key bits in 12-bit digits: the first pass over every element, the fourth over a run of at most 2^11.
  expect(histograms[0]).toEqual([n]);
  expect(histograms.length).toBe(4);
  expect(histograms[3][0]).toBeLessThanOrEqual(2 ** 11);
  // The first trunc(0.3 n) indices kept (lower index first among equal variances): the cut's index bits say so.
  const k = Math.trunc(0.3 * n);
  expect(sce.cut & ((1n << BigInt(indexBits(n))) - 1n)).toBe(BigInt(n - k));
});

test.each([
  ['a run past its tensor’s end', [16, 20], "a run past its tensor's end"],
  ['a run keyed by its own count', [0, 64], 'index bits do not match the element count'],
  ['a fractional first element', [0.5, 20], 'histogram parameter 9 is not a whole number in range'],
  ['a tail of one number', [3], 'a histogram takes'],
])('a selection statistic over %s is refused before the run, in one line', async (_, tail, message) => {
  const file = writeRaw(dir, new Array(8).fill(0.5), 'F32').file;
  // Elements 0 .. 7 of a tensor of 20 (index bits 5), base and two models.
  const statParams = [0, 2, 1, 2, 5, 24, 12, 0, 0, ...tail];
  const run = runPlan({
    inputs: [file],
    outputs: [],
    jobs: [{ count: 8, sources: [0, 1, 2].map(() => ({ input: 0, offset: 0, dtype: 'F32' as NativeDtype })), dests: [], stat: 'sce_histogram', statParams }],
    threads: 1,
    blockBytes: 4096,
    direct: false,
  });
  await expect(run).rejects.toThrow(`plan: bad sce or arcee_fusion statistic parameters in job 0: ${message}`);
});

test('read a piece at a time: chunks of several blocks, the last one short, pieces of the sums across chunks; the streamed bytes', async () => {
  // Write blocks of 64 KiB: chunks of 16,384 elements (four variance blocks of 4,096; the third chunk 7,232); statistics blocks
  // of 20 KiB: pieces of 5,120 elements, some spanning two chunks.
  const n = 40000;
  const raw = randomTensors(n, 2, 77, [1e-3, 1e-2, 0.5]);
  const base = writeRaw(dir, raw.base, 'BF16');
  const models = raw.models.map((x) => writeRaw(dir, x, 'BF16'));
  const files = [base.file, ...models.map((x) => x.file)];
  const dtypes: Dtype[] = ['BF16', 'BF16', 'BF16'];
  const blocks = { statistics: 20480, write: 65536 };
  const streamed = await mergeRaw(files, dtypes, n, 0.5, 1, 0, undefined, blocks);
  for (const threads of [1, 3]) {
    const chunked = await mergeRaw(files, dtypes, n, 0.5, threads, 3 * 2 * n, 0, blocks);
    expect(chunked.recomputed).toBe(true);
    chunked.bits.forEach((bits, o) => expect(bits).toEqual(streamed.bits[o]));
  }
});

describe('recipes over fixtures', () => {
  let A: string;
  let B: string;
  let F: string;
  let N: string;

  beforeAll(async () => {
    ({ A, B, F, N } = await makeNearFarModels(dir, 6, { pair: [2, 1] }));
  }, 60000);

  test.each([0.1, 0.5, 1])('sce, select_topk %p, three models: local, streamed and mixed give the same files', async (selectTopk) => {
    const doc = {
      merge_method: 'sce',
      base_model: N,
      parameters: { select_topk: selectTopk },
      models: [{ model: A }, { model: B }, { model: F }, { model: N }],
    };
    await expectLocalStreamedMixedAlike(dir, doc);
  });
});
