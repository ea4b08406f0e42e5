/** The addon's typed surface, in one place: load it once, run plans with progress and abort. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { currentPlatform, loadAddon, LoadedAddon } from './native-loader';
import { packJobs } from './packed-jobs';

import type { NativeDtype } from '../format/dtypes';
import type { NativeJob, NativePlan } from './native-plan';

// The plan's types live beside its packing (engine/native-plan.ts); re-exported as the addon's surface.
export type { NativeDtype, NativeOp, NativeSource, NativeDest, NativeJob, NativeOutput, NativePlan } from './native-plan';

export interface NativeResult {
  bytesWritten: number;
  /** Six numbers per job: Σa², Σb², Σab, Σ(b−a)², max|b−a|, non-finite pairs. */
  moments: Float64Array;
  /** The statistics jobs' results, in job order. */
  stats: Float64Array;
}

/** How the binary was built (native/build_info.cc). */
export interface NativeBuildInfo {
  system: 'cmake-js' | 'node-gyp';
  compiler: string;
  date: string;
  napiVersion: number;
  /** With the CUDA kernels compiled in (not an emulation build): nvcc's version and the architectures. */
  cudaVersion?: string;
  cudaArchitectures?: string;
}

export interface NativeInfo {
  simd: string;
  build: NativeBuildInfo;
  hardwareThreads: number;
  cudaCompiled: boolean;
  /** Present when GPU 0 is usable. */
  cudaDevices?: { name: string; memoryBytes: number; computeCapability: string }[];
  /** Why no GPU can be used (one line), when none can. */
  cudaUnavailable?: string;
  cudaUnavailableKind?: 'not-compiled' | 'no-driver' | 'no-device' | 'unsupported' | 'out-of-memory' | 'error';
}

export interface KernelTestArgs {
  srcs: Buffer[];
  types: NativeDtype[];
  out?: Buffer;
  outType?: NativeDtype;
  w?: number[];
  n: number;
  simd: boolean;
}

/** What crosses into the addon: the plan with its jobs packed (engine/packed-jobs.ts). */
export type PackedNativePlan = Omit<NativePlan, 'jobs'> & { jobs: Float64Array };

export interface NativeAddon {
  execute(plan: PackedNativePlan, onProgress?: (done: number, total: number) => void): { promise: Promise<NativeResult>; cancel(): void };
  info(): NativeInfo;
  runKernelForTest(op: string, args: KernelTestArgs): unknown;
  /** Tests: the packed jobs as the executor decoded them (every field, w as float32). */
  decodeJobsForTest(jobs: Float64Array): (Required<Omit<NativeJob, 'stat'>> & Pick<NativeJob, 'stat'>)[];
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

/** Loads the addon once (native-loader.ts decides which binary: WEIGHTMIX_ADDON, the prebuild, or a local build). */
export function loadNative(): NativeAddon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a .node addon at a path known only at run time
  cached ??= loadAddon(packageRoot(), currentPlatform(), process.env, (file) => require(file) as NativeAddon);
  return cached.addon;
}

/** Which binary loadNative() loaded (it loads one first). */
export function loadedAddon(): LoadedAddon {
  loadNative();
  return cached!.loaded;
}

export interface RunOptions {
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

const NATIVE_CODES: Record<string, string> = {
  ENOSPC: 'NoSpace',
  EDQUOT: 'NoSpace',
  EIO: 'IoError',
  InputChanged: 'InputChanged',
  Aborted: 'Aborted',
  PlanInvalid: 'PlanInvalid',
  ENOMEM: 'OutOfMemory',
  SystemError: 'IoError',
  CudaUnavailable: 'CudaUnavailable',
  CudaOutOfMemory: 'CudaOutOfMemory',
  CudaError: 'CudaError',
};

/** Runs a plan; an AbortSignal cancels between chunks and rejects with code 'Aborted'. */
export async function runPlan(plan: NativePlan, options: RunOptions = {}): Promise<NativeResult> {
  const { signal, onProgress } = options;
  if (signal?.aborted) throw new WeightmixError('Aborted', 'the merge was aborted');
  const handle = loadNative().execute({ ...plan, jobs: packJobs(plan.jobs) }, onProgress);
  const onAbort = () => handle.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await handle.promise;
  } catch (e) {
    const err = e as Error & { code?: string };
    const code = (err.code && NATIVE_CODES[err.code]) ?? 'NativeError';
    throw new WeightmixError(code, err.message, { cause: e });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
