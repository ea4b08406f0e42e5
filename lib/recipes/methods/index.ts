/** The merge methods weightmix runs (one file each, except the five sparse methods, which share sparse-task-arithmetic.ts) and the mergekit methods it refuses by name. */
import { WeightmixError } from '../../errors';
import { linear } from './linear';
import { MergeMethod } from './method';
import { modelStock } from './model-stock';
import { passthrough } from './passthrough';
import { slerp } from './slerp';
import { breadcrumbs, breadcrumbsTies, dareLinear, dareTies, ties } from './sparse-task-arithmetic';
import { taskArithmetic } from './task-arithmetic';

export type { MergeMethod, MethodTensor, PairMoments, TensorCoefficients } from './method';

export const METHODS: readonly MergeMethod[] = Object.freeze([linear, slerp, taskArithmetic, modelStock, passthrough, ties, dareTies, dareLinear, breadcrumbs, breadcrumbsTies]);

/** mergekit methods that need per-element work the engine does not have yet (sparsification, consensus, …). */
export const NOT_YET_SUPPORTED: readonly string[] = Object.freeze([
  'della',
  'della_linear',
  'sce',
  'nuslerp',
  'multislerp',
  'karcher',
  'nearswap',
  'arcee_fusion',
]);

export function methodFor(name: string): MergeMethod {
  const m = METHODS.find((x) => x.name === name);
  if (m) return m;
  const supported = METHODS.map((x) => x.name).join(', ');
  if (NOT_YET_SUPPORTED.includes(name)) {
    throw new WeightmixError('UnsupportedRecipe', `merge_method ${name} is not supported yet (weightmix runs ${supported})`);
  }
  throw new WeightmixError('UnsupportedRecipe', `merge_method ${JSON.stringify(name)} is unknown (weightmix runs ${supported})`);
}
