import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair, type CheckpointPairOptions, type FixtureDtype } from '../lib/fixtures/fixture';
import { WeightmixError } from '../lib/errors';
import { expectOneLineError, runCli } from './helpers/cli';
import { setUpFixtureRoot, freshDir, loadModel, tensorBytes, decodeAll, isNormGain, relativeDistance, readJson } from './helpers/checkpoint-pair';

setUpFixtureRoot();

/** Every file of a pair written under `dir` (relative path → its bytes as hex), for comparing two runs. */
function bytesOfPair(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const model of ['instruct', 'thinking']) {
    for (const f of fs.readdirSync(path.join(dir, model)).sort()) out[`${model}/${f}`] = fs.readFileSync(path.join(dir, model, f)).toString('hex');
  }
  return out;
}

describe('makeCheckpointPair: determinism and options', () => {
  const make = (options: Partial<CheckpointPairOptions>) => makeCheckpointPair({ dir: freshDir(), shape: 'tiny', ...options });
  const bytesOf = async (folder: string) => tensorBytes(folder, await loadModel(folder));

  test('the same seed gives byte-identical files; another seed different data', async () => {
    const first = await make({ seed: 42, shards: [2, 3] });
    const second = await make({ seed: 42, shards: [2, 3] });
    const other = await make({ seed: 43, shards: [2, 3] });
    for (const variant of ['instruct', 'thinking'] as const) {
      for (const file of fs.readdirSync(first[variant])) {
        expect(fs.readFileSync(path.join(second[variant], file)).equals(fs.readFileSync(path.join(first[variant], file)))).toBe(true);
      }
    }
    const a = await bytesOf(first.instruct);
    const c = await bytesOf(other.instruct);
    for (const [name, bytes] of a) expect(c.get(name)!.equals(bytes)).toBe(false);
  });

  test('tensor data depends on the seed and name only, not on the shard layout', async () => {
    const one = await make({ seed: 5, shards: [1, 4] });
    const three = await make({ seed: 5, shards: [3, 2] });
    for (const variant of ['instruct', 'thinking'] as const) {
      const a = await bytesOf(one[variant]);
      const b = await bytesOf(three[variant]);
      expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
      for (const [name, bytes] of a) expect(b.get(name)!.equals(bytes)).toBe(true);
    }
  });

  test('odd widths (qwen3-4b at scale 101: hidden 25) still give layout-independent data, whatever the chunk alignment', async () => {
    const odd = { shape: 'qwen3-4b', scale: 101, layers: 2, seed: 9 } as const;
    const one = await make({ ...odd, shards: [1, 1] });
    const other = await make({ ...odd, shards: [4, 3] });
    const a = await bytesOf(one.instruct);
    expect([...a.values()].some((bytes) => (bytes.length / 2) % 2 === 1)).toBe(true);
    for (const variant of ['instruct', 'thinking'] as const) {
      const x = await bytesOf(one[variant]);
      const y = await bytesOf(other[variant]);
      for (const [name, bytes] of x) expect(y.get(name)!.equals(bytes)).toBe(true);
    }
    const distance = relativeDistance(a, await bytesOf(one.thinking), 'BF16', (n) => !isNormGain(n));
    expect(Math.abs(distance / 0.027 - 1)).toBeLessThan(0.03);
  });

  test('neighbouring elements are uncorrelated (elements are drawn in pairs)', async () => {
    const pair = await make({ seed: 1 });
    const values = decodeAll((await bytesOf(pair.instruct)).get('model.embed_tokens.weight')!, 'BF16');
    for (const lag of [1, 2]) {
      let sxy = 0;
      let sxx = 0;
      for (let i = 0; i + lag < values.length; i++) {
        sxy += values[i] * values[i + lag];
        sxx += values[i] * values[i];
      }
      expect(Math.abs(sxy / sxx)).toBeLessThan(0.02);
    }
  });

  test.each<[FixtureDtype, number]>([
    ['BF16', 0.1],
    ['F16', 0.027],
    ['F16', 0.005],
    ['F32', 0.027],
    ['F32', 0.001],
  ])('%s with delta %d: relative distance of the projections honoured within 3%%', async (dtype, delta) => {
    const pair = await make({ dtype, delta, seed: 11 });
    const header = (await loadModel(pair.instruct)).headers.get('model.safetensors')!;
    expect(header.tensors.every((t) => t.dtype === dtype)).toBe(true);
    const distance = relativeDistance(await bytesOf(pair.instruct), await bytesOf(pair.thinking), dtype, (n) => !isNormGain(n));
    expect(distance / delta).toBeGreaterThan(0.97);
    expect(distance / delta).toBeLessThan(1.03);
    expect(readJson(path.join(pair.instruct, 'config.json')).torch_dtype).toBe({ BF16: 'bfloat16', F16: 'float16', F32: 'float32' }[dtype]);
  });

  test('delta 0 makes the two models’ tensors identical', async () => {
    const pair = await make({ delta: 0, shards: [1, 2] });
    const a = await bytesOf(pair.instruct);
    const b = await bytesOf(pair.thinking);
    for (const [name, bytes] of a) expect(b.get(name)!.equals(bytes)).toBe(true);
  });

  test('layers overrides the layer count everywhere', async () => {
    const pair = await make({ shape: 'qwen3-4b', scale: 256, layers: 2, shards: [3, 1] });
    const model = await loadModel(pair.instruct);
    expect(model.location.size).toBe(2 + 2 * 11);
    expect(readJson(path.join(pair.instruct, 'config.json'))).toMatchObject({ num_hidden_layers: 2, tie_word_embeddings: true });
    expect(model.location.has('lm_head.weight')).toBe(false);
  });

  test.each<[string, Partial<CheckpointPairOptions>, RegExp]>([
    ['shape', { shape: 'qwen3-8b' as never }, /shape "qwen3-8b".*tiny/],
    ['dtype', { dtype: 'F64' as never }, /dtype "F64".*BF16, F16, F32/],
    ['seed', { seed: -1 }, /seed -1/],
    ['delta', { delta: 1 }, /delta 1/],
    ['shards', { shards: [0, 1] }, /shards 0/],
    ['shards above the tensor count', { shards: [1, 48] }, /shards 48.*47/],
    ['scale', { scale: 0.5 }, /scale 0.5/],
    ['scale that leaves the tokenizer no room', { scale: 3 }, /scale 3: the vocabulary would be 85 tokens, fewer than the tokenizer's 106; at most 2 for tiny/],
  ])('a bad %s is a usage error naming the accepted values', async (_what, options, message) => {
    const attempt = make(options);
    await expect(attempt).rejects.toMatchObject({ code: 'Usage', exitCode: 2 });
    await expect(make(options)).rejects.toThrow(message);
  });

  test('an aborted signal stops generation with an Aborted error', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(make({ signal: controller.signal })).rejects.toMatchObject({ code: 'Aborted' });
  });

  test('cancelling midway removes the half-written models', async () => {
    const dir = freshDir();
    const controller = new AbortController();
    const attempt = makeCheckpointPair({ dir, shape: 'qwen3-30b-a3b', scale: 64, shards: [16, 5], signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    await expect(attempt).rejects.toMatchObject({ code: 'Aborted' });
    // The folder was made for the pair: it goes too.
    expect(fs.existsSync(dir)).toBe(false);
  });

  test('overwrite cancelled midway (or failing) leaves the old pair as it was; a folder made for a cancelled pair is removed', async () => {
    const dir = freshDir();
    await makeCheckpointPair({ dir, shape: 'tiny', seed: 3 });
    const before = snapshotOf(dir);
    const controller = new AbortController();
    const attempt = makeCheckpointPair({ dir, shape: 'qwen3-30b-a3b', scale: 64, shards: [16, 5], overwrite: true, signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    await expect(attempt).rejects.toMatchObject({ code: 'Aborted' });
    expect(snapshotOf(dir)).toEqual(before);
    const made = path.join(freshDir(), 'new', 'pair');
    const cancelled = new AbortController();
    const second = makeCheckpointPair({ dir: made, shape: 'qwen3-30b-a3b', scale: 64, shards: [16, 5], signal: cancelled.signal });
    setTimeout(() => cancelled.abort(), 30);
    await expect(second).rejects.toMatchObject({ code: 'Aborted' });
    expect(fs.existsSync(path.dirname(made))).toBe(false);
  });

  test("overwrite replaces the pair once the new one is complete; a dead run's temporary folder is removed", async () => {
    const dir = freshDir();
    await makeCheckpointPair({ dir, shape: 'tiny', seed: 3 });
    const stale = path.join(dir, '.weightmix-fixture-999999999-0badc0de');
    fs.mkdirSync(path.join(stale, 'instruct'), { recursive: true });
    await makeCheckpointPair({ dir, shape: 'tiny', seed: 4, overwrite: true });
    expect(fs.readdirSync(dir).sort()).toEqual(['instruct', 'thinking']);
    const fresh = freshDir();
    await makeCheckpointPair({ dir: fresh, shape: 'tiny', seed: 4 });
    expect(snapshotOf(dir)).toEqual(snapshotOf(fresh));
  });

  test('every file of both models is fsynced before the pair is renamed into place (a crash leaves no pair with unwritten pages)', async () => {
    const dir = freshDir();
    const events: string[] = [];
    const opened = new WeakMap<object, string>();
    const realOpen = fs.promises.open;
    const realRename = fs.promises.rename;
    const probe = await realOpen(__filename, 'r');
    const handleProto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const realSync = handleProto.sync;
    const spies = [
      jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof realOpen>) => {
        const handle = await realOpen(...args);
        opened.set(handle, String(args[0]));
        return handle;
      }),
      jest.spyOn(handleProto, 'sync').mockImplementation(function (this: object) {
        events.push(`sync ${opened.get(this)}`);
        return realSync.call(this);
      }),
      jest.spyOn(fs.promises, 'rename').mockImplementation(async (from, to) => {
        events.push(`rename ${String(to)}`);
        return realRename(from, to);
      }),
    ];
    try {
      await makeCheckpointPair({ dir, shape: 'tiny', seed: 3 });
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    const firstRename = events.findIndex((e) => e.startsWith('rename '));
    expect(firstRename).toBeGreaterThan(0);
    const synced = new Set(events.slice(0, firstRename).map((e) => e.slice('sync '.length).split(path.sep).slice(-2).join('/')));
    for (const variant of ['instruct', 'thinking']) {
      const stagingSynced = (e: string) =>
        e.startsWith('sync ') && path.basename(e) === variant && path.basename(path.dirname(e)).startsWith('.weightmix-fixture-');
      expect(events.slice(0, firstRename).some(stagingSynced)).toBe(true);
      for (const file of fs.readdirSync(path.join(dir, variant))) expect(synced).toContain(`${variant}/${file}`);
    }
    // The renames themselves made durable: the pair's folder synced after the last of them.
    const lastRename = events.map((e) => e.startsWith('rename ')).lastIndexOf(true);
    expect(events.slice(lastRename + 1)).toContain(`sync ${dir}`);
  });

  test('a folder sync that fails after the renames: IoError, the new pair in place and nothing beside it; one the file system cannot do (EINVAL) is no error', async () => {
    const dir = freshDir();
    await makeCheckpointPair({ dir, shape: 'tiny', seed: 3 });
    const realOpen = fs.promises.open;
    const failWith = (code: string) =>
      jest.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof realOpen>) => {
        const handle = await realOpen(...args);
        if (args[0] === dir) handle.sync = () => Promise.reject(Object.assign(new Error(`${code}: cannot sync`), { code }));
        return handle;
      });
    let spy = failWith('EIO');
    const err = await makeCheckpointPair({ dir, shape: 'tiny', seed: 4, overwrite: true }).catch((e: WeightmixError) => e);
    spy.mockRestore();
    expect([(err as WeightmixError).code, (err as WeightmixError).message]).toEqual([
      'IoError',
      'the pair is in place, but its folder could not be synced to disk: EIO: cannot sync',
    ]);
    expect(fs.readdirSync(dir).sort()).toEqual(['instruct', 'thinking']);
    const fresh = freshDir();
    await makeCheckpointPair({ dir: fresh, shape: 'tiny', seed: 4 });
    expect(snapshotOf(dir)).toEqual(snapshotOf(fresh));
    spy = failWith('EINVAL');
    try {
      await makeCheckpointPair({ dir, shape: 'tiny', seed: 5, overwrite: true });
    } finally {
      spy.mockRestore();
    }
    expect(fs.readdirSync(dir).sort()).toEqual(['instruct', 'thinking']);
  });

  test('the command refuses --scale 0 and --layers 0 naming the flag, before any folder is made', async () => {
    const dir = freshDir();
    for (const flag of ['--scale', '--layers']) {
      const r = await runCli(['fixture', '--shape', 'tiny', '--out', dir, flag, '0']);
      expect(expectOneLineError(r, 2)).toBe(`weightmix: error: ${flag} "0": expected a whole number of 1 or more`);
    }
    expect(fs.existsSync(dir)).toBe(false);
  });

  test('the command takes its folder as -o/--output, as every other command, and as --out, its first name; two different folders or none are refused', async () => {
    const written = await Promise.all(
      [['-o'], ['--output'], ['--out'], ['-o', '--out']].map(async (flags) => {
        const dir = freshDir();
        const r = await runCli(['fixture', '--shape', 'tiny', '--seed', '3', '-q', ...flags.flatMap((f) => [f, dir])]);
        expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
        return bytesOfPair(dir);
      }),
    );
    for (const w of written.slice(1)) expect(w).toEqual(written[0]);
    const [a, b] = [freshDir(), freshDir()];
    expect(expectOneLineError(await runCli(['fixture', '--shape', 'tiny', '-o', a, '--out', b]), 2)).toBe(
      `weightmix: error: -o/--output "${a}" and --out "${b}" name different folders; give one`,
    );
    expect(expectOneLineError(await runCli(['fixture', '--shape', 'tiny']), 2)).toBe("weightmix: error: required option '-o, --output <dir>' not specified");
    expect([a, b].some((d) => fs.existsSync(d))).toBe(false);
  });

  test("the command's range errors and its refusal of an existing pair name its flags, the library's its options", async () => {
    const dir = freshDir();
    for (const [flag, value] of [
      ['--seed', '4294967296'],
      ['--shards', '0'],
      ['--extra-tokens', '100000'],
    ]) {
      const r = await runCli(['fixture', '--shape', 'tiny', '--out', dir, flag, value]);
      expect(expectOneLineError(r, 2)).toMatch(new RegExp(`^weightmix: error: fixture ${flag} ${value}: expected a whole number`));
    }
    await expect(makeCheckpointPair({ dir, shape: 'tiny', seed: 2 ** 32 })).rejects.toThrow(/^fixture seed 4294967296:/);
    fs.mkdirSync(path.join(dir, 'instruct'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'instruct', 'keep-me'), 'x');
    const exists = await runCli(['fixture', '--shape', 'tiny', '--out', dir]);
    expect(expectOneLineError(exists, 1)).toMatch(/already exists and is not empty \(pass --force to replace it\)$/);
    await expect(makeCheckpointPair({ dir, shape: 'tiny' })).rejects.toThrow(/\(pass overwrite to replace it\)$/);
  });

  test('a file where a model folder goes is never replaced, not even with overwrite (--force deleted it)', async () => {
    const dir = freshDir();
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'instruct'), 'precious');
    await expect(makeCheckpointPair({ dir, shape: 'tiny', overwrite: true })).rejects.toMatchObject({
      code: 'FixtureExists',
      message: expect.stringMatching(/instruct is a file, not a model folder: it is never replaced, not even with overwrite$/),
    });
    expect(fs.readFileSync(path.join(dir, 'instruct'), 'utf8')).toBe('precious');
    expect(fs.readdirSync(dir)).toEqual(['instruct']);
  });

  test("one fixture run per folder: a live run's lock is refused (two at once raced to rename into the same targets), a dead run's taken over", async () => {
    const dir = freshDir();
    fs.mkdirSync(dir, { recursive: true });
    const lock = path.join(dir, '.weightmix-fixture.lock');
    fs.writeFileSync(lock, `${process.ppid}\n`); // a live process
    await expect(makeCheckpointPair({ dir, shape: 'tiny' })).rejects.toMatchObject({
      code: 'OutputLocked',
      message: `another fixture run (pid ${process.ppid}) is writing ${path.resolve(dir)}; try again once it is done`,
    });
    expect(fs.readdirSync(dir)).toEqual(['.weightmix-fixture.lock']);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    fs.writeFileSync(lock, `${dead}\n`);
    await makeCheckpointPair({ dir, shape: 'tiny' });
    expect(fs.readdirSync(dir).sort()).toEqual(['instruct', 'thinking']);
  });

  test('an existing Thinking folder is refused before the Instruct folder is touched', async () => {
    const dir = freshDir();
    fs.mkdirSync(path.join(dir, 'thinking'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'thinking', 'keep-me'), 'x');
    await expect(makeCheckpointPair({ dir, shape: 'tiny' })).rejects.toMatchObject({ code: 'FixtureExists' });
    expect(fs.readdirSync(dir)).toEqual(['thinking']);
    expect(fs.readdirSync(path.join(dir, 'thinking'))).toEqual(['keep-me']);
  });
});

/** Every file under dir (relative path → its bytes, base64), for comparing two folders. */
function snapshotOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (sub: string) => {
    for (const e of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = path.join(sub, e.name);
      if (e.isDirectory()) walk(rel);
      else out[rel] = fs.readFileSync(path.join(dir, rel)).toString('base64');
    }
  };
  walk('');
  return out;
}
