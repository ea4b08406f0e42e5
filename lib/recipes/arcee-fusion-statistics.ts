/**
 * Arcee Fusion's threshold: median + 1.5·IQR of the importance scores (native/kernels/arcee_fusion.h),
 * mergekit's approximate_quantiles without its sampling: the order statistics at ⌊q·(n − 1)⌋ for q =
 * 0.25, 0.5, 0.75 over every element (mergekit sorts all of a tensor up to 10⁶ elements, the same
 * statistics there; above, it sorts 10⁶ elements drawn at random). Exact, by radix selection over the
 * importance's 32-bit order keys: 12-bit digits, three passes over the tensors (all tensors and the three
 * quantiles in each pass); the threshold is computed in f32 steps as mergekit's f32 tensors do. The
 * first pass also returns each row's KL, which the later passes and the write plan hand back to the
 * engine (the recipe's `rowDivergence`), so that the exps and logs are taken once per element. With
 * `local`, a tensor whose sources (and 8 bytes per row of KLs, 4 per element of order keys) fit
 * `localStatistics.maxTensorBytes` leaves its threshold open for the engine, which finds the same order
 * statistics from the tensor read once (native/local_arcee.h: it keeps the keys of tensors up to 2^16 elements, and
 * counts larger ones' as it makes them): the same threshold, so the same bytes; so does one whose sources and row KLs
 * alone fit the engine's local pool (1.5 × that), its keys never kept.
 */
import { InputFiles } from '../engine/input-files';
import type { NativeJob, NativePlan } from '../engine/native-plan';
import type { NativeResult } from '../engine/native';
import type { TensorRecipe } from '../engine/plan';
import { ArceeFusionRecipe, arceeHistogramParams } from '../engine/arcee-fusion-params';
import { NATIVE_DTYPE_BYTES } from '../format/dtypes';
import { fitsLocalPool, localStatistics, MAX_HISTOGRAM_JOBS, TensorSource } from './sparsify';

export interface ArceeFusionTensor {
  name: string;
  count: number;
  source(model: number): TensorSource;
}

type RunPlan = (plan: Pick<NativePlan, 'inputs' | 'jobs'>) => Promise<NativeResult>;

const KEY_BITS = 32;
const DIGIT_BITS = 12;
export const QUANTILES = [0.25, 0.5, 0.75] as const;

/** The f32 value of an order key (arceeOrderKey's inverse). */
export function importanceOfKey(key: number): number {
  const bits = key >= 0x80000000 ? key - 0x80000000 : ~key >>> 0;
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits);
  return view.getFloat32(0);
}

/** mergekit's calculate_dynamic_threshold from its three quantiles, in f32 steps. */
export function fusionThreshold(q1: number, median: number, q3: number): number {
  const f = Math.fround;
  return f(median + f(1.5 * f(q3 - q1)));
}

/**
 * How the engine resolves this tensor's threshold from memory: 'stored' when its sources, row KLs and order keys fit the
 * local budget (the engine keeps the keys of a tensor up to 2^16 elements), 'recomputed' when its sources and row KLs
 * alone fit the local pool (no keys kept: the engine's passes make them again from the sources and the row KLs, instead of
 * streaming passes that re-read the files), else null.
 */
function localMode(t: ArceeFusionTensor, r: ArceeFusionRecipe): 'stored' | 'recomputed' | null {
  if (t.count === 0) return null;
  const bytes = [r.base, r.model].reduce((n, m) => n + t.count * NATIVE_DTYPE_BYTES[t.source(m).dtype], 8 * (t.count / r.rowLength));
  if (bytes + 4 * t.count <= localStatistics.maxTensorBytes) return 'stored';
  return fitsLocalPool(bytes) ? 'recomputed' : null;
}

/**
 * Thresholds for every arcee_fusion tensor, written into its recipe's `arceeFusion.threshold` (or left open
 * for the engine, `arceeFusion.open`, with `local`).
 */
export async function setArceeFusionThresholds(
  recipes: Map<string, TensorRecipe>,
  tensors: readonly ArceeFusionTensor[],
  run: RunPlan,
  options: { local?: boolean } = {},
): Promise<void> {
  const streamed = tensors.filter((t) => {
    const r = recipes.get(t.name)!.arceeFusion!;
    const mode = options.local === true ? localMode(t, r) : null;
    if (mode !== null) r.open = true;
    if (mode === 'recomputed') r.recomputeKeys = true;
    return r.open !== true;
  });
  if (streamed.length === 0) return;
  const state = streamed.map((t) => ({
    t,
    r: recipes.get(t.name)!.arceeFusion!,
    // 0-based ascending ranks still to skip within the chosen prefix, and the prefixes, per quantile.
    rank: QUANTILES.map((q) => Math.floor(q * (t.count - 1))),
    prefix: [0, 0, 0],
  }));
  for (let remaining = KEY_BITS; remaining > 0;) {
    const bits = Math.min(DIGIT_BITS, remaining);
    const shift = remaining - bits;
    for (let at = 0; at < state.length; at += MAX_HISTOGRAM_JOBS) {
      const batch = state.slice(at, at + MAX_HISTOGRAM_JOBS);
      const files = new InputFiles();
      const jobs: NativeJob[] = batch.map(({ t, r, prefix }) => ({
        count: t.count,
        sources: [r.base, r.model].map((m) => {
          const s = t.source(m);
          return files.source(s);
        }),
        dests: [],
        stat: 'arcee_histogram',
        statParams: arceeHistogramParams(r.rowLength, shift, bits, prefix, r.rowDivergence),
      }));
      const { stats } = await run({ inputs: files.paths, jobs });
      // Each job's counts, then its row KLs where the job was not given them (the first pass).
      const size = 2 ** bits;
      const per = 3 * size;
      const kls = batch.map(({ t, r }) => (!r.rowDivergence?.length ? t.count / r.rowLength : 0));
      const expected = batch.length * per + kls.reduce((a, b) => a + b, 0);
      if (stats.length !== expected) throw new Error(`internal: arcee_histogram returned ${stats.length} numbers, expected ${expected}`);
      let offset = 0;
      batch.forEach((s, k) => {
        for (let q = 0; q < 3; q++) {
          const hist = stats.subarray(offset + q * size, offset + (q + 1) * size);
          let b = 0;
          for (; b < size - 1 && hist[b] <= s.rank[q]; b++) s.rank[q] -= hist[b];
          s.prefix[q] = s.prefix[q] * size + b;
        }
        offset += per;
        if (kls[k] > 0) s.r.rowDivergence = stats.slice(offset, offset + kls[k]);
        offset += kls[k];
      });
    }
    remaining = shift;
  }
  for (const { r, prefix } of state) {
    const [q1, median, q3] = prefix.map(importanceOfKey);
    r.threshold = fusionThreshold(q1, median, q3);
  }
}
