/**
 * planMerge writes its jobs straight into the packed layout (PackedJobWriter) instead of building a
 * job object per tensor and packing them. The oracle here is the object path it replaced, kept as
 * the slow obvious reference: one NativeJob per tensor, built field by field, then packJobs. On
 * random plans (random models, dtypes, raw tensors, shards, outputs and recipes of every op that
 * needs no statistics) both give the same words, the same progress weights, and unpackJobs gives
 * back the same objects. WEIGHTMIX_SEED=<seed> replays them.
 */
import { TensorRecipe } from '../lib/engine/plan';
import { NativeJob } from '../lib/engine/native';
import { packJobColumns, packJobs, PackedJobWriter, unpackJobs } from '../lib/engine/packed-jobs';
import { indexFile, indexText } from '../lib/engine/model-files';
import { loadNative } from '../lib/engine/native';
import { planAgainstReference, randomPlan } from './helpers/plan-references';
import { rng } from './helpers/models';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log('seed', seed);

test('the planner writes the packed words the object path packs, on random plans', () => {
  const next = rng(seed);
  for (let round = 0; round < 150; round++) {
    const { spec } = randomPlan(next, round % 2 === 1);
    // The same words as the object path's jobs with their runs joined, and progress weights one per tensor.
    const { plan, runs } = planAgainstReference(spec);
    expect(plan.packedJobs.count).toBe(runs.length);
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
    const { reference, runs } = planAgainstReference(shared);
    joined += reference.length - runs.length;
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
