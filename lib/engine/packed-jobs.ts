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
import { DTYPE_NAMES as SAFETENSORS_DTYPE_NAMES, NATIVE_DTYPE_BYTES, NativeDtype, nativeDtype } from '../format/dtypes';
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

/** The ops whose dests carry params (the addon ignored params elsewhere before packing, too). */
function carriesParams(op: NativeOp): boolean {
  return op === 'sparse' || op === 'nearswap' || op === 'ram' || op === 'row_linear' || op === 'della' || op === 'sce' || op === 'arcee_fusion';
}

const NO_NUMBERS: readonly number[] = Object.freeze([]);
/** The most elements a run of plain jobs grows to (plainJob): the engine's counts stay far inside 32 bits. */
export const MAX_RUN_ELEMENTS = 2 ** 30;
/** Name by code, the codes' inverse. */
function namesByCode<K extends string>(table: Readonly<Record<K, number>>): K[] {
  const names: K[] = [];
  for (const name of Object.keys(table) as K[]) names[table[name]] = name;
  return names;
}
const DTYPE_NAMES = namesByCode(PACKED_DTYPE_CODES);
const OP_NAMES = namesByCode(PACKED_OP_CODES);
const STAT_NAMES = namesByCode(PACKED_STAT_CODES);
// Bytes per element by dtype code: a job's progress weight.
const BYTES_BY_CODE = DTYPE_NAMES.map((d) => NATIVE_DTYPE_BYTES[d]);
/** The packed code of native dtype U8 (any non-float tensor, counted in bytes). */
export const PACKED_U8 = PACKED_DTYPE_CODES.U8;
/** The packed native dtype code of each safetensors dtype code (format/dtypes.ts's DTYPE_NAMES order): no name lookup per tensor. */
export const PACKED_CODE_OF_DTYPE: Uint8Array = Uint8Array.from(SAFETENSORS_DTYPE_NAMES, (d) => PACKED_DTYPE_CODES[nativeDtype(d)]);

/** A plan's jobs in the packed layout, with each job's progress weight (no job objects). */
export interface PackedJobs {
  /** The layout above, job after job: what the addon takes. */
  words: Float64Array;
  /** Jobs. */
  count: number;
  /**
   * Per tensor, in job order, the bytes the engine counts for progress (native/executor.cc's pieceWeight): written bytes, or read bytes
   * of a job that writes nothing. One entry per job, but for a run of plain jobs written as one (`PackedJobWriter.plainJob`): one each.
   */
  work: Float64Array;
}

/** A plain job's sources, as columns the caller reuses from job to job (`PackedJobWriter.plainJob`). */
export interface PlainSources {
  input: Int32Array;
  offset: Float64Array;
  code: Uint8Array;
}

/** A plain job's dests, as columns the caller reuses from job to job (`PackedJobWriter.plainJob`). */
export interface PlainDests {
  output: Int32Array;
  offset: Float64Array;
  code: Uint8Array;
  op: Uint8Array;
  w: (readonly number[])[];
}

/**
 * Writes jobs straight into the packed layout, field by field in layout order: per job `job`, then
 * `source` × its source count, `destCount`, then `dest` × that count. The planner of an
 * 18,867-tensor MoE plan writes here instead of allocating a job, its sources and dests per tensor.
 */
export class PackedJobWriter {
  private words: Float64Array<ArrayBuffer>;
  private k = 0;
  private work: Float64Array<ArrayBuffer>;
  private jobs = 0;
  private tensors = 0;
  // Whether the last job's progress weight is still to be written (a job written field by field: its dests come later).
  private pending = false;
  // The word of the last job's count while that job is a plain one the next may continue (plainJob), else -1.
  private run = -1;
  // The open job's element count and bytes per element of its sources and dests (its progress weight when it closes).
  private elements = 0;
  private sourceBytes = 0;
  private destBytes = 0;

  /** `expectedJobs` and `expectedWords` size the first buffers (a planner that knows them does not regrow them: large typed arrays are costly to allocate). */
  constructor(expectedJobs = 256, expectedWords = 4096) {
    this.work = new Float64Array(Math.max(1, expectedJobs));
    this.words = new Float64Array(Math.max(16, expectedWords));
  }

  /** Starts a job of `count` elements reading `sourceCount` sources. */
  job(count: number, sourceCount: number, stat?: { moments?: boolean; stat?: NativeJob['stat']; statParams?: readonly number[] }): void {
    this.close();
    const statParams = stat?.stat !== undefined ? (stat.statParams ?? NO_NUMBERS) : NO_NUMBERS;
    this.reserve(5 + statParams.length);
    const out = this.words;
    out[this.k++] = count;
    out[this.k++] = stat?.moments === true ? 1 : 0;
    out[this.k++] = stat?.stat !== undefined ? code(PACKED_STAT_CODES, stat.stat, 'unknown statistic') : 0;
    this.putNumbers(statParams);
    out[this.k++] = sourceCount;
    this.elements = count;
    this.jobs++;
    this.tensors++;
    this.pending = true;
    this.run = -1;
  }

  source(input: number, offset: number, dtype: NativeDtype): void {
    this.sourceOfCode(input, offset, code(PACKED_DTYPE_CODES, dtype, 'unsupported dtype'));
  }

  /** `source` with the dtype as its packed code (PACKED_DTYPE_CODES' value): the planner's per-tensor path. */
  sourceOfCode(input: number, offset: number, c: number): void {
    this.reserve(3);
    this.words[this.k++] = input;
    this.words[this.k++] = offset;
    this.words[this.k++] = c;
    this.sourceBytes += BYTES_BY_CODE[c];
  }

  destCount(n: number): void {
    this.reserve(1);
    this.words[this.k++] = n;
  }

  /** `params` are written only for the ops that carry them (as the addon reads them). */
  dest(output: number, offset: number, dtype: NativeDtype, op: NativeOp, w: readonly number[], params?: readonly number[]): void {
    // A linear dest carries params only with open moments (engine/open-moments.ts).
    const p = carriesParams(op) || op === 'linear' ? (params ?? NO_NUMBERS) : NO_NUMBERS;
    this.destOfCodes(output, offset, code(PACKED_DTYPE_CODES, dtype, 'unsupported dtype'), code(PACKED_OP_CODES, op, 'unknown op'), w, p);
  }

  /** `dest` with dtype and op as their packed codes and `p` the params as written (empty for an op without them): the planner's per-tensor path. */
  destOfCodes(output: number, offset: number, c: number, opCode: number, w: readonly number[], p: readonly number[]): void {
    this.reserve(6 + w.length + p.length);
    this.words[this.k++] = output;
    this.words[this.k++] = offset;
    this.words[this.k++] = c;
    this.words[this.k++] = opCode;
    this.putNumbers(w);
    this.putNumbers(p);
    this.destBytes += BYTES_BY_CODE[c];
  }

  /**
   * A whole job without statistics whose dests carry no params, in one call (the planner's per-tensor path; a call per field
   * cost more than the writing in an 18,867-tensor plan): its sources are `src.input/offset/code[k]` for k < `sourceCount`, its
   * dests `dst.output/offset/code/op/w[d]` for d < `destCount`, codes as PACKED_DTYPE_CODES and PACKED_OP_CODES give them. With
   * `tensorCounts` (summing to `count`), the job is that many tensors stored one after the other, each with its own progress weight.
   */
  plainJob(count: number, sourceCount: number, src: PlainSources, destCount: number, dst: PlainDests, tensorCounts?: Float64Array): void {
    this.close();
    // A tensor stored right after the last one in every source and dest, with the same op, weights and dtypes, extends its job: its
    // ops are elementwise, so one job over both writes the same bytes (an 18,867-tensor MoE pair saved alike is then one job per shard).
    if (this.run >= 0 && this.words[this.run] + count <= MAX_RUN_ELEMENTS && this.continuesRun(sourceCount, src, destCount, dst)) {
      this.words[this.run] += count;
      this.setWork(count, src, sourceCount, dst, destCount, tensorCounts);
      return;
    }
    this.run = this.k;
    let n = 6 + 3 * sourceCount + 5 * destCount;
    for (let d = 0; d < destCount; d++) n += dst.w[d].length + 1;
    this.reserve(n);
    const out = this.words;
    let k = this.k;
    // count, moments, stat, statParams.length (no statistics), then the sources and dests as `job`, `source` and `dest` write them.
    out[k++] = count;
    out[k++] = 0;
    out[k++] = 0;
    out[k++] = 0;
    out[k++] = sourceCount;
    for (let s = 0; s < sourceCount; s++) {
      out[k++] = src.input[s];
      out[k++] = src.offset[s];
      out[k++] = src.code[s];
    }
    out[k++] = destCount;
    for (let d = 0; d < destCount; d++) {
      const w = dst.w[d];
      out[k++] = dst.output[d];
      out[k++] = dst.offset[d];
      out[k++] = dst.code[d];
      out[k++] = dst.op[d];
      out[k++] = w.length;
      for (let j = 0; j < w.length; j++) out[k++] = w[j];
      out[k++] = 0;
    }
    this.k = k;
    this.jobs++;
    this.setWork(count, src, sourceCount, dst, destCount, tensorCounts);
  }

  /** The jobs written (views of the writer's buffers, which it no longer touches). */
  finish(): PackedJobs {
    this.close();
    return { words: this.words.subarray(0, this.k), count: this.jobs, work: this.work.subarray(0, this.tensors) };
  }

  /** Whether the plain job at `run` reads and writes, just before these, what these continue (read back from its words). */
  private continuesRun(sourceCount: number, src: PlainSources, destCount: number, dst: PlainDests): boolean {
    const out = this.words;
    let k = this.run;
    const elements = out[k];
    if (out[k + 4] !== sourceCount) return false;
    k += 5;
    for (let s = 0; s < sourceCount; s++, k += 3) {
      const c = src.code[s];
      if (out[k] !== src.input[s] || out[k + 2] !== c || out[k + 1] + elements * BYTES_BY_CODE[c] !== src.offset[s]) return false;
    }
    if (out[k++] !== destCount) return false;
    for (let d = 0; d < destCount; d++) {
      const c = dst.code[d];
      const w = dst.w[d];
      if (out[k] !== dst.output[d] || out[k + 2] !== c || out[k + 3] !== dst.op[d] || out[k + 1] + elements * BYTES_BY_CODE[c] !== dst.offset[d]) return false;
      if (out[k + 4] !== w.length) return false;
      for (let j = 0; j < w.length; j++) if (out[k + 5 + j] !== w[j]) return false;
      k += 6 + w.length;
    }
    return true;
  }

  /** A plain job's tensor (or, with `tensorCounts`, its tensors of those counts): each its own progress weight. */
  private setWork(count: number, src: PlainSources, sourceCount: number, dst: PlainDests, destCount: number, tensorCounts?: Float64Array): void {
    let bytes = 0;
    for (let d = 0; d < destCount; d++) bytes += BYTES_BY_CODE[dst.code[d]];
    if (bytes === 0) for (let s = 0; s < sourceCount; s++) bytes += BYTES_BY_CODE[src.code[s]];
    if (tensorCounts === undefined) {
      this.tensors++;
      this.putWork(count * bytes);
      return;
    }
    if (this.tensors + tensorCounts.length > this.work.length) this.work = grown(this.work, this.tensors + tensorCounts.length);
    for (let i = 0; i < tensorCounts.length; i++) this.work[this.tensors++] = tensorCounts[i] * bytes;
  }

  private putWork(bytes: number): void {
    if (this.tensors > this.work.length) this.work = grown(this.work, this.tensors);
    this.work[this.tensors - 1] = bytes;
  }

  private close(): void {
    if (!this.pending) return;
    this.putWork(this.elements * (this.destBytes > 0 ? this.destBytes : this.sourceBytes));
    this.sourceBytes = this.destBytes = 0;
    this.pending = false;
  }

  private putNumbers(values: readonly number[]): void {
    const out = this.words;
    out[this.k++] = values.length;
    for (let i = 0; i < values.length; i++) out[this.k++] = values[i];
  }

  /** Room for n more words (plus a length word per number list, which callers count in n). */
  private reserve(n: number): void {
    if (this.k + n + 2 > this.words.length) this.words = grown(this.words, this.k + n + 2);
  }
}

function grown(a: Float64Array<ArrayBuffer>, atLeast: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(Math.max(atLeast, 2 * a.length));
  b.set(a);
  return b;
}

/** Packs job objects as the addon reads them; a value that is not a number becomes NaN, which the addon refuses. */
export function packJobColumns(jobs: readonly NativeJob[]): PackedJobs {
  const writer = new PackedJobWriter();
  for (const job of jobs) {
    writer.job(job.count, job.sources.length, job);
    for (const s of job.sources) writer.source(s.input, s.offset, s.dtype);
    writer.destCount(job.dests.length);
    for (const d of job.dests) writer.dest(d.output, d.offset, d.dtype, d.op, d.w, d.params);
  }
  return writer.finish();
}

/** Packs job objects as the addon reads them (the words of packJobColumns). */
export function packJobs(jobs: readonly NativeJob[]): Float64Array {
  return packJobColumns(jobs).words;
}

/** The job objects of packed words (the inverse of packJobs for the fields it keeps): the object view of a plan written as columns. */
export function unpackJobs(words: Float64Array): NativeJob[] {
  const jobs: NativeJob[] = [];
  let k = 0;
  const numbers = () => Array.from(words.subarray(k + 1, (k += 1 + words[k])));
  while (k < words.length) {
    const job: NativeJob = { count: words[k], sources: [], dests: [] };
    if (words[k + 1] === 1) job.moments = true;
    const stat = words[k + 2];
    k += 3;
    const statParams = numbers();
    if (stat !== 0) {
      job.stat = STAT_NAMES[stat];
      job.statParams = statParams;
    }
    for (let n = words[k++]; n > 0; n--, k += 3) job.sources.push({ input: words[k], offset: words[k + 1], dtype: DTYPE_NAMES[words[k + 2]] });
    for (let n = words[k++]; n > 0; n--) {
      const dest: NativeDest = { output: words[k], offset: words[k + 1], dtype: DTYPE_NAMES[words[k + 2]], op: OP_NAMES[words[k + 3]], w: [] };
      k += 4;
      dest.w = numbers();
      const params = numbers();
      if (carriesParams(dest.op) || params.length > 0) dest.params = params;
      job.dests.push(dest);
    }
    jobs.push(job);
  }
  return jobs;
}
