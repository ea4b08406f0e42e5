/**
 * della's L1 rescale (mergekit's rescaled_masked_tensor with `rescale: true`): per tensor and model,
 * Σ|δ| over the MAGPRUNE-kept elements against Σ|δ| over all, from the engine's `della_l1` statistic
 * (exact integer sums, independent of threads and pieces) in one plan before the write pass; the
 * factor (sparsify.ts's l1Scale, as TIES/DARE use it) goes into the tensor's `della` recipe.
 */
import { InputFiles } from '../engine/input-files';
import type { NativeJob, NativePlan } from '../engine/native-plan';
import type { NativeResult } from '../engine/native';
import type { TensorRecipe } from '../engine/plan';
import { dellaStatParams } from '../engine/della-params';
import { l1Scale, TensorSource } from './sparsify';

export interface DellaRescaleTensor {
  name: string;
  count: number;
  source(model: number): TensorSource;
}

type RunPlan = (plan: Pick<NativePlan, 'inputs' | 'jobs'>) => Promise<NativeResult>;

/** Whether model k's mask thins anything (mergekit rescales only then: density ≥ 1 and ≤ 0 return early). */
const thins = (density: number) => density > 0 && density < 1;

/** Runs the statistic for `tensors` and writes each thinned model's factor into its recipe's `della.models[k].scale`. */
export async function setDellaScales(recipes: Map<string, TensorRecipe>, tensors: readonly DellaRescaleTensor[], run: RunPlan): Promise<void> {
  if (tensors.length === 0) return;
  const files = new InputFiles();
  const jobs: NativeJob[] = [];
  for (const t of tensors) {
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
  for (const t of tensors) {
    for (const m of recipes.get(t.name)!.della!.models.filter((x) => thins(x.density))) {
      m.scale = Math.fround(l1Scale(stats[at], stats[at + 1]));
      at += 2;
    }
  }
  if (at !== stats.length) throw new Error(`internal: della_l1 returned ${stats.length} numbers, expected ${at}`);
}
