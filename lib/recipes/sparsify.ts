/**
 * Sparsified task vectors (TIES, DARE, breadcrumbs): from each model's keep rule to the per-dest
 * parameters of the engine's `sparse` op. A tensor whose sources fit `localStatistics.maxTensorBytes`
 * leaves its thresholds and L1 factors open: the engine resolves them from the tensor held in memory
 * by the worker that merges it (a tensor-local job, native/local_job.h), with the same results.
 * Larger tensors take the streaming fallback here: magnitude thresholds by radix selection over
 * 64-bit rank keys with histogram passes (12-bit digits; bounded memory: at most MAX_HISTOGRAM_JOBS ×
 * 4096 counters per plan), L1 rescale factors from an exact pass. DARE's masks come from a counter-based generator.
 * The numerics are native/kernels/sparsify.h's; this file only decides thresholds and factors.
 */
import { InputFiles } from '../engine/input-files';
import { NATIVE_DTYPE_BYTES, NativeDtype } from '../format/dtypes';
import type { NativeJob, NativePlan, NativeResult } from '../engine/native';
import { keyHigh, keyLow, ResolvedSparse, ResolvedSparseModel, sparseModelParams } from '../engine/sparse-params';

/** How a model's task vector is thinned before the merge. */
export interface SparseModelSpec {
  model: number;
  weight: number;
  /** 'magnitude': keep the top floor(density·n) of |δ| after dropping the top floor(gamma·n); 'random': Bernoulli(density). */
  selection: 'magnitude' | 'random' | 'none';
  density: number;
  gamma: number;
  /** 'l1': match Σ|δ| (mergekit's rescale: true); 'inverse': × 1/density (the DARE paper); 'none'. */
  rescale: 'none' | 'l1' | 'inverse';
}

export interface SparseMergeSpec {
  base: number;
  models: SparseModelSpec[];
  consensus: 'sum' | 'count' | null;
  normalize: boolean;
  lambda: number;
  /** random_seed (DARE); 0 when the recipe has none. */
  seed: number;
}

/** Where one model's copy of a tensor lies, for the statistics passes. */
export interface TensorSource {
  file: string;
  offset: number;
  dtype: NativeDtype;
}

export interface SparseTensor {
  name: string;
  count: number;
  spec: SparseMergeSpec;
  /** Recipe model index → its copy of this tensor. */
  source(model: number): TensorSource;
}

const MASK64 = (1n << 64n) - 1n;
/** Above every rank key (keys have at most 31 + 32 bits): "no upper cut" / "keep nothing". */
export const KEY_NONE = 1n << 63n;
/** 12-bit digits: 5 passes over a 2^29-element tensor's 60-bit keys; wider digits return 16× the counters per pass (a JavaScript array each). */
const DIGIT_BITS = 12;
/** Histogram jobs per plan: 256 × 4096 counters × 8 bytes = 8 MB, and as much again for the result (memory, not passes: a plan reads only its jobs' tensors). */
export const MAX_HISTOGRAM_JOBS = 256;
/** L1 jobs per plan: 2048 × 512 counters. */
const MAX_L1_JOBS = 2048;

/**
 * Tensors whose sources (base and models) take at most `maxTensorBytes` are resolved by the engine in
 * memory; it holds at most 768 MiB of such sources at once (native/local_job.h's kLocalBudgetBytes).
 * Tests lower it to force the streaming fallback.
 */
export const localStatistics = { maxTensorBytes: 512 * 2 ** 20 };

/** Whether `bytes` fit the engine's local pool (native/local_job.h's kLocalBudgetBytes, 768 MiB = 1.5 × maxTensorBytes): a tensor whose per-element statistics are computed again in each pass instead of stored. */
export function fitsLocalPool(bytes: number): boolean {
  return bytes <= localStatistics.maxTensorBytes * 1.5;
}

/** Whether a tensor of `count` elements whose sources are `models`' copies fits the local budget (any method's). */
export function sourcesFitInMemory(count: number, models: readonly number[], source: (model: number) => TensorSource): boolean {
  return models.reduce((n, m) => n + count * NATIVE_DTYPE_BYTES[source(m).dtype], 0) <= localStatistics.maxTensorBytes;
}

/** Whether the engine resolves this tensor's statistics from memory (resolveSparse's `isLocal` for a write plan). */
export function fitsInMemory(t: SparseTensor): boolean {
  return sourcesFitInMemory(t.count, [t.spec.base, ...t.spec.models.map((m) => m.model)], t.source);
}

/** Bit length of count − 1: how many low key bits hold the (reversed) element index. */
export function indexBits(count: number): number {
  let b = 0;
  while (count > 1 && Math.floor((count - 1) / 2 ** b) !== 0) b++;
  return b;
}

/** The rank key of element i with f32 task-vector value d: larger |d| first, then lower index first. */
export function rankKey(d: number, i: number, count: number): bigint {
  const f = new Float32Array([d]);
  const bits = new Uint32Array(f.buffer)[0] & 0x7fffffff;
  return (BigInt(bits) << BigInt(indexBits(count))) | BigInt(count - 1 - i);
}

export function splitmix64(x: bigint): bigint {
  x &= MASK64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return x ^ (x >> 31n);
}

const GOLDEN = 0x9e3779b97f4a7c15n;

export function fnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & MASK64;
  return h;
}

/** The DARE mask key of (random_seed, output tensor name, recipe model index). */
export function maskKey(seed: number, tensorName: string, model: number): bigint {
  return splitmix64((splitmix64(BigInt(seed) ^ fnv1a64(tensorName)) + BigInt(model + 1) * GOLDEN) & MASK64);
}

/** Element i survives the mask keyed by `key` with probability `density` (the engine's bernoulliKeep). */
export function maskKeeps(key: bigint, i: number, density: number): boolean {
  const u = splitmix64((key + BigInt(i + 1) * GOLDEN) & MASK64);
  return Number(u >> 11n) * 2 ** -53 < density;
}

/** mergekit's element counts: keep floor(density·n) after dropping floor(gamma·n) of the largest (gamma shrinks to fit). */
export function magnitudeCounts(n: number, density: number, gamma: number): { top: number; keep: number } {
  if (density >= 1) return { top: 0, keep: n };
  const keep = Math.max(0, Math.floor(density * n));
  let top = Math.max(0, Math.floor(gamma * n));
  if (n - keep - top < 0) top = n - keep;
  return { top, keep };
}

interface RankQuery {
  tensor: SparseTensor;
  model: number;
  /** Find the cut C with exactly `rank` keys ≥ C. */
  rank: number;
  remaining: number;
  prefix: bigint;
  cut?: bigint;
}

type RunPlan = (plan: Pick<NativePlan, 'inputs' | 'jobs'>) => Promise<NativeResult>;

function statSources(t: SparseTensor, model: number, table: InputFiles, first = 0) {
  return [table.source(elementsFrom(t.source(t.spec.base), first)), table.source(elementsFrom(t.source(model), first))];
}

/** A tensor's copy from its element `first` on (a statistics job over a run of it). */
export function elementsFrom(src: TensorSource, first: number): TensorSource {
  return { ...src, offset: src.offset + first * NATIVE_DTYPE_BYTES[src.dtype] };
}

/** A histogram job's params tail for the elements first .. end − 1 of a tensor of `count`: none for the whole tensor, else [first, count]. */
export function runTail({ first, end }: { first: number; end: number }, count: number): number[] {
  return first === 0 && end === count ? [] : [first, count];
}

/**
 * The elements whose keys can still carry `prefix`: all of them while the prefix holds only |δ| bits; once it holds all 31 of
 * them and some index bits, the contiguous run of indices those bits allow (2^remaining at most), so that the pass reads that run
 * alone (a 2^29-element tensor's last two passes of five: 2^24 and 2^12 elements instead of 2^29).
 */
export function candidateRange(count: number, remaining: number, prefix: bigint): { first: number; end: number } {
  const ib = indexBits(count);
  if (remaining >= ib) return { first: 0, end: count };
  // The key's low ib bits are count − 1 − i; the prefix fixes their top ib − remaining bits.
  const fixed = Number(prefix & ((1n << BigInt(ib - remaining)) - 1n)) * 2 ** remaining;
  const first = Math.max(0, count - fixed - 2 ** remaining);
  const end = count - fixed;
  return end > first ? { first, end } : { first: 0, end: count };
}

/** Radix selection: one histogram pass per digit (11 bits, from the top) for all open queries at once. */
async function selectCuts(queries: RankQuery[], run: RunPlan): Promise<void> {
  for (const q of queries) {
    if (q.rank <= 0) q.cut = KEY_NONE;
    else if (q.rank >= q.tensor.count) q.cut = 0n;
  }
  for (;;) {
    const open = queries.filter((q) => q.cut === undefined);
    if (open.length === 0) return;
    for (let at = 0; at < open.length; at += MAX_HISTOGRAM_JOBS) {
      const batch = open.slice(at, at + MAX_HISTOGRAM_JOBS);
      const table = new InputFiles();
      const jobs: NativeJob[] = [];
      const jobOf = new Map<string, number>();
      const slot: number[] = [];
      for (const q of batch) {
        const bits = Math.min(DIGIT_BITS, q.remaining);
        const shift = q.remaining - bits;
        const key = `${q.tensor.name}\u0000${q.model}\u0000${q.remaining}\u0000${q.prefix}`;
        let j = jobOf.get(key);
        if (j === undefined) {
          j = jobs.length;
          jobOf.set(key, j);
          const run = candidateRange(q.tensor.count, q.remaining, q.prefix);
          jobs.push({
            count: run.end - run.first,
            sources: statSources(q.tensor, q.model, table, run.first),
            dests: [],
            stat: 'histogram',
            // A run of the tensor: its first element and the tensor's count, so that the keys are the whole tensor's.
            statParams: [indexBits(q.tensor.count), shift, bits, keyHigh(q.prefix), keyLow(q.prefix), ...runTail(run, q.tensor.count)],
          });
        }
        slot.push(j);
      }
      const r = await run({ inputs: table.paths, jobs });
      const starts: number[] = [];
      let off = 0;
      for (const job of jobs) {
        starts.push(off);
        off += 2 ** job.statParams![2];
      }
      batch.forEach((q, k) => {
        const job = jobs[slot[k]];
        const [, shift, bits] = job.statParams!;
        const h = r.stats.subarray(starts[slot[k]], starts[slot[k]] + 2 ** bits);
        let need = q.rank;
        let bin = 2 ** bits - 1;
        for (; bin > 0 && h[bin] < need; bin--) need -= h[bin];
        if (h[bin] < need) throw new Error(`internal: radix selection of ${q.tensor.name} ran out of elements`);
        q.prefix = (q.prefix << BigInt(bits)) | BigInt(bin);
        q.remaining = shift;
        q.rank = need;
        // Every element of this bin is needed (or the key is complete): the bin's lower bound is the cut.
        if (h[bin] === need || shift === 0) q.cut = q.prefix << BigInt(shift);
      });
    }
  }
}

/** Exact Σ|δ| before and after each model's keep rule (the L1 rescale's two norms). */
async function l1Sums(items: { tensor: SparseTensor; model: ResolvedSparseModel }[], run: RunPlan): Promise<[number, number][]> {
  const out: [number, number][] = [];
  for (let at = 0; at < items.length; at += MAX_L1_JOBS) {
    const batch = items.slice(at, at + MAX_L1_JOBS);
    const table = new InputFiles();
    const jobs: NativeJob[] = batch.map(({ tensor, model: m }) => ({
      count: tensor.count,
      sources: statSources(tensor, m.model, table),
      dests: [],
      stat: 'l1',
      statParams: [indexBits(tensor.count), ...sparseModelParams(1, { ...m, weight: 1, scale: 1 })],
    }));
    const r = await run({ inputs: table.paths, jobs });
    batch.forEach((_, k) => out.push([r.stats[2 * k], r.stats[2 * k + 1]]));
  }
  return out;
}

/** mergekit's rescaled_masked_tensor: norms below 1e-7 leave the masked tensor as is. */
export function l1Scale(before: number, after: number): number {
  return before < 1e-7 || after < 1e-7 ? 1 : before / after;
}

/**
 * Thresholds, mask keys and rescale factors for every tensor, with as few passes over the inputs as
 * radix selection needs; tensors for which `isLocal` holds leave their cuts and L1 factors open
 * (`ResolvedSparseModel.open`) for the write plan's tensor-local jobs and cost no pass here.
 */
export async function resolveSparse(
  tensors: SparseTensor[],
  run: RunPlan,
  isLocal: (t: SparseTensor) => boolean = () => false,
): Promise<Map<string, ResolvedSparse>> {
  const queries: RankQuery[] = [];
  const cutsOf = new Map<string, { low?: RankQuery; high?: RankQuery }>();
  for (const t of tensors) {
    if (isLocal(t)) continue;
    const bits = 31 + indexBits(t.count);
    for (const m of t.spec.models) {
      if (m.selection !== 'magnitude' || m.density >= 1) continue;
      const { top, keep } = magnitudeCounts(t.count, m.density, m.gamma);
      const low: RankQuery = { tensor: t, model: m.model, rank: top + keep, remaining: bits, prefix: 0n };
      const entry: { low?: RankQuery; high?: RankQuery } = { low };
      queries.push(low);
      if (top > 0) {
        entry.high = { tensor: t, model: m.model, rank: top, remaining: bits, prefix: 0n };
        queries.push(entry.high);
      }
      cutsOf.set(`${t.name}\u0000${m.model}`, entry);
    }
  }
  await selectCuts(queries, run);

  const resolved = new Map<string, ResolvedSparse>();
  const l1: { tensor: SparseTensor; model: ResolvedSparseModel }[] = [];
  for (const t of tensors) {
    const local = isLocal(t);
    const models = t.spec.models.map((m): ResolvedSparseModel => {
      const r: ResolvedSparseModel = { model: m.model, weight: m.weight, lowKey: 0n, highKey: KEY_NONE, density: 1, seedKey: 0n, scale: 1 };
      if (m.selection === 'none' || m.density >= 1) return r;
      if (m.selection === 'magnitude' && local) {
        const { top, keep } = magnitudeCounts(t.count, m.density, m.gamma);
        r.open = { select: true, lowRank: top + keep, highRank: top, l1: false };
      } else if (m.selection === 'magnitude') {
        const cuts = cutsOf.get(`${t.name}\u0000${m.model}`)!;
        r.lowKey = cuts.low!.cut!;
        if (cuts.high) r.highKey = cuts.high.cut!;
      } else if (m.density <= 0) {
        r.lowKey = KEY_NONE; // Bernoulli(0) keeps nothing
      } else {
        r.density = m.density;
        r.seedKey = maskKey(t.spec.seed, t.name, m.model);
      }
      if (m.rescale === 'inverse' && m.density > 0) r.scale = 1 / m.density;
      if (m.rescale === 'l1' && local) r.open = { select: false, lowRank: 0, highRank: 0, ...r.open, l1: true };
      else if (m.rescale === 'l1') l1.push({ tensor: t, model: r });
      return r;
    });
    resolved.set(t.name, {
      base: t.spec.base,
      consensus: t.spec.consensus,
      normalize: t.spec.normalize,
      lambda: t.spec.lambda,
      indexBits: indexBits(t.count),
      models,
    });
  }
  const sums = await l1Sums(l1, run);
  l1.forEach((item, k) => (item.model.scale = l1Scale(sums[k][0], sums[k][1])));
  return resolved;
}
