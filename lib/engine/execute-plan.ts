/** Runs a planned merge on the native engine, turning byte counts into the progress every front door reports. */
import { resolveDevice, type ResolvedDevice } from './device';
import { EngineOptions, parseDevice } from '../options';
import { loadNative, NATIVE_DTYPE_BYTES, runPlan } from './native';
import { MergePlan } from './plan';

/**
 * How far a merge is, as `onProgress` gets it: about every 100 ms while the engine writes, and once
 * with `bytesDone === bytesTotal` before the run's promise settles (none after).
 */
export interface MergeProgress {
  /** Output bytes written so far, all outputs together (headers included). */
  bytesDone: number;
  /** Output bytes to write. */
  bytesTotal: number;
  /** Tensors whose bytes are all written (tensors are written in output order). */
  tensorsDone: number;
  /** Tensors to write, all outputs together. */
  tensorsTotal: number;
  /** Seconds since the engine started. */
  seconds: number;
}

export interface ExecuteOptions {
  onProgress?: (p: MergeProgress) => void;
  signal?: AbortSignal;
}

/**
 * Runs the plan; resolves to where it ran (and why on the CPU, when `auto` found no usable GPU).
 * `name` spells an option as the caller's front door does (`device` in the API, `--device` on the command line).
 */
export async function executeMergePlan(
  plan: MergePlan,
  engine: Required<Omit<EngineOptions, 'device'>> & Pick<EngineOptions, 'device'>,
  options: ExecuteOptions,
  name: (key: string) => string = (key) => key,
): Promise<ResolvedDevice> {
  const started = process.hrtime.bigint();
  const ran = resolveDevice(parseDevice(engine.device, name('device')), loadNative().info(), name('device'));
  // Jobs are in output order: the bytes done tell how many tensors are done (closely enough for a bar).
  const jobEnds: number[] = [];
  let acc = plan.outputs.reduce((n, o) => n + o.head.length, 0);
  for (const j of plan.jobs) {
    acc += j.dests.reduce((n, d) => n + j.count * NATIVE_DTYPE_BYTES[d.dtype], 0);
    jobEnds.push(acc);
  }
  const report = (done: number, total: number) => {
    let lo = 0;
    let hi = jobEnds.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (jobEnds[mid] <= done) lo = mid + 1;
      else hi = mid;
    }
    options.onProgress?.({ bytesDone: done, bytesTotal: total, tensorsDone: lo, tensorsTotal: plan.jobs.length, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
  };
  await runPlan(
    { inputs: plan.inputs, outputs: plan.outputs, jobs: plan.jobs, threads: engine.threads, blockBytes: engine.blockBytes, direct: engine.direct, device: ran.device },
    { onProgress: options.onProgress ? report : undefined, signal: options.signal },
  );
  return ran;
}
