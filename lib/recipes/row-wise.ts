/**
 * The row-wise forms' statistics pass (mergekit's nuslerp with nuslerp_flatten: false, model_stock
 * with filter_wise: true): per-row moments of the pairs each tensor's decision asks for, one
 * `row_moments` job per pair, in one plan; the method then turns them into per-row coefficients of
 * the tensor's `row_linear` recipe.
 */
import { InputFiles } from '../engine/input-files';
import type { NativeJob, NativePlan } from '../engine/native-plan';
import type { NativeResult } from '../engine/native';
import type { TensorRecipe } from '../engine/plan';
import type { PairMoments, RowMoments } from './methods';
import type { TensorSource } from './sparsify';

export interface RowWiseTensor {
  name: string;
  count: number;
  rowLength: number;
  /** The groups are the vectors along dim 0 (`rowLength` of them, interleaved), not rows. */
  interleaved: boolean;
  /** Recipe model pairs whose per-row moments `weights` reads. */
  pairs: [number, number][];
  /** Rows × models coefficients from the per-row moments. */
  weights(rows: RowMoments): number[][];
  source(model: number): TensorSource;
}

type RunPlan = (plan: Pick<NativePlan, 'inputs' | 'jobs'>) => Promise<NativeResult>;

/** Runs the pass for every tensor and writes each one's coefficients into its `row_linear` recipe. */
export async function setRowWeights(recipes: Map<string, TensorRecipe>, tensors: readonly RowWiseTensor[], run: RunPlan): Promise<void> {
  if (tensors.length === 0) return;
  const files = new InputFiles();
  const jobs: NativeJob[] = tensors.flatMap((t) =>
    t.pairs.map(([a, b]): NativeJob => {
      return {
        count: t.count,
        sources: [files.source(t.source(a)), files.source(t.source(b))],
        dests: [],
        stat: 'row_moments',
        statParams: [t.interleaved ? -t.rowLength : t.rowLength],
      };
    }),
  );
  const { stats } = await run({ inputs: files.paths, jobs });
  let at = 0;
  for (const t of tensors) {
    const rows = t.interleaved ? t.rowLength : t.count / t.rowLength;
    const byPair = new Map<string, PairMoments[]>();
    for (const [a, b] of t.pairs) {
      const m: PairMoments[] = [];
      for (let r = 0; r < rows; r++, at += 4) {
        m.push({
          elements: t.rowLength,
          sumSqA: stats[at],
          sumSqB: stats[at + 1],
          sumAB: stats[at + 2],
          sumSqDiff: stats[at + 3],
          maxAbsDiff: 0,
          nonFinite: 0,
        });
      }
      byPair.set(`${a},${b}`, m);
    }
    const w = t.weights((a, b) => {
      const m = byPair.get(`${a},${b}`);
      if (!m) throw new Error(`internal: no row moments for ${t.name} (${a}, ${b})`);
      return m;
    });
    const flat = recipes.get(t.name)!.rows!.w;
    for (const row of w) for (const x of row) flat.push(x);
  }
  if (at !== stats.length) throw new Error(`internal: row_moments returned ${stats.length} numbers, expected ${at}`);
}
