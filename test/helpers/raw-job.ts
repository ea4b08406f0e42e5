/** One engine job over raw files, as the method tests run a kernel: sources in file order, one dest per output dtype. */
import * as path from 'node:path';
import { runPlan } from '../../lib/engine/native';
import type { NativeDtype, NativeOp } from '../../lib/engine/native-plan';
import type { Dtype } from '../reference/numerics';
import { readRaw } from './raw-values';

/** The outputs of every raw job, in this order. */
export const RAW_OUTPUT_DTYPES: readonly Dtype[] = ['F32', 'BF16', 'F16'];

let counter = 0;

export interface RawJob {
  files: string[];
  dtypes: Dtype[];
  n: number;
  op: NativeOp;
  params: number[];
  threads: number;
  /** 4 KiB by default: small blocks cut the job into many pieces. */
  blockBytes?: number;
  /** NativePlan's: 0 reads every tensor-local job of L1 factors alone in chunks. */
  chunkedLocalBytes?: number;
  /** More dests after the op's, each into an F32 output of its own (last in outFiles): a job fused with other recipes'. */
  extraDests?: { op: NativeOp; w: number[]; params?: number[] }[];
}

/** Runs `job` into one raw file per output dtype in `dir`; returns each output's bits (by dtype) and the files. */
export async function runRawJob(dir: string, job: RawJob): Promise<{ bits: Map<Dtype, number[]>; outFiles: string[]; extraFiles: string[] }> {
  const extra = job.extraDests ?? [];
  const outDtypes: Dtype[] = [...RAW_OUTPUT_DTYPES, ...extra.map((): Dtype => 'F32')];
  const outFiles = outDtypes.map(() => path.join(dir, `raw-out-${process.pid}-${counter++}.bin`));
  await runPlan({
    inputs: job.files,
    outputs: outDtypes.map((dtype, o) => ({ path: outFiles[o], size: job.n * (dtype === 'F32' ? 4 : 2), head: Buffer.alloc(0) })),
    jobs: [
      {
        count: job.n,
        sources: job.files.map((_, k) => ({ input: k, offset: 0, dtype: job.dtypes[k] as NativeDtype })),
        dests: [
          ...RAW_OUTPUT_DTYPES.map((dtype, o) => ({ output: o, offset: 0, dtype, op: job.op, w: [], params: job.params })),
          ...extra.map((d, e) => ({ output: RAW_OUTPUT_DTYPES.length + e, offset: 0, dtype: 'F32' as const, ...d })),
        ],
      },
    ],
    threads: job.threads,
    blockBytes: job.blockBytes ?? 4096,
    direct: false,
    ...(job.chunkedLocalBytes !== undefined && { chunkedLocalBytes: job.chunkedLocalBytes }),
  });
  return {
    bits: new Map(RAW_OUTPUT_DTYPES.map((dtype, o) => [dtype, readRaw(outFiles[o], dtype, job.n)])),
    outFiles: outFiles.slice(0, RAW_OUTPUT_DTYPES.length),
    extraFiles: outFiles.slice(RAW_OUTPUT_DTYPES.length),
  };
}
