/** The engine's nine moments of a pair of tensors: their order in its flat result, and their decoding (no engine call here). */

/** Where each of a job's nine numbers sits in the engine's result (native/kernels/kernels.h's flattenMoments writes them in this order). */
export const MOMENTS_LAYOUT = Object.freeze({
  sumSqA: 0,
  sumSqB: 1,
  sumAB: 2,
  sumSqDiff: 3,
  maxAbsDiff: 4,
  nonFinite: 5,
  sumAbsA: 6,
  sumAbsB: 7,
  sumAbsDiff: 8,
});
/** Numbers per moments job in the engine's result. */
export const MOMENTS_STRIDE = Object.keys(MOMENTS_LAYOUT).length;

/** The sums of a set of element pairs (sums run over finite pairs only), or their sums over several sets. */
export interface Moments {
  /** Element pairs compared (finite and non-finite). */
  elements: number;
  /** Σa² */
  sumSqA: number;
  /** Σb² */
  sumSqB: number;
  /** Σab */
  sumAB: number;
  /** Σ(b−a)² */
  sumSqDiff: number;
  /** Σ|a| */
  sumAbsA: number;
  /** Σ|b| */
  sumAbsB: number;
  /** Σ|b−a| */
  sumAbsDiff: number;
  /** max |b−a| (0 when no finite pair) */
  maxAbsDiff: number;
  /** Pairs where a or b is NaN or ±Inf. */
  nonFinite: number;
}

/** Throws unless the engine returned MOMENTS_STRIDE numbers for each of `count` pairs (an addon built for another weightmix returns another count). */
export function checkMomentsLength(result: Float64Array, count: number): void {
  if (result.length === count * MOMENTS_STRIDE) return;
  const hint =
    count > 0 && result.length % count === 0
      ? ` (${result.length / count} per pair: a native addon built for another weightmix version? rebuild it with npx weightmix-build)`
      : '';
  throw new Error(`internal: the engine returned ${result.length} moments for ${count} pairs, ${MOMENTS_STRIDE} each expected${hint}`);
}

/** The `j`-th job's Moments in the engine's flat result (`elements` pairs compared). */
export function momentsAt(result: Float64Array, j: number, elements: number): Moments {
  const L = MOMENTS_LAYOUT;
  const o = MOMENTS_STRIDE * j;
  return {
    elements,
    sumSqA: result[o + L.sumSqA],
    sumSqB: result[o + L.sumSqB],
    sumAB: result[o + L.sumAB],
    sumSqDiff: result[o + L.sumSqDiff],
    sumAbsA: result[o + L.sumAbsA],
    sumAbsB: result[o + L.sumAbsB],
    sumAbsDiff: result[o + L.sumAbsDiff],
    maxAbsDiff: result[o + L.maxAbsDiff],
    nonFinite: result[o + L.nonFinite],
  };
}
