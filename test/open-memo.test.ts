/**
 * openModels reads a pair saved alike once (lib/model/open-memo.ts, lib/format/header-memo.ts): the later model shares the
 * earlier one's header columns, table columns and index verdict. The oracle is each model opened alone (openCheckpoint, no
 * memo): on random models and on copies changed in one place each (another index, no index, a shard cut short, other
 * metadata), the pair opened together gives the same checkpoints, or refuses with the same error. WEIGHTMIX_SEED replays.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, INDEX_FILE, openCheckpoint } from '../lib/model/checkpoint';
import { openModels } from '../lib/hub/open-model';
import { tensorTableOf } from '../lib/model/tensor-table';
import { headerColumns, writeSafetensorsFile } from '../lib/format/safetensors';
import { preloadNative } from '../lib/engine/native';
import { DTYPE_BITS } from '../lib/format/dtypes';
import { rng } from './helpers/models';
import { RandomTensor, randomTensors } from './helpers/random-tensors';
import { dir as root, useTempDir } from './helpers/temp-dir';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log('open memo: seed', seed, '(replay: WEIGHTMIX_SEED=' + seed + ')');

beforeAll(() => preloadNative());
useTempDir('wm-open-memo-');

/**
 * A model of random tensors in `shardCount` shards with an index, and a config (at least two tensors per shard). Plain names that
 * are no array index (the addon's readers take them; an index read by the JavaScript reader has no one-call check, and each model
 * checks its own).
 */
async function writeModel(dir: string, next: () => number, shardCount: number): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  // No zero-sized tensors: ties in data order make a header the entry path's, which is parsed for each model.
  let tensors: RandomTensor[] = [];
  while (tensors.length < 2 * shardCount) tensors = randomTensors(next, false).filter((t) => !t.shape.includes(0));
  tensors = tensors.map((t) => ({ ...t, name: `w.${t.name}` }));
  const shards = Array.from({ length: shardCount }, (_, s) => `model-0000${s + 1}-of-0000${shardCount}.safetensors`);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shardCount; s++) {
    const mine = tensors.filter((_, i) => i % shardCount === s);
    const data = mine.map((t) => ({ ...t, data: Buffer.alloc((t.shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[t.dtype]) / 8, s + 1) }));
    await writeSafetensorsFile(path.join(dir, shards[s]), data, { format: 'pt' });
    for (const t of mine) weightMap[t.name] = shards[s];
  }
  fs.writeFileSync(path.join(dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  fs.writeFileSync(path.join(dir, 'config.json'), '{"num_hidden_layers": 2}');
  return shards;
}

/** Everything a checkpoint says, as plain values. */
function view(ckpt: Checkpoint) {
  const t = tensorTableOf(ckpt);
  return {
    dir: ckpt.dir,
    names: ckpt.names,
    indexed: ckpt.indexed,
    sidecars: ckpt.sidecars,
    config: ckpt.config,
    tensorBytes: ckpt.tensorBytes,
    tensors: ckpt.tensors,
    table: [t.names, t.dtypes, t.shapeStarts, t.dims, t.offsets, t.byteLengths, t.elementCounts, t.fileIndex, t.files, t.shardNames],
    shards: ckpt.shards.map((s) => ({ name: s.name, path: s.path, ...s.header, tensors: s.header.tensors, metadata: { ...s.header.metadata } })),
  };
}

/** The error (or checkpoint) of opening `dir` alone. */
async function alone(dir: string): Promise<ReturnType<typeof view> | Error> {
  return openCheckpoint(dir).then(view, (e: Error) => e);
}

async function together(dirs: string[]): Promise<ReturnType<typeof view>[] | Error> {
  return openModels(dirs).then(
    (ckpts) => ckpts.map(view),
    (e: Error) => e,
  );
}

test("a copy of a model opens as itself alone would, sharing the first one's columns", async () => {
  const next = rng(seed);
  for (let round = 0; round < 8; round++) {
    const a = path.join(root, `copy-${round}-a`);
    const b = path.join(root, `copy-${round}-b`);
    await writeModel(a, next, 1 + Math.floor(next() * 3));
    fs.cpSync(a, b, { recursive: true });
    const [ca, cb] = await openModels([a, b]);
    expect([view(ca), view(cb)]).toEqual([await alone(a), await alone(b)]);
    // The fast path ran: the second model's header columns and table columns are the first one's objects.
    cb.shards.forEach((s, i) => expect(headerColumns(s.header)).toBe(headerColumns(ca.shards[i].header)));
    expect(tensorTableOf(cb).offsets).toBe(tensorTableOf(ca).offsets);
    expect(tensorTableOf(cb).files).toEqual(cb.shards.map((s) => s.path));
    // Each header's metadata is its own object.
    ca.shards[0].header.metadata!.format = 'changed';
    expect(cb.shards[0].header.metadata!.format).toBe('pt');
  }
});

test('a copy changed in one place opens (or is refused) as it is alone, after the model it copies', async () => {
  const next = rng(seed + 1);
  for (const change of [
    'index lists a tensor in another shard',
    'index lists a tensor twice',
    'no index',
    'a shard cut short',
    'other metadata',
    'a shard missing',
  ] as const) {
    const a = path.join(root, `${change}-a`);
    const b = path.join(root, `${change}-b`);
    const shards = await writeModel(a, next, 3);
    fs.cpSync(a, b, { recursive: true });
    const indexPath = path.join(b, INDEX_FILE);
    const index = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    const first = Object.keys(index.weight_map)[0];
    if (change === 'index lists a tensor in another shard') {
      // Not the first name listed of its shard, so that the shards keep their order (the index's order) and the table its columns.
      const keys = Object.keys(index.weight_map);
      const moved = keys.find(
        (k, i) => index.weight_map[k] !== index.weight_map[first] && keys.slice(0, i).some((j) => index.weight_map[j] === index.weight_map[k]),
      )!;
      index.weight_map[moved] = index.weight_map[first];
      fs.writeFileSync(indexPath, JSON.stringify(index));
    } else if (change === 'index lists a tensor twice') {
      fs.writeFileSync(indexPath, JSON.stringify(index).replace('"weight_map":{', `"weight_map":{"${first}":"${index.weight_map[first]}",`));
    } else if (change === 'no index') {
      fs.rmSync(indexPath);
    } else if (change === 'a shard cut short') {
      const shard = path.join(b, shards[1]);
      fs.truncateSync(shard, fs.statSync(shard).size - 1);
    } else if (change === 'other metadata') {
      const shard = path.join(b, shards[0]);
      const bytes = fs.readFileSync(shard);
      // Same length, one byte of the header's metadata value changed ("pt" → "pu").
      const at = bytes.indexOf('"pt"');
      bytes[at + 2] = 'u'.charCodeAt(0);
      fs.writeFileSync(shard, bytes);
    } else {
      fs.rmSync(path.join(b, shards[2]));
    }
    const pair = await together([a, b]);
    const expected = [await alone(a), await alone(b)];
    if (expected[1] instanceof Error) {
      expect(pair).toBeInstanceOf(Error);
      expect((pair as Error).message).toBe(expected[1].message);
    } else {
      expect(pair).toEqual(expected);
    }
  }
});

test('models saved differently (another sharding of the same tensors) share nothing and open as alone', async () => {
  const next = rng(seed + 2);
  const a = path.join(root, 'other-a');
  const b = path.join(root, 'other-b');
  await writeModel(a, next, 2);
  await writeModel(b, next, 3);
  const [ca, cb] = await openModels([a, b]);
  expect([view(ca), view(cb)]).toEqual([await alone(a), await alone(b)]);
  expect(tensorTableOf(cb).offsets).not.toBe(tensorTableOf(ca).offsets);
});
