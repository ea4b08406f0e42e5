/**
 * The planner's slow, obvious references (test/plan-columns.test.ts, test/plan-runs.test.ts): random plans, the object path that
 * built one NativeJob per tensor, and the runs of plain jobs the writer joins.
 */
import { Checkpoint, TensorLocation } from '../../lib/model/checkpoint';
import { MergeSpec, planMerge, TensorRecipe } from '../../lib/engine/plan';
import { NativeDest, NativeJob, NativeSource } from '../../lib/engine/native';
import { encodeSparseParams, ResolvedSparse } from '../../lib/engine/sparse-params';
import { encodeElementwiseParams } from '../../lib/engine/elementwise-params';
import { NATIVE_DTYPE_BYTES, nativeDtype, SafetensorsDtype } from '../../lib/format/dtypes';
import type { OutputLayout } from '../../lib/engine/output-layout';
import { packJobs } from '../../lib/engine/packed-jobs';

export const FLOATS: SafetensorsDtype[] = ['BF16', 'F16', 'F32'];

export interface RandomPlan {
  spec: MergeSpec;
  tensors: { name: string; elementCount: number }[];
}

/** Models of random tensors (some raw I64), a random layout and random recipes per (tensor, output). */
export function randomPlan(next: () => number, alike = false): RandomPlan {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
  const int = (n: number) => Math.floor(next() * n);
  const modelCount = 2 + int(3);
  const outputCount = 1 + int(3);
  const tensorCount = 1 + int(40);
  const tensors = Array.from({ length: tensorCount }, (_, i) => {
    const shape = Array.from({ length: 1 + int(3) }, () => 1 + int(9));
    return { name: `model.layers.${i}.w${int(5)}`, shape, elementCount: shape.reduce((a, b) => a * b, 1), raw: next() < 0.15 };
  });
  // Models saved alike (`alike`): each tensor in the same shard of every model, mostly BF16, stored one after the other.
  const shardOf = tensors.map(() => Math.min(2, Math.floor(next() * 1.3)));
  const checkpoints: Checkpoint[] = Array.from({ length: modelCount }, (_, m) => {
    const locations = new Map<string, TensorLocation>();
    let offset = 8 + int(100);
    const ends = [8, 8, 8];
    tensors.forEach((t, i) => {
      const dtype: SafetensorsDtype = t.raw ? 'I64' : alike && next() < 0.9 ? 'BF16' : pick(FLOATS);
      const byteLength = t.elementCount * (dtype === 'I64' ? 8 : NATIVE_DTYPE_BYTES[nativeDtype(dtype)]);
      const shard = `s${alike ? shardOf[i] : int(3)}.safetensors`;
      const at = alike ? ends[shardOf[i]] : offset;
      locations.set(t.name, { name: t.name, dtype, shape: t.shape, shard, file: `/m${m}/${shard}`, offset: at, byteLength, elementCount: t.elementCount });
      if (alike) ends[shardOf[i]] += byteLength;
      offset += byteLength + int(3) * 8;
    });
    return { dir: `/m${m}`, shards: [], tensors: locations, names: tensors.map((t) => t.name), indexed: true, sidecars: [], config: null, tensorBytes: offset };
  });
  // Random shards of the output, in order.
  const layout: OutputLayout = { shards: [], indexed: true };
  for (const t of tensors) {
    if (layout.shards.length === 0 || next() < 0.2) layout.shards.push({ name: `out-${layout.shards.length}.safetensors`, tensors: [] });
    layout.shards[layout.shards.length - 1].tensors.push({ name: t.name, shape: t.shape, elementCount: t.elementCount });
  }
  const raw = new Set(tensors.filter((t) => t.raw).map((t) => t.name));
  const recipes = new Map<string, TensorRecipe>();
  const shared = [0, 1];
  const distinct = (n: number) => {
    const all = Array.from({ length: modelCount }, (_, i) => i);
    for (let i = all.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [all[i], all[j]] = [all[j], all[i]];
    }
    return all.slice(0, n);
  };
  // A lerp reads exactly models 0 and 1, so a tensor that any output lerps is read by no other model.
  const pairTensors = new Set(tensors.filter(() => next() < (alike ? 0.9 : 0.4)).map((t) => t.name));
  const randomRecipe = (name: string): TensorRecipe => {
    const dtype = alike && next() < 0.9 ? 'BF16' : pick(FLOATS);
    if (raw.has(name)) return { op: 'copy', models: [int(modelCount)], w: [0], dtype: 'I64' };
    if (pairTensors.has(name)) {
      if (next() < 0.3) return { op: 'copy', models: [int(2)], w: [0], dtype };
      // The shared [0, 1] list takes the planner's no-index-array path; a fresh one the general path.
      return { op: pick(['lerp', 'lerp_mi'] as const), models: next() < 0.5 ? shared : [0, 1], w: [next() * 2 - 0.5], dtype };
    }
    switch (int(7)) {
      case 0:
      case 1:
        return { op: 'copy', models: distinct(1 + int(2)), w: [0], dtype };
      case 2: {
        const models = distinct(1 + int(modelCount));
        return { op: 'linear', models, w: models.map(() => next() - 0.5), dtype };
      }
      case 3:
        return { op: 'nearswap', models: distinct(2), w: [next()], dtype };
      case 4: {
        const models = distinct(2 + int(modelCount - 1));
        return { op: 'ram', models, w: [next(), ...models.slice(1).map(() => next())], dtype };
      }
      case 5: {
        const models = distinct(2 + int(modelCount - 1));
        const sparse: ResolvedSparse = {
          base: models[0],
          consensus: pick(['sum', 'count', null] as const),
          normalize: next() < 0.5,
          lambda: next(),
          indexBits: 1 + int(30),
          models: models.slice(1).map((model) => ({
            model,
            weight: next(),
            lowKey: BigInt(int(2 ** 30)),
            highKey: BigInt(int(2 ** 30)) << 20n,
            density: next(),
            seedKey: BigInt(int(2 ** 30)),
            scale: next() * 3,
          })),
        };
        return { op: 'sparse', models, w: [], dtype, sparse };
      }
      default:
        return { op: 'copy', models: [int(modelCount)], w: [0], dtype };
    }
  };
  const outputs = Array.from({ length: outputCount }, (_, o) => ({ dir: `/out${o}`, metadata: { o: String(o) } }));
  // Outputs sometimes share a tensor's recipe object (a sweep's shared model lists), else each has its own.
  const chosen = new Map<string, TensorRecipe>();
  const recipe = (name: string, o: number) => {
    const own = `${name}#${o}`;
    if (!chosen.has(own)) {
      const key = next() < 0.3 ? name : own;
      if (!recipes.has(key)) recipes.set(key, randomRecipe(name));
      chosen.set(own, recipes.get(key)!);
    }
    return chosen.get(own)!;
  };
  const filter = next() < 0.3 ? (shard: string) => shard !== 'out-1.safetensors' : undefined;
  return { spec: { checkpoints, layout, outputs, recipe, shardFilter: filter }, tensors };
}

/** The object path: one job per written tensor, as the planner built them before it wrote columns. */
export function referenceJobs(spec: MergeSpec, plan: ReturnType<typeof planMerge>): NativeJob[] {
  const inputs = new Map(plan.inputs.map((p, i) => [p, i]));
  const jobs: NativeJob[] = [];
  let outputAt = 0;
  for (const shard of spec.layout.shards) {
    const written = spec.shardFilter ? spec.shardFilter(shard.name) : true;
    const outIndex = spec.outputs.map((_, o) => outputAt + o);
    if (!written) continue;
    outputAt += spec.outputs.length;
    const starts = spec.outputs.map((_, o) => {
      const out = plan.outputs[outIndex[o]];
      const begin = out.head.length;
      let at = begin;
      return shard.tensors.map((t) => {
        const start = at;
        const dtype = spec.recipe(t.name, o).dtype;
        at += t.elementCount * (dtype === 'I64' ? 8 : NATIVE_DTYPE_BYTES[nativeDtype(dtype)]);
        return start;
      });
    });
    shard.tensors.forEach((t, i) => {
      const recipes = spec.outputs.map((_, o) => spec.recipe(t.name, o));
      const used = [...new Set(recipes.flatMap((r) => r.models))].sort((x, y) => x - y);
      const locations = used.map((m) => spec.checkpoints[m].tensors.get(t.name)!);
      const raw = locations.find((l) => nativeDtype(l.dtype) === 'U8');
      const sources: NativeSource[] = locations.map((l) => ({ input: inputs.get(l.file)!, offset: l.offset, dtype: nativeDtype(l.dtype) }));
      const dests: NativeDest[] = recipes.map((r, o) => {
        const srcs = r.models.map((m) => used.indexOf(m));
        const dest = { output: outIndex[o], offset: starts[o][i], dtype: nativeDtype(r.dtype), op: r.op };
        switch (r.op) {
          case 'copy':
            return { ...dest, w: [srcs[r.w[0]]] };
          case 'linear': {
            const w = used.map(() => 0);
            srcs.forEach((s, k) => (w[s] += r.w[k]));
            return { ...dest, w };
          }
          case 'sparse':
            return { ...dest, w: [], params: encodeSparseParams(r.sparse!, (model) => srcs[r.models.indexOf(model)]) };
          case 'nearswap':
          case 'ram':
            return { ...dest, w: [], params: encodeElementwiseParams(r.op, srcs, r.w) };
          default:
            return { ...dest, w: r.w };
        }
      });
      jobs.push({ count: raw ? raw.byteLength : t.elementCount, sources, dests });
    });
  }
  return jobs;
}

/**
 * Whether the planner writes tensor i's job as a plain one (plan.ts's plainDest): every output's recipe shares one ascending model
 * list, and is a lerp of two models or a copy of one of its own.
 */
export function plainTensor(spec: MergeSpec, name: string): boolean {
  const recipes = spec.outputs.map((_, o) => spec.recipe(name, o));
  const models = recipes[0].models;
  if (!recipes.every((r) => r.models === models) || !models.every((m, k) => k === 0 || models[k - 1] < m)) return false;
  return recipes.every(
    (r) => ((r.op === 'lerp' || r.op === 'lerp_mi') && models.length === 2) || (r.op === 'copy' && Number.isInteger(r.w[0]) && r.w[0] < models.length),
  );
}

/** The reference jobs with each plain job that continues the plain job before it (every source and dest right after it, same fields) joined to it. */
export function referenceRuns(jobs: NativeJob[], plain: boolean[]): NativeJob[] {
  const runs: NativeJob[] = [];
  const bytes = (dtype: NativeSource['dtype'], count: number) => count * NATIVE_DTYPE_BYTES[dtype];
  let open = false;
  jobs.forEach((job, j) => {
    const last = runs[runs.length - 1];
    const continues =
      open &&
      plain[j] &&
      last.sources.length === job.sources.length &&
      last.sources.every(
        (s, k) => s.input === job.sources[k].input && s.dtype === job.sources[k].dtype && s.offset + bytes(s.dtype, last.count) === job.sources[k].offset,
      ) &&
      last.dests.length === job.dests.length &&
      last.dests.every((d, k) => {
        const e = job.dests[k];
        return d.output === e.output && d.dtype === e.dtype && d.op === e.op && d.w.join() === e.w.join() && d.offset + bytes(d.dtype, last.count) === e.offset;
      });
    if (continues) last.count += job.count;
    else runs.push(structuredClone(job));
    open = plain[j];
  });
  return runs;
}

/** The written tensors' names, in job order. */
export function writtenNames(spec: MergeSpec): string[] {
  return spec.layout.shards.filter((s) => !spec.shardFilter || spec.shardFilter(s.name)).flatMap((s) => s.tensors.map((t) => t.name));
}

/** native/executor.cc's pieceWeight per job: written bytes, or read bytes of a job that writes nothing. */
export const referenceWork = (j: NativeJob) =>
  (j.dests.length > 0 ? j.dests.map((d) => d.dtype) : j.sources.map((s) => s.dtype)).reduce((n, d) => n + j.count * NATIVE_DTYPE_BYTES[d], 0);

/** Plans `spec` and checks it against the object path with its plain runs joined: the same words, one progress weight per tensor. */
export function planAgainstReference(spec: MergeSpec): { plan: ReturnType<typeof planMerge>; reference: NativeJob[]; runs: NativeJob[] } {
  const plan = planMerge(spec);
  const reference = referenceJobs(spec, plan);
  const runs = referenceRuns(
    reference,
    writtenNames(spec).map((name) => plainTensor(spec, name)),
  );
  expect(Array.from(plan.packedJobs.words)).toEqual(Array.from(packJobs(runs)));
  expect(Array.from(plan.packedJobs.work)).toEqual(reference.map(referenceWork));
  return { plan, reference, runs };
}
