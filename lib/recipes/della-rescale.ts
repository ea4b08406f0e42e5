/**
 * della's L1 rescale (mergekit's rescaled_masked_tensor with `rescale: true`): per tensor and model,
 * Σ|δ| over the MAGPRUNE-kept elements against Σ|δ| over all. A tensor whose sources fit
 * `localStatistics.maxTensorBytes` leaves its factors open: the engine reads it once, computes each
 * row's mask once for the sums and the merge, and derives the factor with this file's arithmetic
 * (native/local_job.h's resolveLocalDella). Larger tensors take the streaming fallback: the engine's
 * `della_l1` statistic (exact integer sums, independent of threads and pieces) in one plan before the
 * write pass; the factor (sparsify.ts's l1Scale, as TIES/DARE use it) goes into the tensor's `della` recipe.
 */
import { InputFiles } from '../engine/input-files';
import type { NativeJob, NativePlan } from '../engine/native-plan';
import type { NativeResult } from '../engine/native';
import type { TensorRecipe } from '../engine/plan';
import { dellaStatParams } from '../engine/della-params';
import { l1Scale, sourcesFitInMemory, TensorSource } from './sparsify';

export interface DellaRescaleTensor {
  name: string;
  count: number;
  source(model: number): TensorSource;
}

type RunPlan = (plan: Pick<NativePlan, 'inputs' | 'jobs'>) => Promise<NativeResult>;

/** Whether model k's mask thins anything (mergekit rescales only then: density ≥ 1 and ≤ 0 return early). */
const thins = (density: number) => density > 0 && density < 1;

/**
 * Writes each thinned model's factor into its recipe's `della.models[k].scale`, or marks it `open` where the
 * tensor fits in memory; runs the statistic for the others.
 */
export async function setDellaScales(recipes: Map<string, TensorRecipe>, tensors: readonly DellaRescaleTensor[], run: RunPlan): Promise<void> {
  const streamed: DellaRescaleTensor[] = [];
  for (const t of tensors) {
    const d = recipes.get(t.name)!.della!;
    if (!sourcesFitInMemory(t.count, [d.base, ...d.models.map((m) => m.model)], t.source)) streamed.push(t);
    else for (const m of d.models.filter((x) => thins(x.density))) m.open = true;
  }
  if (streamed.length === 0) return;
  const files = new InputFiles();
  const jobs: NativeJob[] = [];
  for (const t of streamed) {
    const d = recipes.get(t.name)!.della!;
    for (const m of d.models.filter((x) => thins(x.density))) {
      jobs.push({
        count: t.count,
        sources: [files.source(t.source(d.base)), files.source(t.source(m.model))],
        dests: [],
        stat: 'della_l1',
        statParams: dellaStatParams(d.rows, m),
      });
    }
  }
  if (jobs.length === 0) return;
  const { stats } = await run({ inputs: files.paths, jobs });
  let at = 0;
  for (const t of streamed) {
    for (const m of recipes.get(t.name)!.della!.models.filter((x) => thins(x.density))) {
      m.scale = Math.fround(l1Scale(stats[at], stats[at + 1]));
      at += 2;
    }
  }
  if (at !== stats.length) throw new Error(`internal: della_l1 returned ${stats.length} numbers, expected ${at}`);
}
