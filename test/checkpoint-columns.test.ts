/**
 * Opening a model keeps its tensors as columns (lib/model/tensor-table.ts, lib/format/header-columns.ts);
 * `Checkpoint.tensors` and `SafetensorsHeader.tensors` are built on first read, and the planner, the
 * compatibility check and the layout read the columns. The oracle is the object path: TensorLocation
 * objects built field by field from each shard's header entries, a Map of them, the layout grouped
 * from the Map, and a plan over checkpoints whose only table is that Map. On random models (random
 * names, some needing JSON escapes, so that both the addon's readers and the JavaScript ones run;
 * every dtype, zero-sized tensors, 1-3 shards with or without an index, metadata) both give the same
 * values and the same plan. WEIGHTMIX_SEED=<seed> replays them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, openCheckpoint, TensorLocation } from '../lib/model/checkpoint';
import { sameJoined, tableOfLocations, tensorTableOf } from '../lib/model/tensor-table';
import { checkCompatible, planMerge, TensorRecipe } from '../lib/engine/plan';
import { checkpointLayout, layoutColumns, LayoutTensor } from '../lib/engine/output-layout';
import { preloadNative } from '../lib/engine/native';
import { nativeJsonTables, useNativeJsonTables } from '../lib/format/json-tables';
import { DTYPE_BITS, isFloatDtype, SafetensorsDtype } from '../lib/format/dtypes';
import { headerColumns, writeSafetensorsFile } from '../lib/format/safetensors';
import { indexFile } from '../lib/engine/model-files';
import { rng } from './helpers/models';
import { RandomTensor, randomTensors } from './helpers/random-tensors';
import { WeightmixError } from '../lib/errors';
import { dir as root, useTempDir } from './helpers/temp-dir';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log('checkpoint columns: seed', seed, '(replay: WEIGHTMIX_SEED=' + seed + ')');

beforeAll(() => preloadNative());
useTempDir('wm-columns-');

/** A model folder of random tensors in 1-3 shards, with an index when sharded; `plain`: metadata the addon's reader takes (no escapes). */
async function writeRandomModel(dir: string, tensors: RandomTensor[], next: () => number, plain = false): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const shardCount = 1 + Math.floor(next() * Math.min(3, tensors.length));
  const shards = Array.from({ length: shardCount }, (_, s) => (shardCount === 1 ? 'model.safetensors' : `model-0000${s + 1}-of-0000${shardCount}.safetensors`));
  const weightMap: Record<string, string> = Object.create(null);
  for (let s = 0; s < shardCount; s++) {
    const mine = tensors.filter((_, i) => i % shardCount === s);
    const withData = mine.map((t) => {
      const bytes = (t.shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[t.dtype]) / 8;
      return { ...t, data: Buffer.from(Array.from({ length: bytes }, () => Math.floor(next() * 256))) };
    });
    await writeSafetensorsFile(path.join(dir, shards[s]), withData, next() < 0.5 ? { format: 'pt', note: plain ? 'ab' : 'a"b\\c' } : null);
    for (const t of mine) weightMap[t.name] = shards[s];
  }
  if (shardCount > 1) fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
}

/** The object path: a TensorLocation per tensor from each shard's header entries, in shard then data order. */
function referenceLocations(ckpt: Checkpoint): Map<string, TensorLocation> {
  const map = new Map<string, TensorLocation>();
  for (const shard of ckpt.shards) {
    for (const t of shard.header.tensors) {
      map.set(t.name, {
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        shard: shard.name,
        file: shard.path,
        offset: shard.header.dataStart + t.dataOffsets[0],
        byteLength: t.byteLength,
        elementCount: t.elementCount,
      });
    }
  }
  return map;
}

/** A checkpoint whose only table is a plain Map of objects (as a view made by hand is). */
function objectCheckpoint(ckpt: Checkpoint): Checkpoint {
  const tensors = referenceLocations(ckpt);
  return { ...ckpt, tensors, names: [...tensors.keys()] };
}

async function openBoth(dir: string): Promise<{ columns: Checkpoint; js: Checkpoint }> {
  const tables = nativeJsonTables();
  const columns = await openCheckpoint(dir);
  useNativeJsonTables(undefined);
  try {
    return { columns, js: await openCheckpoint(dir) };
  } finally {
    useNativeJsonTables(tables);
  }
}

test('the addon has its readers loaded (or the column path would be the JavaScript readers only)', () => {
  expect(nativeJsonTables()).toBeDefined();
});

test('a checkpoint opened into columns gives the tensors, names and layout of the object path, on random models', async () => {
  const next = rng(seed);
  for (let round = 0; round < 40; round++) {
    const dir = path.join(root, `model-${round}`);
    const tensors = randomTensors(next, next() < 0.5);
    await writeRandomModel(dir, tensors, next);
    const { columns, js } = await openBoth(dir);
    for (const ckpt of [columns, js]) {
      const reference = referenceLocations(ckpt);
      // The table before the Map exists, then the Map as the object path builds it.
      const table = tensorTableOf(ckpt);
      const fromObjects = tableOfLocations([...reference]);
      const columnsOf = ({ names, dtypes, shapeStarts, dims, offsets, byteLengths, elementCounts, fileIndex, files, shardNames }: typeof table) => ({
        names,
        dtypes,
        shapeStarts,
        dims,
        offsets,
        byteLengths,
        elementCounts,
        fileIndex,
        files,
        shardNames,
      });
      expect(columnsOf(table)).toEqual(columnsOf(fromObjects));
      // What a table read from headers vouches for (the planner's runs skip their check on it): each file's rows stored one after the
      // other, checked here against the object path's locations.
      expect(table.filesContiguous).toBe(true);
      const rows = [...reference.values()];
      for (let q = 1; q < rows.length; q++) if (rows[q].file === rows[q - 1].file) expect(rows[q].offset).toBe(rows[q - 1].offset + rows[q - 1].byteLength);
      expect(ckpt.names).toEqual([...reference.keys()]);
      expect(ckpt.tensors).toEqual(reference);
      expect(ckpt.tensorBytes).toBe([...reference.values()].reduce((n, t) => n + t.byteLength, 0));
      // The layout: each shard's tensors in data order, as grouped from the Map.
      const layout = checkpointLayout(ckpt);
      expect(layout.shards.map((s) => s.name)).toEqual(ckpt.shards.map((s) => s.name));
      layout.shards.forEach((s) => {
        const expected: LayoutTensor[] = ckpt.names
          .map((n) => reference.get(n)!)
          .filter((t) => t.shard === s.name)
          .map((t) => ({ name: t.name, shape: t.shape, elementCount: t.elementCount }));
        expect(layoutColumns(s)).toEqual(layoutColumns({ name: s.name, tensors: expected }));
        expect(s.tensors).toEqual(expected);
      });
    }
    // Both readers give the same checkpoint.
    expect(columns.tensors).toEqual(js.tensors);
    columns.shards.forEach((s, i) => {
      expect(s.header.tensors).toEqual(js.shards[i].header.tensors);
      expect(s.header.byName).toEqual(js.shards[i].header.byName);
      expect(s.header.metadata).toEqual(js.shards[i].header.metadata);
    });
  }
});

test('planMerge and checkCompatible over columns equal the same over plain Maps of objects, on random model pairs', async () => {
  const next = rng(seed + 1);
  for (let round = 0; round < 25; round++) {
    const tensors = randomTensors(next, next() < 0.3);
    const a = path.join(root, `pair-${round}-a`);
    const b = path.join(root, `pair-${round}-b`);
    await writeRandomModel(a, tensors, next);
    // The second model: the same names, float dtypes changed at random, its own sharding.
    const floats: SafetensorsDtype[] = ['BF16', 'F16', 'F32'];
    await writeRandomModel(
      b,
      tensors.map((t) => (isFloatDtype(t.dtype) && next() < 0.5 ? { ...t, dtype: floats[Math.floor(next() * 3)] } : t)),
      next,
    );
    const lazy = [await openCheckpoint(a), await openCheckpoint(b)];
    const objects = lazy.map(objectCheckpoint);
    expect(() => checkCompatible(lazy[0], lazy[1])).not.toThrow();
    expect(() => checkCompatible(objects[0], objects[1])).not.toThrow();
    const lambda = next();
    const spec = (ckpts: Checkpoint[]) => ({
      checkpoints: ckpts,
      layout: checkpointLayout(ckpts[next() < 0.5 ? 0 : 1]),
      outputs: [{ dir: '/out', metadata: { format: 'pt' } }],
      recipe: (name: string): TensorRecipe => {
        const t = ckpts[0].tensors.get(name)!;
        return isFloatDtype(t.dtype) ? { op: 'lerp', models: [0, 1], w: [lambda], dtype: t.dtype } : { op: 'copy', models: [1], w: [0], dtype: t.dtype };
      },
    });
    // The same layout model for both: draw once.
    const pickA = next() < 0.5;
    const planOf = (ckpts: Checkpoint[]) => planMerge({ ...spec(ckpts), layout: checkpointLayout(ckpts[pickA ? 0 : 1]) });
    const fromObjects = planOf(objects);
    // Columns first (the Maps are not built yet), then the object view of the same checkpoints.
    const fromColumns = planOf(lazy);
    expect(fromColumns.packedJobs.words).toEqual(fromObjects.packedJobs.words);
    expect(fromColumns.packedJobs.work).toEqual(fromObjects.packedJobs.work);
    expect(fromColumns.packedJobs.count).toBe(fromObjects.packedJobs.count);
    expect(fromColumns.outputs).toEqual(fromObjects.outputs);
    expect(fromColumns.models).toEqual(fromObjects.models);
    expect(fromColumns.inputs).toEqual(fromObjects.inputs);
  }
});

test('sameJoined tells texts cut anywhere apart as their joins do', () => {
  const next = rng(seed + 5);
  const int = (n: number) => Math.floor(next() * n);
  // A list of strings that joined make `text`, cut at 0-4 random places (empty pieces included).
  const cutUp = (text: string) => {
    const cuts = Array.from({ length: int(5) }, () => int(text.length + 1)).sort((x, y) => x - y);
    return [0, ...cuts].map((at, k, all) => text.slice(at, all[k + 1] ?? text.length));
  };
  let same = 0;
  for (let round = 0; round < 2000; round++) {
    const a = Array.from({ length: int(12) }, () => 'ab\n'[int(3)]).join('');
    // Equal, or changed in one place (a character, a character more or fewer).
    const kind = int(4);
    const at = int(a.length + 1);
    const b =
      kind === 0 ? a : kind === 1 ? a.slice(0, at) + 'x' + a.slice(at + 1) : kind === 2 ? a.slice(0, at) + 'a' + a.slice(at) : a.slice(0, at) + a.slice(at + 1);
    const x = cutUp(a);
    const y = cutUp(b);
    expect({ x, y, same: sameJoined(x, y) }).toEqual({ x, y, same: x.join('') === y.join('') });
    if (x.join('') === y.join('')) same++;
  }
  expect(same).toBeGreaterThan(400);
  expect(same).toBeLessThan(1900);
});

test('checkCompatible over columns names the same difference as over objects', async () => {
  const next = rng(seed + 2);
  const tensors = randomTensors(next, false).map((t) => ({ ...t, dtype: 'BF16' as const, shape: [2, 3] }));
  const a = path.join(root, 'diff-a');
  const b = path.join(root, 'diff-b');
  const c = path.join(root, 'diff-c');
  await writeRandomModel(a, tensors, next);
  await writeRandomModel(b, [...tensors.slice(1), { name: 'only.in.b', dtype: 'BF16', shape: [1] }], next);
  await writeRandomModel(
    c,
    tensors.map((t, i) => (i === tensors.length - 1 ? { ...t, shape: [3, 2] } : t)),
    next,
  );
  for (const other of [b, c]) {
    const lazy = [await openCheckpoint(a), await openCheckpoint(other)];
    const objects = lazy.map(objectCheckpoint);
    const message = (ckpts: Checkpoint[]) => {
      try {
        checkCompatible(ckpts[0], ckpts[1]);
        return 'compatible';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(message(lazy)).not.toBe('compatible');
    expect(message(lazy)).toBe(message(objects));
  }
});

test('checkCompatible of two models of one layout (its check without a loop per tensor) decides as over objects, on random near misses', async () => {
  const next = rng(seed + 5);
  const floats: SafetensorsDtype[] = ['BF16', 'F16', 'F32'];
  const outcomes = new Set<string>();
  let sameNames = 0;
  for (let round = 0; round < 40; round++) {
    const tensors = randomTensors(next, next() < 0.3);
    const k = Math.floor(next() * tensors.length);
    // One change to one tensor of the second model, or none: another float dtype, a raw dtype, a dim changed, a dim added.
    const change = Math.floor(next() * 5);
    const other = tensors.map((u, i) =>
      i !== k
        ? u
        : change === 1 && isFloatDtype(u.dtype)
          ? { ...u, dtype: floats[Math.floor(next() * 3)] }
          : change === 2
            ? { ...u, dtype: (u.dtype === 'I64' ? 'I32' : 'I64') as SafetensorsDtype }
            : change === 3 && u.shape.length > 0
              ? { ...u, shape: u.shape.map((d, i) => (i === 0 ? d + 8 : d)) }
              : change === 4
                ? { ...u, shape: [1, ...u.shape] }
                : u,
    );
    // The same shards for both (one draw replayed): the names come in the same order, so the columns can be compared whole.
    const layoutSeed = Math.floor(next() * 2 ** 31);
    const a = path.join(root, `near-${round}-a`);
    const b = path.join(root, `near-${round}-b`);
    await writeRandomModel(a, tensors, rng(layoutSeed), true);
    await writeRandomModel(b, other, rng(layoutSeed), true);
    const lazy = [await openCheckpoint(a), await openCheckpoint(b)];
    const message = (ckpts: Checkpoint[]) => {
      try {
        checkCompatible(ckpts[0], ckpts[1]);
        return 'compatible';
      } catch (e) {
        return `${(e as WeightmixError).code}: ${(e as Error).message}`;
      }
    };
    const outcome = message(lazy);
    const texts = lazy.map((c) => tensorTableOf(c).fileNamesTexts?.join(''));
    if (texts[0] !== undefined && texts[0] === texts[1]) sameNames++;
    expect(outcome).toBe(message(lazy.map(objectCheckpoint)));
    outcomes.add(outcome.split(':')[0]);
  }
  expect([...outcomes].sort()).toEqual(['DtypeMismatch', 'ShapeMismatch', 'compatible']);
  // Most pairs are read by the addon (names without escapes), whose texts of equal names are equal: the path without a loop is taken.
  expect(sameNames).toBeGreaterThan(15);
});

test('checkpointLayout of a table whose shards are interleaved (gathered tensor by tensor) groups each shard in table order', async () => {
  const next = rng(seed + 6);
  for (let round = 0; round < 10; round++) {
    const dir = path.join(root, `interleaved-${round}`);
    await writeRandomModel(dir, randomTensors(next, false), next);
    const opened = await openCheckpoint(dir);
    const reference = referenceLocations(opened);
    // A hand-made view listing the tensors in a shuffled order: its table's runs interleave the shards.
    const names = [...reference.keys()].sort(() => next() - 0.5);
    const view: Checkpoint = { ...opened, names, tensors: new Map(names.map((n) => [n, reference.get(n)!])) };
    checkpointLayout(view).shards.forEach((s) => {
      const expected: LayoutTensor[] = names
        .map((n) => reference.get(n)!)
        .filter((t) => t.shard === s.name)
        .map((t) => ({ name: t.name, shape: t.shape, elementCount: t.elementCount }));
      expect(layoutColumns(s)).toEqual(layoutColumns({ name: s.name, tensors: expected }));
    });
  }
});

test('opening names the first tensor stored twice, or the first one the index places elsewhere, as the check by name did', async () => {
  const t = (name: string) => ({ name, dtype: 'BF16' as const, shape: [2], data: Buffer.alloc(4) });
  const dir = path.join(root, 'twice');
  fs.mkdirSync(dir, { recursive: true });
  await writeSafetensorsFile(path.join(dir, 'a.safetensors'), [t('x.one'), t('x.two'), t('x.three')], null);
  await writeSafetensorsFile(path.join(dir, 'b.safetensors'), [t('y.one'), t('x.three'), t('x.two')], null);
  await expect(openCheckpoint(dir)).rejects.toMatchObject({
    code: 'DuplicateTensor',
    message: `${dir}: tensor x.three is stored twice (a.safetensors and b.safetensors)`,
  });
  const indexed = path.join(root, 'misplaced');
  fs.mkdirSync(indexed, { recursive: true });
  await writeSafetensorsFile(path.join(indexed, 'a.safetensors'), [t('x.one'), t('x.two')], null);
  await writeSafetensorsFile(path.join(indexed, 'b.safetensors'), [t('y.one'), t('y.two')], null);
  const weightMap = { 'x.one': 'a.safetensors', 'x.two': 'b.safetensors', 'y.one': 'b.safetensors', 'y.two': 'a.safetensors' };
  fs.writeFileSync(path.join(indexed, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  await expect(openCheckpoint(indexed)).rejects.toMatchObject({
    code: 'IndexMismatch',
    message: `${indexed}/model.safetensors.index.json: tensor x.two is in a.safetensors but the index says b.safetensors`,
  });
});

test("a checkpoint layout's header and index bytes, encoded from the header reader's name texts, are those encoded from the names", async () => {
  const next = rng(seed + 3);
  let texts = 0;
  for (let round = 0; round < 30; round++) {
    const dir = path.join(root, `texts-${round}`);
    await writeRandomModel(dir, randomTensors(next, next() < 0.3), next, next() < 0.5);
    const ckpt = await openCheckpoint(dir);
    const layout = checkpointLayout(ckpt);
    // The same layout with each shard's names in a fresh list: no text is at hand for them, so the encoders join the names.
    const joined = { ...layout, shards: layout.shards.map((s) => ({ name: s.name, tensors: s.tensors.map((t) => ({ ...t })) })) };
    const spec = (l: typeof layout) => ({
      checkpoints: [ckpt],
      layout: l,
      outputs: [{ dir: '/out', metadata: { format: 'pt' } }],
      recipe: (name: string): TensorRecipe => ({ op: 'copy', models: [0], w: [0], dtype: ckpt.tensors.get(name)!.dtype }),
    });
    const [fromTexts, fromNames] = [planMerge(spec(layout)), planMerge(spec(joined))];
    expect(fromTexts.outputs).toEqual(fromNames.outputs);
    expect(indexFile(fromTexts.models[0])).toEqual(indexFile(fromNames.models[0]));
    if (ckpt.shards.every((s) => headerColumns(s.header).namesText !== undefined)) texts++;
  }
  // Some rounds had every header read by the addon (plain names), so that its texts were used.
  expect(texts).toBeGreaterThan(3);
});
