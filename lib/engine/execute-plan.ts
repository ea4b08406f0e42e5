/** Runs plans on the native engine, turning byte counts into the progress every front door reports. */
import { resolveDevice, type ResolvedDevice } from './device';
import { abortError } from '../errors';
import { EngineOptions, parseDevice } from '../options';
import { loadNative, NativePlan, NativeResult, runPackedPlan } from './native';
import { packJobColumns } from './packed-jobs';
import { MergePlan } from './plan';

/**
 * How far a run is, as `onProgress` gets it: about every 100 ms while a pass of the engine runs, and
 * once with `bytesDone === bytesTotal` at the end of each pass; the last pass's 100% is the last call
 * before the run's promise settles (none comes after).
 */
export interface MergeProgress {
  /** 'statistics': a pass that only reads (moments, thresholds) before 'write', the pass that writes the output. */
  stage: 'statistics' | 'write';
  /** Bytes of this pass done: written (all outputs together, headers included), or read for a statistics pass. */
  bytesDone: number;
  /** Bytes of this pass in all. */
  bytesTotal: number;
  /** Tensors of this pass done (tensors are processed in order). */
  tensorsDone: number;
  /** Tensors of this pass in all. */
  tensorsTotal: number;
  /** Since the pass began. */
  seconds: number;
}

export interface ExecuteOptions {
  onProgress?: (p: MergeProgress) => void;
  signal?: AbortSignal;
}

/** What a writing run tells the caller besides progress. */
export interface WriteRunOptions extends ExecuteOptions {
  /** Once every output shard's space is reserved (engine/alongside.ts's `besideReserved`). */
  onReserved?: () => void;
}

/** A statistics pass: where it reads, how, and whom it tells. */
export interface StatisticsOptions extends ExecuteOptions {
  threads: number;
  blockBytes: number;
  direct: boolean;
}

/** The engine's choice for the writing runs' tensor-local jobs (NativePlan's `chunkedLocalBytes`); undefined: its default. Tests lower it. */
export const localJobReads: { chunkedLocalBytes: number | undefined } = { chunkedLocalBytes: undefined };

/**
 * Runs the plan; resolves to where it ran (and why on the CPU, when `auto` found no usable GPU).
 * `name` spells an option as the caller's front door does (`device` in the API, `--device` on the command line).
 */
export async function executeMergePlan(
  plan: MergePlan,
  engine: Required<Omit<EngineOptions, 'device'>> & Pick<EngineOptions, 'device'>,
  options: WriteRunOptions,
  name: (key: string) => string = (key) => key,
): Promise<ResolvedDevice> {
  const ran = resolveDevice(parseDevice(engine.device, name('device')), loadNative().info(), name('device'));
  const heads = plan.outputs.reduce((n, o) => n + o.head.length, 0);
  await runPackedPlan(
    {
      inputs: plan.inputs,
      outputs: plan.outputs,
      jobs: plan.packedJobs,
      threads: engine.threads,
      blockBytes: engine.blockBytes,
      direct: engine.direct,
      device: ran.device,
      ...(localJobReads.chunkedLocalBytes !== undefined && { chunkedLocalBytes: localJobReads.chunkedLocalBytes }),
    },
    {
      onProgress: progressOf('write', plan.packedJobs.work, heads, options.onProgress),
      signal: options.signal,
      onCoefficients: plan.openMoments && ((id, moments) => plan.openMoments!.answer(id, moments)),
      onReserved: options.onReserved,
    },
  );
  return ran;
}

/** The bytes the engine counts for a plan's progress (native/executor.cc's pieceWeight): headers, written bytes, and read bytes of a job that writes nothing. */
export function planWork(plan: Pick<MergePlan, 'outputs' | 'packedJobs'>): number {
  return plan.outputs.reduce((n, o) => n + o.head.length, 0) + plan.packedJobs.work.reduce((n, w) => n + w, 0);
}

/** Runs a plan that writes nothing (moments, histograms, L1 sums) on the CPU, reporting progress as stage 'statistics'. */
export async function runStatisticsPlan(plan: Pick<NativePlan, 'inputs' | 'jobs'>, options: StatisticsOptions): Promise<NativeResult> {
  if (options.signal?.aborted) throw abortError('the merge was aborted', options.signal);
  const jobs = packJobColumns(plan.jobs);
  return runPackedPlan(
    { inputs: plan.inputs, outputs: [], jobs, threads: options.threads, blockBytes: options.blockBytes, direct: options.direct },
    { onProgress: progressOf('statistics', jobs.work, 0, options.onProgress), signal: options.signal },
  );
}

/** The engine's (done, total) bytes as MergeProgress; jobs run in order, so the bytes done tell how many tensors are done (closely enough for a bar). */
function progressOf(
  stage: MergeProgress['stage'],
  work: Float64Array,
  heads: number,
  onProgress: ExecuteOptions['onProgress'],
): ((done: number, total: number) => unknown) | undefined {
  if (!onProgress) return undefined;
  const started = process.hrtime.bigint();
  const jobEnds = new Float64Array(work.length);
  let acc = heads;
  for (let j = 0; j < work.length; j++) jobEnds[j] = acc += work[j];
  return (done, total) => {
    let lo = 0;
    let hi = jobEnds.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (jobEnds[mid] <= done) lo = mid + 1;
      else hi = mid;
    }
    // The callback's value goes back to the engine's caller: an async callback's rejection fails the run (native.ts).
    return onProgress({
      stage,
      bytesDone: done,
      bytesTotal: total,
      tensorsDone: lo,
      tensorsTotal: work.length,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    });
  };
}
