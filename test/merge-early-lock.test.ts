/**
 * A merge whose output another live run is writing is refused at once, before it opens or downloads its models, applies LoRA
 * adapters, rebuilds vocabularies or runs statistics passes: it was refused only when it began writing, minutes later on a
 * large recipe, after all that work. The run takes the output's lock itself at that point (OutputTransaction.begin), so a
 * second run started meanwhile is refused too; a batch locks its outputs once its models are open, before its statistics pass.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MergeProgress } from '../lib/engine/execute-plan';
import { mergeBatch } from '../lib/recipes/batch';
import { merge } from '../lib/recipes/merge-recipe';
import { localStatistics } from '../lib/recipes/sparsify';
import { cachedPair } from './helpers/cli';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-early-lock-');

test("a live run's lock on the output: refused before any model is opened, a part too", async () => {
  const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 30 });
  const out = path.join(root, 'out');
  fs.writeFileSync(path.join(root, '.out.weightmix.lock'), `${process.ppid} ${os.hostname()}\n`);
  // The second model is a hub id offline and not cached: opening it would fail first, with HubOffline.
  const recipe = { merge_method: 'linear', models: [pair.instruct, 'Org/NotCached'].map((model) => ({ model, parameters: { weight: 0.5 } })) };
  const env = { ...process.env, HF_HUB_OFFLINE: '1', HF_HOME: path.join(root, 'hf') };
  const refused = { code: 'OutputLocked', message: `another weightmix run (pid ${process.ppid}) is writing ${out}` };
  await expect(merge(recipe, { output: out, env })).rejects.toMatchObject(refused);
  await expect(merge(recipe, { output: out, env, part: '1/2' })).rejects.toMatchObject({
    code: 'OutputLocked',
    message: expect.stringContaining(`is writing ${out}`),
  });
  fs.rmSync(path.join(root, '.out.weightmix.lock'));
  await expect(merge(recipe, { output: out, env })).rejects.toMatchObject({ code: 'HubOffline' });
});

describe('the output is locked before the statistics passes', () => {
  const budget = localStatistics.maxTensorBytes;
  afterEach(() => {
    localStatistics.maxTensorBytes = budget;
  });

  /** Runs `first`; at its first statistics progress, starts `second` on the same output and notes whether the lock was there. */
  async function secondDuringStatistics(lock: string, first: (onProgress: (p: MergeProgress) => void) => Promise<unknown>, second: () => Promise<unknown>) {
    let refusal: Promise<unknown> | undefined;
    let lockText: string | undefined;
    await first((p) => {
      if (p.stage !== 'statistics' || refusal !== undefined) return;
      lockText = fs.readFileSync(lock, 'utf8');
      refusal = second().then(
        () => null,
        (e: unknown) => e,
      );
    });
    expect(refusal).toBeDefined(); // the statistics pass ran (a zero budget streams every tensor's moments)
    expect(lockText!.split(' ')[0]).toBe(String(process.pid));
    expect(fs.existsSync(lock)).toBe(false);
    return refusal;
  }

  test('a merge: a second run on its output is refused while the first makes its statistics, and the first publishes', async () => {
    localStatistics.maxTensorBytes = 0;
    const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 31 });
    const out = path.join(root, 'stats-out');
    const recipe = { merge_method: 'slerp', base_model: pair.instruct, parameters: { t: 0.3 }, models: [{ model: pair.instruct }, { model: pair.thinking }] };
    const refused = await secondDuringStatistics(
      path.join(root, '.stats-out.weightmix.lock'),
      (onProgress) => merge(recipe, { output: out, onProgress }),
      () => merge(recipe, { output: out }),
    );
    expect(refused).toMatchObject({ code: 'OutputLocked', message: `this process is already writing ${out}` });
    expect(fs.readdirSync(out)).toContain('model.safetensors.index.json');
  });

  test('a batch: each output is locked before the shared statistics pass', async () => {
    localStatistics.maxTensorBytes = 0;
    const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 32 });
    const out = path.join(root, 'batch-out');
    const recipe = { merge_method: 'slerp', base_model: pair.instruct, parameters: { t: 0.6 }, models: [{ model: pair.instruct }, { model: pair.thinking }] };
    const refused = await secondDuringStatistics(
      path.join(out, '.a.weightmix.lock'),
      (onProgress) => mergeBatch([{ name: 'a', recipe }], { output: out, onProgress }),
      () => merge(recipe, { output: path.join(out, 'a') }),
    );
    expect(refused).toMatchObject({ code: 'OutputLocked', message: `this process is already writing ${path.join(out, 'a')}` });
    expect(fs.readdirSync(path.join(out, 'a'))).toContain('model.safetensors.index.json');
  });
});

test("an I/O error while the output's leftovers are judged is an IoError naming the output, and leaves no lock or folder", async () => {
  const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 30 });
  const parent = path.join(root, 'unreadable');
  const out = path.join(parent, 'out');
  const recipe = { merge_method: 'linear', models: [pair.instruct, pair.thinking].map((model) => ({ model, parameters: { weight: 0.5 } })) };
  // The parent's listing (OutputTransaction.begin's look for a dead run's leftovers) fails as an unreadable folder's would.
  const readdir = fs.promises.readdir;
  const spy = jest.spyOn(fs.promises, 'readdir').mockImplementation(((dir: fs.PathLike, ...rest: unknown[]) => {
    if (path.resolve(String(dir)) !== parent) return (readdir as (...a: unknown[]) => unknown)(dir, ...rest);
    return Promise.reject(Object.assign(new Error(`EACCES: permission denied, scandir '${parent}'`), { code: 'EACCES', syscall: 'scandir' }));
  }) as typeof fs.promises.readdir);
  try {
    await expect(merge(recipe, { output: out })).rejects.toMatchObject({
      code: 'IoError',
      message: `cannot finish ${out}: EACCES: permission denied, scandir '${parent}'`,
    });
  } finally {
    spy.mockRestore();
  }
  expect(fs.existsSync(parent)).toBe(false); // begin made it, and its abort removed it with the lock
});
