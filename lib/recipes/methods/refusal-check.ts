/**
 * A method's coefficients computed for their refusals alone, on stand-in moments: for a tensor another part of a --part job
 * writes (this part computes none of its moments), or an empty one. A recipe that one tensor makes invalid (weights summing to 0
 * under a filter, a tensor in three models for nuslerp) is then refused by every part before any of them writes.
 */
import type { MergeMethod, MethodTensor, PairMoments } from './method';

/** The tensor's models as orthonormal unit vectors: no pair is parallel, antipodal or zero, so no data-dependent refusal or notice. */
function standInMoments(a: number, b: number): PairMoments {
  const same = a === b;
  return { elements: 1, sumSqA: 1, sumSqB: 1, sumAB: same ? 1 : 0, sumSqDiff: same ? 0 : 2, maxAbsDiff: same ? 0 : 1, nonFinite: 0 };
}

/** Runs `method`'s coefficients on `t` with stand-in moments and no notices; throws what the method refuses. */
export function checkCoefficients(method: MergeMethod, t: Omit<MethodTensor, 'moments' | 'notice'>): void {
  method.coefficients({ ...t, moments: standInMoments, notice: () => {} });
}
