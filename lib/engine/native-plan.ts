/** The plan the addon runs (ARCHITECTURE.md, "The native plan"): plain objects, packed by engine/packed-jobs.ts on the way in. */
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

