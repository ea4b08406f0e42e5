/**
 * mergekit `slerp` of the base model (t = 0) and one other (t = 1): the angle comes from normalized
 * copies, the coefficients apply to the unnormalized tensors, and nearly parallel tensors
 * (|cos| > 0.9995) fall back to lerp. The angle is the moments pass's Σab / (‖a‖·‖b‖).
 */
import { WeightmixError } from '../../errors';
import { numberParameter } from '../recipe-params';
import { baseOf, loneSource, linearOrCopy, MergeMethod, PairMoments } from './method';

export const DOT_THRESHOLD = 0.9995;
const EPS = 1e-8;

/** The two coefficients (on a, on b) mergekit's slerp applies for these moments. */
export function slerpCoefficients(t: number, m: PairMoments): [number, number] {
  const na = Math.sqrt(m.sumSqA);
  const nb = Math.sqrt(m.sumSqB);
  const dot = m.sumAB / ((na > EPS ? na : 1) * (nb > EPS ? nb : 1));
  if (Math.abs(dot) > DOT_THRESHOLD) return [1 - t, t];
  const theta0 = Math.acos(dot);
  const sin0 = Math.sin(theta0);
  const thetaT = theta0 * t;
  return [Math.sin(theta0 - thetaT) / sin0, Math.sin(thetaT) / sin0];
}

export const slerp: MergeMethod = {
  name: 'slerp',
  resultInBaseDtype: true,
  parameters: ['t'],
  modelParameters: [],
  needsBase: 'the t = 0 end',
  loneSourceCopied: true,
  validate(recipe) {
    recipe.slices.forEach((s, i) => {
      if (loneSource(recipe, s)) return;
      const models = new Set([...s.sources.map((x) => x.model), baseOf(recipe, s)]);
      const where = recipe.slices.length > 1 ? `slices[${i}]` : 'the recipe';
      if (models.size !== 2) throw new WeightmixError('InvalidRecipe', `slerp merges exactly two models, ${where} names ${models.size}`);
    });
  },
  momentPairs(t) {
    if (t.models.length !== 2) return [];
    const other = t.models.find((m) => m !== t.base)!;
    return [[t.base!, other]];
  },
  linearFromMoments: () => true,
  coefficients(t) {
    if (t.models.length === 1) return { op: 'copy', model: t.models[0] };
    if (t.base === null || !t.models.includes(t.base)) throw new WeightmixError('InvalidRecipe', `slerp: tensor ${t.name} does not come from the base model`);
    const other = t.models.find((m) => m !== t.base)!;
    const lambda = numberParameter(t.scope, 't', undefined);
    const [s0, s1] = slerpCoefficients(lambda, t.moments(t.base, other));
    return linearOrCopy([t.base, other], [s0, s1]);
  },
};
