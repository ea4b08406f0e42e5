/**
 * SCE's two whole-tensor statistics before the write pass (mergekit's sce_mask and sce_weight):
 * the cut of the top k = trunc(nonzero · select_topk) per-element variances across the task vectors
 * (exact: radix selection over the rank keys of native/kernels/sce.h, 12-bit digits, one pass per
 * digit for all tensors at once, stopping where the chosen digit holds exactly what is left to keep),
 * then each model's Σ t² over the selected elements, which give the weights. With `local`, a tensor whose
 * sources (and 4 bytes per element of variances) fit `localStatistics.maxTensorBytes` leaves both open for
 * the engine, which resolves them from the tensor read once (native/local_sce.h): the same cut set,
 * sums and weights, so the same bytes; so does one whose sources alone fit the engine's local pool (1.5 ×
 * that), with its variances computed again in each pass instead of stored.
 */
import { InputFiles } from '../engine/input-files';
import type { NativeJob, NativePlan } from '../engine/native-plan';
import type { NativeResult } from '../engine/native';
import type { TensorRecipe } from '../engine/plan';
import { sceHistogramParams, SceRecipe, sceSumSquaresParams } from '../engine/sce-params';
import { NATIVE_DTYPE_BYTES } from '../format/dtypes';
import { candidateRange, elementsFrom, fitsLocalPool, KEY_NONE, localStatistics, MAX_HISTOGRAM_JOBS, runTail, TensorSource } from './sparsify';

export interface SceTensor {
  name: string;
  count: number;
  /** select_topk: < 1 selects by variance (≤ 0: nothing), ≥ 1 keeps every element. */
  selectTopk: number;
  source(model: number): TensorSource;
}

/** Statistics left to the engine for the tensors that fit in memory. */
export interface SceLocal {
  /** The statistics plans' block size: the streaming sums of squares add pieces of blockBytes / 4 elements, and the engine's local sums follow them. */
  statisticsBlockBytes: number;
}

type RunPlan = (plan: Pick<NativePlan, 'inputs' | 'jobs'>) => Promise<NativeResult>;

const DIGIT_BITS = 12;

/** mergekit's sce_weight from the per-model Σ t² (means over `count` elements), in f64. */
export function sceWeights(sumSquares: readonly number[], count: number): number[] {
  const means = sumSquares.map((s) => s / count);
  const total = means.reduce((a, b) => a + b, 0);
  if (Math.abs(total) < 1e-6) return means.map(() => 1 / means.length);
  return means.map((x) => x / total);
}

/** One job per tensor over [base, models…] with the statistic `stat`: the whole tensor, or its elements first .. end − 1. */
function jobsOf(
  tensors: readonly { t: SceTensor; r: SceRecipe; statParams: number[]; first?: number; end?: number }[],
  stat: NativeJob['stat'],
  files: InputFiles,
): NativeJob[] {
  return tensors.map(({ t, r, statParams, first = 0, end = t.count }) => ({
    count: end - first,
    sources: [r.base, ...r.models].map((m) => files.source(elementsFrom(t.source(m), first))),
    dests: [],
    stat,
    statParams,
  }));
}

/** Runs jobs in plans of at most MAX_HISTOGRAM_JOBS; returns each job's numbers (`per` of them). */
async function runJobs(jobs: NativeJob[], files: InputFiles, per: number, run: RunPlan): Promise<number[][]> {
  const out: number[][] = [];
  for (let at = 0; at < jobs.length; at += MAX_HISTOGRAM_JOBS) {
    const batch = jobs.slice(at, at + MAX_HISTOGRAM_JOBS);
    const { stats } = await run({ inputs: files.paths, jobs: batch });
    if (stats.length !== batch.length * per) throw new Error(`internal: sce statistics returned ${stats.length} numbers, expected ${batch.length * per}`);
    batch.forEach((_, k) => out.push(Array.from(stats.subarray(k * per, (k + 1) * per))));
  }
  return out;
}

interface Selection {
  t: SceTensor;
  r: SceRecipe;
  need: number;
  prefix: bigint;
  remaining: number;
}

/** The variance cuts of the tensors that select (0 < select_topk < 1), into their recipes' `cut`. */
async function selectCuts(open: Selection[], run: RunPlan): Promise<void> {
  let first = true;
  while (open.length > 0) {
    const files = new InputFiles();
    const digits = open.map((s) => Math.min(DIGIT_BITS, s.remaining));
    const jobs = jobsOf(
      open.map((s, k) => {
        // Once the prefix holds every variance bit, the pass reads only the run of elements it allows (sparsify.ts's candidateRange).
        const run = candidateRange(s.t.count, s.remaining, s.prefix);
        const params = sceHistogramParams(s.r.models.length, s.r.indexBits, s.remaining - digits[k], digits[k], s.prefix);
        return { ...s, ...run, statParams: [...params, ...runTail(run, s.t.count)] };
      }),
      'sce_histogram',
      files,
    );
    // Jobs differ in digit width only at the last digit; run each width apart so that `per` is one number.
    const results: number[][] = new Array(open.length);
    for (const bits of new Set(digits)) {
      const idx = digits.map((d, k) => (d === bits ? k : -1)).filter((k) => k >= 0);
      const got = await runJobs(
        idx.map((k) => jobs[k]),
        files,
        2 ** bits + 1,
        run,
      );
      idx.forEach((k, j) => (results[k] = got[j]));
    }
    const next: Selection[] = [];
    open.forEach((s, k) => {
      const hist = results[k];
      const bits = digits[k];
      // mergekit: k = int(count_nonzero(var) · select_topk), counted on the first pass (the last counter).
      if (first) s.need = Math.trunc((s.t.count - hist[2 ** bits]) * s.t.selectTopk);
      if (s.need === 0) {
        s.r.cut = KEY_NONE;
        return;
      }
      let b = 2 ** bits - 1;
      for (; b > 0 && hist[b] < s.need; b--) s.need -= hist[b];
      const shift = s.remaining - bits;
      s.prefix = (s.prefix << BigInt(bits)) | BigInt(b);
      if (hist[b] === s.need || shift === 0) s.r.cut = s.prefix << BigInt(shift);
      else next.push({ ...s, remaining: shift });
    });
    open = next;
    first = false;
  }
}

/**
 * How the engine resolves this tensor's statistics from memory: 'stored' when its sources and its variance bits (when it
 * selects) fit the local budget, 'recomputed' when its sources alone fit the local pool (the variances computed again in
 * each of the cut's passes, the sums and the merge, instead of streaming passes that re-read the files), else null.
 */
function localMode(t: SceTensor, r: SceRecipe): 'stored' | 'recomputed' | null {
  const sources = [r.base, ...r.models].reduce((n, m) => n + t.count * NATIVE_DTYPE_BYTES[t.source(m).dtype], 0);
  const selects = t.selectTopk > 0 && t.selectTopk < 1;
  if (sources + (selects ? 4 * t.count : 0) <= localStatistics.maxTensorBytes) return 'stored';
  return selects && fitsLocalPool(sources) ? 'recomputed' : null;
}

/** Cuts and weights for every sce tensor, written into its recipe's `sce` (or left open for the engine, with `local`). */
export async function setSceStatistics(recipes: Map<string, TensorRecipe>, tensors: readonly SceTensor[], run: RunPlan, local?: SceLocal): Promise<void> {
  if (tensors.length === 0) return;
  const streamed = tensors
    .map((t) => ({ t, r: recipes.get(t.name)!.sce! }))
    .filter(({ t, r }) => {
      const mode = local ? localMode(t, r) : null;
      if (!local || mode === null) return true;
      // The executor's statistics pieces: max(1, blockBytes / 4) elements (native/executor.cc's buildTasks).
      r.open = { selectTopk: t.selectTopk, sumPiece: Math.max(1, Math.floor(local.statisticsBlockBytes / 4)) };
      if (mode === 'recomputed') r.open.recomputeVariances = true;
      return false;
    });
  for (const { t, r } of streamed) r.cut = t.selectTopk >= 1 ? 0n : KEY_NONE;
  await selectCuts(
    streamed.filter(({ t }) => t.selectTopk > 0 && t.selectTopk < 1).map(({ t, r }) => ({ t, r, need: 0, prefix: 0n, remaining: 31 + r.indexBits })),
    run,
  );
  // A tensor that selects nothing (cut KEY_NONE) has sums of 0 (its t · 0 are 0 or not finite): no job.
  const summed = streamed.filter(({ r }) => r.cut !== KEY_NONE);
  const files = new InputFiles();
  const jobs = jobsOf(
    summed.map(({ t, r }) => ({ t, r, statParams: sceSumSquaresParams(r.models.length, r.cut, r.indexBits) })),
    'sce_sum_squares',
    files,
  );
  const { stats } = jobs.length > 0 ? await run({ inputs: files.paths, jobs }) : { stats: new Float64Array(0) };
  let at = 0;
  for (const { t, r } of streamed) {
    if (r.cut === KEY_NONE) {
      r.weights = sceWeights(new Array<number>(r.models.length).fill(0), t.count);
      continue;
    }
    r.weights = sceWeights(Array.from(stats.subarray(at, at + r.models.length)), t.count);
    at += r.models.length;
  }
  if (at !== stats.length) throw new Error(`internal: sce_sum_squares returned ${stats.length} numbers, expected ${at}`);
}
