/**
 * The engine's moments pass: for each pair of tensors (a, b) it returns, in f64, the nine numbers
 * of MOMENTS_LAYOUT. Jobs are built and results decoded here only (diff and recipes both use it).
 */
import type { TensorLocation } from '../model/checkpoint';
import { InputFiles } from './input-files';
import type { NativeJob } from './native';
import { nativeDtype } from '../format/dtypes';
import { runStatisticsPlan, StatisticsOptions } from './execute-plan';
import { checkMomentsLength, Moments, momentsAt } from './moments-layout';

export { MOMENTS_LAYOUT, MOMENTS_STRIDE, momentsAt, type Moments } from './moments-layout';

/** Two copies of one tensor, compared element by element (same element count). */
export interface TensorPair {
  a: TensorLocation;
  b: TensorLocation;
}

export function emptyMoments(): Moments {
  return { elements: 0, sumSqA: 0, sumSqB: 0, sumAB: 0, sumSqDiff: 0, sumAbsA: 0, sumAbsB: 0, sumAbsDiff: 0, maxAbsDiff: 0, nonFinite: 0 };
}

/** Adds `x` into `into` (f64 sums, max of maxima). */
export function addMoments(into: Moments, x: Moments): void {
  into.elements += x.elements;
  into.sumSqA += x.sumSqA;
  into.sumSqB += x.sumSqB;
  into.sumAB += x.sumAB;
  into.sumSqDiff += x.sumSqDiff;
  into.sumAbsA += x.sumAbsA;
  into.sumAbsB += x.sumAbsB;
  into.sumAbsDiff += x.sumAbsDiff;
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

/** The engine's flat result, one Moments per pair. */
export function decodeMoments(result: Float64Array, pairs: readonly TensorPair[]): Moments[] {
  checkMomentsLength(result, pairs.length);
  return pairs.map(({ a }, j) => momentsAt(result, j, a.elementCount));
}

/** One streaming pass over every pair (none: no pass), with progress like every other pass. */
export async function runMomentsPass(pairs: readonly TensorPair[], options: StatisticsOptions): Promise<Moments[]> {
  if (pairs.length === 0) return [];
  const { inputs, jobs } = momentsJobs(pairs);
  const result = await runStatisticsPlan({ inputs, jobs }, options);
  return decodeMoments(result.moments, pairs);
}
