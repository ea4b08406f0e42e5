/**
 * mergekit `nearswap` (alchemonaut's NearSwap): the base model's value where the other model is far
 * from it, the other's where it is near: per element w = clamp(t / max(|base − θ|, 1e-6), 0, 1) and
 * out = w·θ + (1 − w)·base, on the engine's `nearswap` op (f64, one rounding). Parameters (mergekit's):
 * `t` (required). Exactly one model besides the base.
 */
import { numberParameter } from '../recipe-params';
import { baseAndOther, MergeMethod, TensorCoefficients, validateOneBesideBase } from './method';

export const nearswap: MergeMethod = {
  name: 'nearswap',
  parameters: ['t'],
  modelParameters: [],
  needsBase: '',
  loneSourceCopied: true,
  validate: validateOneBesideBase('nearswap'),
  coefficients(t): TensorCoefficients {
    const pair = baseAndOther(t, 'nearswap');
    if ('op' in pair) return pair;
    return { op: 'nearswap', base: pair.base, model: pair.other, t: numberParameter(t.scope, 't', undefined) };
  },
};
