/**
 * planMerge writes its jobs straight into the packed layout (PackedJobWriter) instead of building a
 * job object per tensor and packing them. The oracle here is the object path it replaced, kept as
 * the slow obvious reference: one NativeJob per tensor, built field by field, then packJobs. On
 * random plans (random models, dtypes, raw tensors, shards, outputs and recipes of every op that
 * needs no statistics) both give the same words, the same progress weights, and unpackJobs gives
 * back the same objects. WEIGHTMIX_SEED=<seed> replays them.
 */
import { Checkpoint, TensorLocation } from '../lib/model/checkpoint';
import { MergeSpec, planMerge, TensorRecipe } from '../lib/engine/plan';
import { NativeDest, NativeJob, NativeSource } from '../lib/engine/native';
import { packJobColumns, packJobs, PackedJobWriter, unpackJobs } from '../lib/engine/packed-jobs';
import { encodeSparseParams, ResolvedSparse } from '../lib/engine/sparse-params';
import { encodeElementwiseParams } from '../lib/engine/elementwise-params';
import { NATIVE_DTYPE_BYTES, nativeDtype, SafetensorsDtype } from '../lib/format/dtypes';
import type { OutputLayout } from '../lib/engine/output-layout';
import { indexFile, indexText } from '../lib/engine/model-files';
import { loadNative } from '../lib/engine/native';
import { rng } from './helpers/models';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log('seed', seed);

const FLOATS: SafetensorsDtype[] = ['BF16', 'F16', 'F32'];

interface RandomPlan {
  spec: MergeSpec;
  tensors: { name: string; elementCount: number }[];
}

/** Models of random tensors (some raw I64), a random layout and random recipes per (tensor, output). */
function randomPlan(next: () => number, alike = false): RandomPlan {
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
function referenceJobs(spec: MergeSpec, plan: ReturnType<typeof planMerge>): NativeJob[] {
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
function plainTensor(spec: MergeSpec, name: string): boolean {
  const recipes = spec.outputs.map((_, o) => spec.recipe(name, o));
  const models = recipes[0].models;
  if (!recipes.every((r) => r.models === models) || !models.every((m, k) => k === 0 || models[k - 1] < m)) return false;
  return recipes.every(
    (r) => ((r.op === 'lerp' || r.op === 'lerp_mi') && models.length === 2) || (r.op === 'copy' && Number.isInteger(r.w[0]) && r.w[0] < models.length),
  );
}

/** The reference jobs with each plain job that continues the plain job before it (every source and dest right after it, same fields) joined to it. */
function referenceRuns(jobs: NativeJob[], plain: boolean[]): NativeJob[] {
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
function writtenNames(spec: MergeSpec): string[] {
  return spec.layout.shards.filter((s) => !spec.shardFilter || spec.shardFilter(s.name)).flatMap((s) => s.tensors.map((t) => t.name));
}

/** native/executor.cc's pieceWeight per job: written bytes, or read bytes of a job that writes nothing. */
const referenceWork = (j: NativeJob) =>
  (j.dests.length > 0 ? j.dests.map((d) => d.dtype) : j.sources.map((s) => s.dtype)).reduce((n, d) => n + j.count * NATIVE_DTYPE_BYTES[d], 0);

test('the planner writes the packed words the object path packs, on random plans', () => {
  const next = rng(seed);
  for (let round = 0; round < 150; round++) {
    const { spec } = randomPlan(next, round % 2 === 1);
    const plan = planMerge(spec);
    const reference = referenceJobs(spec, plan);
    const runs = referenceRuns(
      reference,
      writtenNames(spec).map((name) => plainTensor(spec, name)),
    );
    expect(Array.from(plan.packedJobs.words)).toEqual(Array.from(packJobs(runs)));
    expect(plan.packedJobs.count).toBe(runs.length);
    // Progress weights stay one per tensor.
    expect(Array.from(plan.packedJobs.work)).toEqual(reference.map(referenceWork));
    // The object view decodes to the same jobs (toStrictEqual: no field added or missing).
    expect(plan.jobs).toStrictEqual(runs);
  }
});

test('the planner writes the packed words the object path packs when consecutive tensors share recipe objects (as an interpolation does)', () => {
  const next = rng(seed + 7);
  // Half the rounds on models saved alike, whose neighbouring tensors the planner joins into one job where their recipe is plain.
  let round = 0;
  let sharedRuns = 0;
  let joined = 0;
  for (; round < 150; round++) {
    const { spec } = randomPlan(next, round % 2 === 1);
    // One object per (op, model list, dtype), the first one drawn (its weights and parameters fit any tensor), so that neighbours share it.
    const byKind = new Map<string, TensorRecipe>();
    const own = spec.recipe;
    const recipe = (name: string, o: number) => {
      const r = own(name, o);
      const key = `${r.op} ${r.models.join(',')} ${r.dtype}`;
      if (!byKind.has(key)) byKind.set(key, r);
      return byKind.get(key)!;
    };
    const shared = { ...spec, recipe };
    const names = spec.layout.shards.flatMap((s) => s.tensors.map((t) => t.name));
    for (let i = 1; i < names.length; i++) if (spec.outputs.every((_, o) => recipe(names[i], o) === recipe(names[i - 1], o))) sharedRuns++;
    const plan = planMerge(shared);
    const reference = referenceJobs(shared, plan);
    const runs = referenceRuns(
      reference,
      writtenNames(shared).map((name) => plainTensor(shared, name)),
    );
    joined += reference.length - runs.length;
    expect(Array.from(plan.packedJobs.words)).toEqual(Array.from(packJobs(runs)));
    expect(Array.from(plan.packedJobs.work)).toEqual(reference.map(referenceWork));
  }
  expect(sharedRuns).toBeGreaterThan(10);
  // Some tensors were stored one after the other with the same plain recipe, and joined.
  expect(joined).toBeGreaterThan(10);
});

test('statistics jobs keep their flags, statistic and parameters through packing and unpacking, and their read bytes as weight', () => {
  const jobs: NativeJob[] = [
    {
      count: 5,
      sources: [
        { input: 0, offset: 8, dtype: 'BF16' },
        { input: 1, offset: 16, dtype: 'F32' },
      ],
      dests: [],
      moments: true,
    },
    {
      count: 3,
      sources: [
        { input: 1, offset: 0, dtype: 'F16' },
        { input: 0, offset: 0, dtype: 'F16' },
      ],
      dests: [],
      stat: 'histogram',
      statParams: [12, 0, -0],
    },
    { count: 2, sources: [{ input: 0, offset: 0, dtype: 'U8' }], dests: [{ output: 0, offset: 4, dtype: 'U8', op: 'copy', w: [0] }] },
  ];
  const packed = packJobColumns(jobs);
  expect(unpackJobs(packed.words)).toStrictEqual(jobs);
  expect(Object.is(unpackJobs(packed.words)[1].statParams![2], -0)).toBe(true);
  expect(Array.from(packed.work)).toEqual([5 * 6, 3 * 4, 2]);
});

test('the writer grows past its first buffers without losing a word', () => {
  const writer = new PackedJobWriter();
  const jobs: NativeJob[] = [];
  for (let j = 0; j < 3000; j++) {
    const w = Array.from({ length: j % 7 }, (_, k) => k / 3);
    jobs.push({ count: j, sources: [{ input: j % 3, offset: j * 8, dtype: 'BF16' }], dests: [{ output: 0, offset: j, dtype: 'F32', op: 'linear', w }] });
    writer.job(j, 1);
    writer.source(j % 3, j * 8, 'BF16');
    writer.destCount(1);
    writer.dest(0, j, 'F32', 'linear', w);
  }
  const packed = writer.finish();
  expect(packed.words).toEqual(packJobs(jobs));
  expect(unpackJobs(packed.words)).toStrictEqual(jobs);
});

test('the index text is what JSON.stringify writes for the weight map set in sorted order, on random names', () => {
  const next = rng(seed + 1);
  const pieces = ['model', 'layers', '0', '7', '10', '4294967294', '4294967295', '01', '-1', '__proto__', 'é', '\u{1f600}', 'a"b', 'x\\y', '\n', ' '];
  for (let round = 0; round < 200; round++) {
    const names = new Set<string>();
    const count = Math.floor(next() * 30);
    while (names.size < count) {
      const parts = Array.from({ length: 1 + Math.floor(next() * 3) }, () => pieces[Math.floor(next() * pieces.length)]);
      names.add(parts.join(next() < 0.5 ? '.' : ''));
    }
    const all = [...names];
    const shards = [0, 1, 2].map((s) => ({ name: `model-0000${s}.safetensors`, names: all.filter((_, i) => i % 3 === s) }));
    const tensorBytes = Math.floor(next() * 2 ** 40);
    // The reference: the weight map as an object (no prototype, so "__proto__" is a key like any other), keys set in sorted order.
    const weightMap: Record<string, string> = Object.create(null);
    const shardOf = new Map(shards.flatMap((s) => s.names.map((n) => [n, s.name])));
    for (const name of [...all].sort()) weightMap[name] = shardOf.get(name)!;
    expect(indexText({ shards: shards.map((s) => ({ ...s, path: '', size: 0, written: true })), tensorBytes })).toBe(
      JSON.stringify({ metadata: { total_size: tensorBytes }, weight_map: weightMap }, null, 2) + '\n',
    );
  }
});

test('the addon writes the index text byte for byte, or declines to it, on random names', () => {
  loadNative();
  const next = rng(seed + 2);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
  // Printable ASCII the addon takes (sorted by bytes, prefixes of each other, digits inside names), and what it must decline.
  const plain = ['model', 'layers', 'mlp', 'Experts', 'expert', '_', '~', ' ', '!', '.', 'z', 'Z', '0', '7', '10'];
  const other = ['é', '\u{1f600}', 'a"b', 'x\\y', '\n', '\t', '\u007f', '\ud800', '4294967294'];
  let taken = 0;
  for (let round = 0; round < 400; round++) {
    const pieces = next() < 0.6 ? plain : [...plain, ...other];
    const names = new Set<string>();
    const count = Math.floor(next() * 60);
    // Digit-led names now and then only (the addon declines a model that has one).
    const lead = next() < 0.2 ? pieces : pieces.filter((p) => !/^[0-9]/.test(p));
    while (names.size < count) names.add([pick(lead), ...Array.from({ length: Math.floor(next() * 4) }, () => pick(pieces))].join(next() < 0.5 ? '.' : ''));
    const all = [...names];
    const shardCount = 1 + Math.floor(next() * 4);
    const shards = Array.from({ length: shardCount }, (_, s) => ({ name: `model-0000${s}-of-"${shardCount}".safetensors`, names: [] as string[] }));
    for (const name of all) {
      pick(shards).names.push(name);
      // Now and then a name listed in a second shard (the JavaScript map keeps the last).
      if (next() < 0.02) pick(shards).names.push(name);
    }
    const model = { shards: shards.map((s) => ({ ...s, path: '', size: 0, written: true })), tensorBytes: Math.floor(next() * 2 ** 40) };
    const file = indexFile(model);
    if (Buffer.isBuffer(file)) taken++;
    expect(Buffer.from(file).equals(Buffer.from(indexText(model)))).toBe(true);
  }
  // Most plain rounds go through the addon (a round with a digit-led name or a name listed twice does not).
  expect(taken).toBeGreaterThan(80);
});

test('the addon writes the index text byte for byte when each shard lists its names sorted (its merge of sorted runs), or when too many runs make it sort', () => {
  loadNative();
  const next = rng(seed + 3);
  const pieces = ['model', 'layers', 'mlp', 'experts', 'Experts', '_', '~', '.', 'z', '0', '7', '10', '3'];
  const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
  let taken = 0;
  for (let round = 0; round < 300; round++) {
    const names = new Set<string>();
    const count = Math.floor(next() * 400);
    while (names.size < count)
      names.add(['m', ...Array.from({ length: 1 + Math.floor(next() * 5) }, () => pieces[Math.floor(next() * pieces.length)])].join('.'));
    // 1 to 100 shards (past 64 runs the addon sorts), each shard's names sorted, now and then one shard left unsorted or a name listed twice.
    const shardCount = 1 + Math.floor(next() * (next() < 0.8 ? 20 : 100));
    const shards = Array.from({ length: shardCount }, (_, s) => ({ name: `model-${s}-of-${shardCount}.safetensors`, names: [] as string[] }));
    for (const name of names) shards[Math.floor(next() * shardCount)].names.push(name);
    for (const s of shards) if (next() < 0.9) s.names.sort(byBytes);
    if (count > 0 && next() < 0.05) shards[0].names.push([...names][0]);
    const model = { shards: shards.map((s) => ({ ...s, path: '', size: 0, written: true })), tensorBytes: Math.floor(next() * 2 ** 40) };
    const file = indexFile(model);
    if (Buffer.isBuffer(file)) taken++;
    expect(Buffer.from(file).equals(Buffer.from(indexText(model)))).toBe(true);
  }
  expect(taken).toBeGreaterThan(200);
});
