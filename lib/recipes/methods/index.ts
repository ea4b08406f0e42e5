/** The merge methods weightmix runs (one file each, except the five sparse methods, which share sparse-task-arithmetic.ts) and the mergekit methods it refuses by name. */
import { WeightmixError } from '../../errors';
import { karcher } from './karcher';
import { linear } from './linear';
import { MergeMethod } from './method';
import { modelStock } from './model-stock';
import { multislerp } from './multislerp';
import { nuslerp } from './nuslerp';
import { nearswap } from './nearswap';
import { ram, ramplusTl } from './ram';
import { passthrough } from './passthrough';
import { slerp } from './slerp';
import { breadcrumbs, breadcrumbsTies, dareLinear, dareTies, ties } from './sparse-task-arithmetic';
import { taskArithmetic } from './task-arithmetic';
import { della, dellaLinear } from './della';
import { sce } from './sce';
import { arceeFusion } from './arcee-fusion';

export type { MergeMethod, MethodTensor, PairMoments, RowMoments, TensorCoefficients } from './method';
export { checkCoefficients } from './refusal-check';

export const METHODS: readonly MergeMethod[] = Object.freeze([
  linear,
  slerp,
  taskArithmetic,
  modelStock,
  passthrough,
  ties,
  dareTies,
  dareLinear,
  breadcrumbs,
  breadcrumbsTies,
  karcher,
  multislerp,
  nuslerp,
  nearswap,
  ram,
  ramplusTl,
  della,
  dellaLinear,
  sce,
  arceeFusion,
]);

/** mergekit methods weightmix refuses, each with its reason (docs/mergekit-parity.md lists them): none of mergekit a6e4028's; kept for methods mergekit adds later. */
export const REFUSED_METHODS: Readonly<Record<string, string>> = Object.freeze({});
export const NOT_YET_SUPPORTED: readonly string[] = Object.freeze(Object.keys(REFUSED_METHODS));

export function methodFor(name: string): MergeMethod {
  const m = METHODS.find((x) => x.name === name);
  if (m) return m;
  const supported = METHODS.map((x) => x.name).join(', ');
  if (Object.hasOwn(REFUSED_METHODS, name)) {
    throw new WeightmixError('UnsupportedRecipe', `merge_method ${name} is not supported: ${REFUSED_METHODS[name]} (weightmix runs ${supported})`);
  }
  throw new WeightmixError('UnsupportedRecipe', `merge_method ${JSON.stringify(name)} is unknown (weightmix runs ${supported})`);
}
