/** The addon's typed surface, in one place: load it once, run plans with progress and abort. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { abortError, WeightmixError } from '../errors';
import { callGuarded } from '../api/guarded-callbacks';
import type { WeightmixErrorCode } from '../error-codes';
import { currentPlatform, loadAddon, LoadedAddon } from './native-loader';
import { packJobColumns, PackedJobs } from './packed-jobs';
import { jsonTablesOfAddon, NativeJsonTablesAddon, useNativeJsonTables } from '../format/json-tables';

import type { NativeDtype } from '../format/dtypes';
import type { NativeJob, NativePlan } from './native-plan';

// The plan's types live beside its packing (engine/native-plan.ts); re-exported as the addon's surface.
export type { NativeDtype, NativeOp, NativeSource, NativeDest, NativeJob, NativeOutput, NativePlan } from './native-plan';

/** What a native run returns. */
export interface NativeResult {
  /** Bytes written, all outputs together. */
  bytesWritten: number;
  /** Output files flushed to stable storage as each was completed, while the run went on (native/output_flusher.h); 0 on tmpfs. Absent with an addon older than it. */
  flushedEarly?: number;
  /** Nine numbers per job (MOMENTS_LAYOUT): Σa², Σb², Σab, Σ(b−a)², max|b−a|, non-finite pairs, Σ|a|, Σ|b|, Σ|b−a|. */
  moments: Float64Array;
  /** The statistics jobs' results, in job order. */
  stats: Float64Array;
}

/** How the binary was built (native/build_info.cc). */
export interface NativeBuildInfo {
  /** The build system that compiled it. */
  system: 'cmake-js' | 'node-gyp';
  /** The compiler and its version. */
  compiler: string;
  /** When it was compiled. */
  date: string;
  /** The Node-API version it was compiled against. */
  napiVersion: number;
  /** With the CUDA kernels compiled in (not an emulation build): nvcc's version and the architectures. */
  cudaVersion?: string;
  /** The CUDA architectures compiled in. */
  cudaArchitectures?: string;
}

/** What the addon found on this machine. */
export interface NativeInfo {
  /** The CPU kernels in use: 'avx2+fma+f16c+avx512' (AVX-512F/DQ/BW/VL too), 'avx2+fma+f16c' or 'scalar'. */
  simd: string;
  /** How the binary was built. */
  build: NativeBuildInfo;
  /** Hardware threads. */
  hardwareThreads: number;
  /** Whether this build has CUDA kernels. */
  cudaCompiled: boolean;
  /** Present when GPU 0 is usable. */
  cudaDevices?: { name: string; memoryBytes: number; computeCapability: string }[];
  /** Why no GPU can be used (one line), when none can. */
  cudaUnavailable?: string;
  /** Why no GPU can be used, as a kind. */
  cudaUnavailableKind?: 'not-compiled' | 'no-driver' | 'no-device' | 'unsupported' | 'out-of-memory' | 'error';
}

/** Arguments of `runKernelForTest` (the kernel tests' direct entry to one kernel). */
export interface KernelTestArgs {
  /** Source element buffers. */
  srcs: Buffer[];
  /** Their element types. */
  types: NativeDtype[];
  /** The result buffer. */
  out?: Buffer;
  /** Its element type. */
  outType?: NativeDtype;
  /** The op's weights. */
  w?: number[];
  /** Elements. */
  n: number;
  /** The SIMD kernel (true) or the scalar one. */
  simd: boolean;
}

/** What crosses into the addon: the plan with its jobs packed (engine/packed-jobs.ts). */
export type PackedNativePlan = Omit<NativePlan, 'jobs'> & { jobs: Float64Array };

/** The compiled addon, as `loadNative` returns it. Most callers need only `info()`. */
export interface NativeAddon {
  /** Starts a plan on a thread of its own; progress and the outcome arrive in that order on the main thread. */
  execute(
    plan: PackedNativePlan,
    onProgress?: (done: number, total: number) => void,
    onCoefficients?: (id: number, moments: Float64Array) => number[],
    onReserved?: () => void,
  ): { promise: Promise<NativeResult>; cancel(): void };
  /** What the addon found on this machine (SIMD, GPUs). */
  info(): NativeInfo;
  /** Runs one kernel over buffers (tests only). */
  runKernelForTest(op: string, args: KernelTestArgs): unknown;
  /** Tests: the packed jobs as the executor decoded them (every field, w as float32). */
  decodeJobsForTest(jobs: Float64Array): (Required<Omit<NativeJob, 'stat'>> & Pick<NativeJob, 'stat'>)[];
}

/** The addon's function behind preferHugePageHeap (native/process_heap.h), absent in older addons: not part of the public NativeAddon. */
interface HeapAddon {
  preferHugePageHeap?(bytes: number): boolean;
}

let cached: { addon: NativeAddon; loaded: LoadedAddon } | undefined;

function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'native'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(__dirname, '..');
    dir = up;
  }
}

/**
 * Loads the addon once (native-loader.ts decides which binary: WEIGHTMIX_ADDON, the prebuild, or a local build).
 * @throws {@link WeightmixError} `NativeMissing` when no binary for this platform is there.
 */
export function loadNative(): NativeAddon {
  if (cached === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a .node addon at a path known only at run time
    cached = loadAddon(packageRoot(), currentPlatform(), process.env, (file) => require(file) as NativeAddon);
    // From now on the format layer reads headers and indexes through the addon (a binary older than those readers has none to give).
    const tables = cached.addon as NativeAddon & Partial<NativeJsonTablesAddon>;
    if (
      typeof tables.readHeaderTable === 'function' &&
      typeof tables.readWeightMapTable === 'function' &&
      typeof tables.weightMapAgrees === 'function' &&
      typeof tables.weightMapNamesText === 'function' &&
      typeof tables.encodeHeaderColumns === 'function'
    )
      useNativeJsonTables(jsonTablesOfAddon(tables as NativeJsonTablesAddon));
  }
  return cached.addon;
}

/** The main heap's huge-page range: a MoE merge's main thread touches some 20 MB of fresh heap (BENCHMARKS.md, 2026-12-06). */
const HUGE_HEAP_BYTES = 24 << 20;

/**
 * The command line's heap on huge pages (native/process_heap.h): lib/cli.ts asks before a command that merges, whose main thread
 * then faults its fresh heap in 2 MiB at a time. A library leaves its host process's allocator alone, so nothing else calls this.
 * False where it was not done: `WEIGHTMIX_NO_HUGE_HEAP` set, no addon or an older one, not glibc, transparent huge pages off.
 */
export function preferHugePageHeap(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.WEIGHTMIX_NO_HUGE_HEAP) return false;
  try {
    return (loadNative() as NativeAddon & HeapAddon).preferHugePageHeap?.(HUGE_HEAP_BYTES) ?? false;
  } catch {
    return false; // NativeMissing and the like: the command's own loadNative reports it
  }
}

/** Loads the addon if it can, before models are opened (their headers are then read by it); a failure is left for the run's own loadNative to report. */
export function preloadNative(): void {
  try {
    loadNative();
  } catch {
    // NativeMissing and the like: the plan's run reports it, after the checks that come first.
  }
}

/** Which binary loadNative() loaded (it loads one first). */
export function loadedAddon(): LoadedAddon {
  loadNative();
  return cached!.loaded;
}

export interface RunOptions {
  onProgress?: (done: number, total: number) => void;
  /** Answers an open dest's moments from a worker (engine/open-moments.ts); if it throws, the run fails with what it threw. */
  onCoefficients?: (id: number, moments: Float64Array) => number[];
  /** Called once every output file's space is reserved (before the outputs' other files take any: engine/alongside.ts); never where a reservation fails. */
  onReserved?: () => void;
  signal?: AbortSignal;
}

// The engine keeps every input and output shard open for the run: a sweep of many λ over a model of many shards needs many.
const OPEN_FILES_HINT =
  ' (every input and output shard stays open while the engine runs: raise the open-file limit, `ulimit -n`, or write fewer outputs at once)';

const NATIVE_CODES: Record<string, WeightmixErrorCode> = {
  ENOSPC: 'NoSpace',
  EDQUOT: 'NoSpace',
  EIO: 'IoError',
  InputChanged: 'InputChanged',
  Aborted: 'Aborted',
  PlanInvalid: 'PlanInvalid',
  ENOMEM: 'OutOfMemory',
  SystemError: 'IoError',
  EMFILE: 'IoError',
  CudaUnavailable: 'CudaUnavailable',
  CudaOutOfMemory: 'CudaOutOfMemory',
  CudaError: 'CudaError',
};

/**
 * Runs a plan; an AbortSignal cancels between chunks and rejects with code 'Aborted' (named AbortError,
 * cause the signal's reason). A throwing `onProgress` cancels the run too, and the run rejects with
 * what it threw. The addon delivers progress and completion through one queue, so the last progress
 * call (done = total on success) comes before the promise settles and none comes after.
 */
export async function runPlan(plan: NativePlan, options: RunOptions = {}): Promise<NativeResult> {
  if (options.signal?.aborted) throw abortError('the merge was aborted', options.signal);
  return runPackedPlan({ ...plan, jobs: packJobColumns(plan.jobs) }, options);
}

/** `runPlan` of a plan whose jobs are already packed (a planner that writes columns). */
export async function runPackedPlan(plan: Omit<NativePlan, 'jobs'> & { jobs: PackedJobs }, options: RunOptions = {}): Promise<NativeResult> {
  const { signal, onProgress, onCoefficients, onReserved } = options;
  if (signal?.aborted) throw abortError('the merge was aborted', signal);
  let callbackFailed: { error: unknown } | undefined;
  let settled = false;
  // A callback that throws, or an async one whose promise rejects while the run goes on, fails the run with what it threw
  // (an unawaited rejection would end the process, leaving the temporary folder and the lock).
  const fail = (e: unknown) => {
    if (callbackFailed || settled) return;
    callbackFailed = { error: e };
    handle.cancel();
  };
  const progress = onProgress
    ? (done: number, total: number) => {
        if (!callbackFailed && !settled) callGuarded(() => onProgress(done, total), fail);
      }
    : undefined;
  // The engine waits for the answer; an empty one (after a throw) fails the run, which then rejects with what was thrown.
  const coefficients = onCoefficients
    ? (id: number, moments: Float64Array): number[] => {
        if (callbackFailed) return [];
        try {
          return onCoefficients(id, moments);
        } catch (e) {
          callbackFailed = { error: e };
          handle.cancel();
          return [];
        }
      }
    : undefined;
  const reserved = onReserved
    ? () => {
        try {
          onReserved();
        } catch {
          // A signal to the caller: nothing for the run to fail on.
        }
      }
    : undefined;
  const handle = loadNative().execute({ ...plan, jobs: plan.jobs.words }, progress, coefficients, reserved);
  const onAbort = () => handle.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let result: NativeResult;
  try {
    result = await handle.promise;
  } catch (e) {
    if (callbackFailed) throw callbackFailed.error;
    const err = e as Error & { code?: string };
    const code: WeightmixErrorCode = (err.code ? NATIVE_CODES[err.code] : undefined) ?? 'NativeError';
    if (code === 'Aborted') throw abortError(err.message, signal);
    throw new WeightmixError(code, `${err.message}${err.code === 'EMFILE' ? OPEN_FILES_HINT : ''}`, { cause: e });
  } finally {
    settled = true;
    signal?.removeEventListener('abort', onAbort);
  }
  // The callback may throw on the last report, after the engine finished: the run still fails.
  if (callbackFailed) throw callbackFailed.error;
  return result;
}
