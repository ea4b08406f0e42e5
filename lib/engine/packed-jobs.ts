/**
 * A plan's jobs packed into one Float64Array for the addon (native/packed_jobs.cc reads it back).
 * Reading job objects through Node-API costs about thirty property lookups per job, tens of
 * microseconds each time on an 18,867-tensor MoE plan; one typed array crosses for free.
 *
 * Layout, job after job (every field one double):
 *   count, moments (0|1), stat (0 none, 1 histogram, 2 l1), statParams.length, statParams…,
 *   sources.length, then per source: input, offset, dtype code,
 *   dests.length, then per dest: output, offset, dtype code, op code, w.length, w…, params.length, params…
 */
import type { NativeDtype } from '../format/dtypes';
import type { NativeDest, NativeJob, NativeOp } from './native-plan';

// The codes are the addon's contract (native/packed_jobs.cc decodes the same numbers).
export const PACKED_DTYPE_CODES: Readonly<Record<NativeDtype, number>> = Object.freeze({ F32: 0, F16: 1, BF16: 2, U8: 3 });
export const PACKED_OP_CODES: Readonly<Record<NativeOp, number>> = Object.freeze({
  copy: 0,
  lerp: 1,
  lerp_mi: 2,
  linear: 3,
  sparse: 4,
  nearswap: 5,
  ram: 6,
  row_linear: 7,
  della: 8,
  sce: 9,
  arcee_fusion: 10,
});
export const PACKED_STAT_CODES: Readonly<Record<NonNullable<NativeJob['stat']>, number>> = Object.freeze({
  histogram: 1,
  l1: 2,
  ram_counts: 3,
  row_moments: 4,
  della_l1: 5,
  sce_histogram: 6,
  sce_sum_squares: 7,
  arcee_histogram: 8,
});

function code<K extends string>(table: Readonly<Record<K, number>>, key: K, what: string): number {
  const c = Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
  if (c === undefined) throw new TypeError(`plan: ${what} ${String(key)}`);
  return c;
}

/** Only sparse, nearswap, ram, row_linear, della, sce and arcee_fusion dests carry params (the addon ignored them elsewhere before packing, too). */
function destParams(d: NativeDest): readonly number[] {
  return d.op === 'sparse' || d.op === 'nearswap' || d.op === 'ram' || d.op === 'row_linear' || d.op === 'della' || d.op === 'sce' || d.op === 'arcee_fusion'
    ? (d.params ?? [])
    : [];
}

function packedLength(jobs: readonly NativeJob[]): number {
  let n = 0;
  for (const job of jobs) {
    n += 4 + (job.stat !== undefined ? (job.statParams?.length ?? 0) : 0) + 1 + 3 * job.sources.length + 1;
    for (const d of job.dests) n += 6 + d.w.length + destParams(d).length;
  }
  return n;
}

/** Packs jobs as the addon reads them; a value that is not a number becomes NaN, which the addon refuses. */
export function packJobs(jobs: readonly NativeJob[]): Float64Array {
  const out = new Float64Array(packedLength(jobs));
  let k = 0;
  const put = (values: readonly number[]) => {
    out[k++] = values.length;
    for (const v of values) out[k++] = v;
  };
  for (const job of jobs) {
    out[k++] = job.count;
    out[k++] = job.moments === true ? 1 : 0;
    if (job.stat !== undefined) {
      out[k++] = code(PACKED_STAT_CODES, job.stat, 'unknown statistic');
      put(job.statParams ?? []);
    } else {
      out[k++] = 0;
      out[k++] = 0;
    }
    out[k++] = job.sources.length;
    for (const s of job.sources) {
      out[k++] = s.input;
      out[k++] = s.offset;
      out[k++] = code(PACKED_DTYPE_CODES, s.dtype, 'unsupported dtype');
    }
    out[k++] = job.dests.length;
    for (const d of job.dests) {
      out[k++] = d.output;
      out[k++] = d.offset;
      out[k++] = code(PACKED_DTYPE_CODES, d.dtype, 'unsupported dtype');
      out[k++] = code(PACKED_OP_CODES, d.op, 'unknown op');
      put(d.w);
      put(destParams(d));
    }
  }
  if (k !== out.length) throw new Error(`internal: packed ${k} of ${out.length} plan words`);
  return out;
}
