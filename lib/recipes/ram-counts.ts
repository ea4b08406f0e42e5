/**
 * ramplus_tl's counting pass: for each tensor, per model, the elements where its task vector passes
 * epsilon together with another model's (shared) and alone (unique), counted by the engine's
 * `ram_counts` statistic in one plan; λ_k follows (methods/ram.ts), so the write pass is one `ram` op.
 * A tensor whose sources fit `localStatistics.maxTensorBytes` skips the pass: its `ram` op leaves the λ
 * open and the engine counts the tensor it holds in memory (native/local_ram.h), the same counts and λ.
 */
import { InputFiles } from '../engine/input-files';
import type { NativeJob, NativePlan } from '../engine/native-plan';
import type { NativeResult } from '../engine/native';
import type { TensorRecipe } from '../engine/plan';
import { ramPlusLambda } from './methods/ram';
import { sourcesFitInMemory, type TensorSource } from './sparsify';

export interface RamPlusTensor {
  name: string;
  count: number;
  /** Recipe model indices: the base, then the models in the op's order. */
  models: number[];
  epsilon: number;
  r: number;
  alpha: number;
  source(model: number): TensorSource;
}

type RunPlan = (plan: Pick<NativePlan, 'inputs' | 'jobs'>) => Promise<NativeResult>;

/** Every tensor's λ per model (in `models` order after the base), from one statistics plan. */
export async function resolveRamPlus(tensors: readonly RamPlusTensor[], run: RunPlan): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  if (tensors.length === 0) return out;
  const files = new InputFiles();
  const jobs: NativeJob[] = tensors.map((t) => ({
    count: t.count,
    sources: t.models.map((m) => {
      const s = t.source(m);
      return files.source(s);
    }),
    dests: [],
    stat: 'ram_counts',
    statParams: [0, t.epsilon, ...t.models.slice(1).flatMap((_, k) => [k + 1, 1])],
  }));
  const { stats } = await run({ inputs: files.paths, jobs });
  let at = 0;
  for (const t of tensors) {
    const n = t.models.length - 1;
    const shared = Array.from(stats.subarray(at, at + n));
    const unique = Array.from(stats.subarray(at + n, at + 2 * n));
    at += 2 * n;
    out.set(
      t.name,
      shared.map((s, k) => ramPlusLambda(s, unique[k], t.r, t.alpha, t.epsilon)),
    );
  }
  if (at !== stats.length) throw new Error(`internal: ram_counts returned ${stats.length} numbers, expected ${at}`);
  return out;
}

/** Counts `tensors` and writes their λ into their `ram` recipes (w = [epsilon, λ…]), or leaves them open for the engine where the tensor fits in memory. */
export async function setRamPlusLambdas(recipes: Map<string, TensorRecipe>, tensors: readonly RamPlusTensor[], run: RunPlan): Promise<void> {
  const counted: RamPlusTensor[] = [];
  for (const t of tensors) {
    if (sourcesFitInMemory(t.count, t.models, t.source)) recipes.get(t.name)!.ramPlus = { r: t.r, alpha: t.alpha, epsilon: t.epsilon };
    else counted.push(t);
  }
  for (const [name, lambda] of await resolveRamPlus(counted, run)) recipes.get(name)!.w.splice(1, lambda.length, ...lambda);
}
