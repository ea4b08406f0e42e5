/** The addon's typed surface, in one place: load it once, run plans with progress and abort. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { currentPlatform, loadAddon, LoadedAddon } from './native-loader';

import type { NativeDtype } from '../format/dtypes';

// The addon's dtype codes are part of its surface (format/dtypes.ts declares them).
export type { NativeDtype } from '../format/dtypes';
export type NativeOp = 'copy' | 'lerp' | 'lerp_mi' | 'linear' | 'sparse';

export interface NativeSource {
  input: number;
  offset: number;
  dtype: NativeDtype;
}

export interface NativeDest {
  output: number;
  offset: number;
  dtype: NativeDtype;
  op: NativeOp;
  /** copy: [source index]; lerp, lerp_mi: [λ]; linear: one weight per source; sparse: []. */
  w: number[];
  /** sparse only: native/kernels/sparsify.h's flat layout (lib/sparsify.ts writes it). */
  params?: number[];
}

export interface NativeJob {
  count: number;
  sources: NativeSource[];
  dests: NativeDest[];
  moments?: boolean;
  /** No dests: radix-selection counts ('histogram', 2^bits numbers) or exact L1 sums ('l1', 2 numbers) of sources[1] − sources[0]. */
  stat?: 'histogram' | 'l1';
  statParams?: number[];
}

export interface NativeOutput {
  path: string;
  size: number;
  head: Buffer;
}

export interface NativePlan {
  inputs: string[];
  outputs: NativeOutput[];
  jobs: NativeJob[];
  threads: number;
  blockBytes: number;
  direct: boolean;
  /** 'cuda': arithmetic dests run on GPU 0 (the addon fails with CudaUnavailable when it cannot). Default 'cpu'. */
  device?: 'cpu' | 'cuda';
}

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

export interface NativeAddon {
  execute(plan: NativePlan, onProgress?: (done: number, total: number) => void): { promise: Promise<NativeResult>; cancel(): void };
  info(): NativeInfo;
  runKernelForTest(op: string, args: KernelTestArgs): unknown;
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
  const handle = loadNative().execute(plan, onProgress);
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
