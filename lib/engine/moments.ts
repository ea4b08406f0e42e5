/**
 * The engine's moments pass: for each pair of tensors (a, b) it returns, in f64, the six numbers
 * of MOMENTS_LAYOUT. Jobs are built and results decoded here only (diff and recipes both use it).
 */
import type { TensorLocation } from '../model/checkpoint';
import { InputFiles } from './input-files';
import type { NativeJob } from './native';
import { nativeDtype } from '../format/dtypes';
import { runStatisticsPlan, StatisticsOptions } from './execute-plan';

/** Where each of a job's six numbers sits in the engine's result (native/executor.cc writes them in this order). */
export const MOMENTS_LAYOUT = Object.freeze({ sumSqA: 0, sumSqB: 1, sumAB: 2, sumSqDiff: 3, maxAbsDiff: 4, nonFinite: 5 });
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
  /** max |b−a| (0 when no finite pair) */
  maxAbsDiff: number;
  /** Pairs where a or b is NaN or ±Inf. */
  nonFinite: number;
}

/** Two copies of one tensor, compared element by element (same element count). */
export interface TensorPair {
  a: TensorLocation;
  b: TensorLocation;
}

export function emptyMoments(): Moments {
  return { elements: 0, sumSqA: 0, sumSqB: 0, sumAB: 0, sumSqDiff: 0, maxAbsDiff: 0, nonFinite: 0 };
}

/** Adds `x` into `into` (f64 sums, max of maxima). */
export function addMoments(into: Moments, x: Moments): void {
  into.elements += x.elements;
  into.sumSqA += x.sumSqA;
  into.sumSqB += x.sumSqB;
  into.sumAB += x.sumAB;
  into.sumSqDiff += x.sumSqDiff;
  into.maxAbsDiff = Math.max(into.maxAbsDiff, x.maxAbsDiff);
  into.nonFinite += x.nonFinite;
}

/** One moments job per pair, in order, and the files they read. */
export function momentsJobs(pairs: readonly TensorPair[]): { inputs: string[]; jobs: NativeJob[] } {
  const inputFiles = new InputFiles();
  const jobs = pairs.map(({ a, b }): NativeJob => ({
    count: a.elementCount,
    sources: [
      { input: inputFiles.indexOf(a.file), offset: a.offset, dtype: nativeDtype(a.dtype) },
      { input: inputFiles.indexOf(b.file), offset: b.offset, dtype: nativeDtype(b.dtype) },
    ],
    dests: [],
    moments: true,
  }));
  return { inputs: inputFiles.paths, jobs };
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
    maxAbsDiff: result[o + L.maxAbsDiff],
    nonFinite: result[o + L.nonFinite],
  };
}

/** The engine's flat result, one Moments per pair. */
export function decodeMoments(result: Float64Array, pairs: readonly TensorPair[]): Moments[] {
  if (result.length !== pairs.length * MOMENTS_STRIDE) throw new Error(`internal: the engine returned ${result.length} moments for ${pairs.length} jobs`);
  return pairs.map(({ a }, j) => momentsAt(result, j, a.elementCount));
}

/** One streaming pass over every pair (none: no pass), with progress like every other pass. */
export async function runMomentsPass(pairs: readonly TensorPair[], options: StatisticsOptions): Promise<Moments[]> {
  if (pairs.length === 0) return [];
  const { inputs, jobs } = momentsJobs(pairs);
  const result = await runStatisticsPlan({ inputs, jobs }, options);
  return decodeMoments(result.moments, pairs);
}
