/** The plan the addon runs (ARCHITECTURE.md, "The native plan"): plain objects, packed by engine/packed-jobs.ts on the way in. */
import type { NativeDtype } from '../format/dtypes';

// The addon's dtype codes are part of its surface (format/dtypes.ts declares them).
export type { NativeDtype } from '../format/dtypes';
/** What a destination computes (ARCHITECTURE.md, "The native plan"). */
export type NativeOp = 'copy' | 'lerp' | 'lerp_mi' | 'linear' | 'sparse' | 'nearswap' | 'ram' | 'row_linear' | 'della' | 'sce' | 'arcee_fusion';

/** Where a job reads one source tensor. */
export interface NativeSource {
  /** Index into `NativePlan.inputs`. */
  input: number;
  /** Byte offset in that file. */
  offset: number;
  /** Its element type. */
  dtype: NativeDtype;
}

/** Where a job writes one result, and how it computes it. */
export interface NativeDest {
  /** Index into `NativePlan.outputs`. */
  output: number;
  /** Byte offset in that file. */
  offset: number;
  /** The element type written. */
  dtype: NativeDtype;
  /** The operation. */
  op: NativeOp;
  /** copy: [source index]; lerp, lerp_mi: [λ]; linear: one weight per source; sparse, nearswap, ram, row_linear, della, sce, arcee_fusion: []. */
  w: number[];
  /** sparse: native/kernels/sparsify.h's flat layout (lib/sparsify.ts writes it); nearswap, ram, row_linear: kernels/elementwise.h's (engine/elementwise-params.ts); della: kernels/della.h's (engine/della-params.ts); sce: kernels/sce.h's (engine/sce-params.ts); arcee_fusion: kernels/arcee_fusion.h's (engine/arcee-fusion-params.ts); linear with open moments: native/local_moments.h's (engine/open-moments.ts); ram's open λ tail [r, alpha, epsilon]: native/local_ram.h. */
  params?: number[];
}

/** One tensor's work: elements read from the sources, written to the dests (or statistics gathered). */
export interface NativeJob {
  /** Elements. */
  count: number;
  /** The tensors read. */
  sources: NativeSource[];
  /** The results written (none for a statistics job). */
  dests: NativeDest[];
  /** Return the pair's moments (see `NativeResult.moments`). */
  moments?: boolean;
  /**
   * No dests: radix-selection counts ('histogram', 2^bits numbers) or exact L1 sums ('l1', 2 numbers) of sources[1] − sources[0];
   * 'ram_counts' (statParams: a ram dest's params, without the open tail): per model, the elements where it alone (unique) or it and others (shared) pass epsilon, all shared counts then all unique;
   * 'row_moments' (statParams: [row length]): per row of sources 0 (a) and 1 (b), Σa², Σb², Σab, Σ(b−a)² over the finite pairs;
   * 'della_l1' (statParams: engine/della-params.ts's dellaStatParams): exact L1 sums of sources[1] − sources[0], all and MAGPRUNE-kept (2 numbers);
   * 'sce_histogram', 'sce_sum_squares' (engine/sce-params.ts): radix counts over the models' per-element variance keys (2^bits, then the zero-variance count), and per model Σ t² over the selected elements;
   * 'arcee_histogram' (engine/arcee-fusion-params.ts): three radix histograms over the importance order keys of sources[1] against sources[0] (3 × 2^bits counts, then each row's KL unless statParams gave them).
   */
  stat?: 'histogram' | 'l1' | 'ram_counts' | 'row_moments' | 'della_l1' | 'sce_histogram' | 'sce_sum_squares' | 'arcee_histogram';
  /** The statistic's parameters (lib/recipes/sparsify.ts's layout). */
  statParams?: number[];
}

/** One file the plan writes. */
export interface NativeOutput {
  /** Absolute path (created; must not exist). */
  path: string;
  /** Its final size in bytes. */
  size: number;
  /** The bytes at offset 0 (the safetensors header); the addon holds this Buffer for the run instead of copying it, so it must not change meanwhile. */
  head: Buffer;
}

/** Everything one native run does; every output byte is covered exactly once by a head or a dest. */
export interface NativePlan {
  /** Files read (absolute paths, opened read-only). */
  inputs: string[];
  /** Files written. */
  outputs: NativeOutput[];
  /** The work, in output order. */
  jobs: NativeJob[];
  /** Worker threads. */
  threads: number;
  /** Output block size (a multiple of 4096). */
  blockBytes: number;
  /** O_DIRECT output where the file system allows it. */
  direct: boolean;
  /** 'cuda': arithmetic dests run on GPU 0 (the addon fails with CudaUnavailable when it cannot). Default 'cpu'. */
  device?: 'cpu' | 'cuda';
  /**
   * A tensor-local job whose open statistics are L1 factors alone (DARE's rescale, della's) reads its sources in chunks, instead of
   * holding them whole, when they take this many bytes or more. Default (undefined): the engine's, 64 MiB (native/plan.h).
   * The output bytes do not depend on it.
   */
  chunkedLocalBytes?: number;
}
