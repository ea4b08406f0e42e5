/**
 * `interpolate` and `sweep` lock their outputs before they open their models: a second run on an output another live run is
 * writing is refused at once, not after both have downloaded a hub id's snapshot (they took their locks when they began writing).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { interpolate } from '../lib/interpolation/interpolate';
import { sweep } from '../lib/interpolation/sweep';
import { cachedPair } from './helpers/cli';
import { useHubSuite } from './helpers/hub-suite';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-interpolate-early-lock-');
const hub = useHubSuite(33, () => root);

test("a live run's lock on the output: refused before a hub id is looked up, then the lookup's own error; nothing left", async () => {
  const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 33 });
  const out = path.join(root, 'out');
  const lock = path.join(root, '.out.weightmix.lock');
  fs.writeFileSync(lock, `${process.ppid} ${os.hostname()}\n`);
  // Offline and not cached: opening the Thinking model would fail first, with HubOffline.
  const env = { ...process.env, HF_HUB_OFFLINE: '1', HF_HOME: path.join(root, 'hf') };
  const options = { instruct: pair.instruct, thinking: 'Org/NotCached', lambda: 0.5, output: out, env };
  await expect(interpolate(options)).rejects.toMatchObject({ code: 'OutputLocked', message: `another weightmix run (pid ${process.ppid}) is writing ${out}` });
  fs.rmSync(lock);
  await expect(interpolate(options)).rejects.toMatchObject({ code: 'HubOffline' });
  expect(fs.readdirSync(root)).toEqual([]); // no lock and no temporary folder after the failed open

  const sweepOut = path.join(root, 'sweep');
  fs.mkdirSync(sweepOut);
  fs.writeFileSync(path.join(sweepOut, '.lambda-0.50.weightmix.lock'), `${process.ppid} ${os.hostname()}\n`);
  await expect(sweep({ instruct: pair.instruct, thinking: 'Org/NotCached', env, lambdas: '0.25,0.5', output: sweepOut })).rejects.toMatchObject({
    code: 'OutputLocked',
    message: `another weightmix run (pid ${process.ppid}) is writing ${path.join(sweepOut, 'lambda-0.50')}`,
  });
  expect(fs.readdirSync(sweepOut)).toEqual(['.lambda-0.50.weightmix.lock']); // the first λ's lock and folder went with the refusal
});

test('a second run on the output is refused while the first downloads its hub model, and the first publishes', async () => {
  const out = path.join(root, 'downloading');
  const lock = path.join(root, '.downloading.weightmix.lock');
  const env = hub.envOf();
  let refusal: Promise<unknown> | undefined;
  let lockText: string | undefined;
  const summary = await interpolate({
    instruct: hub.pair.instruct,
    thinking: 'Org/Model',
    lambda: 0.5,
    output: out,
    env,
    onDownload: () => {
      if (refusal !== undefined) return;
      lockText = fs.readFileSync(lock, 'utf8');
      refusal = interpolate({ instruct: hub.pair.instruct, thinking: hub.pair.thinking, lambda: 0.5, output: out }).then(
        () => null,
        (e: unknown) => e,
      );
    },
  });
  expect(refusal).toBeDefined(); // the snapshot was downloaded, not found in a cache
  expect(lockText!.split(' ')[0]).toBe(String(process.pid));
  await expect(refusal).resolves.toMatchObject({ code: 'OutputLocked', message: `this process is already writing ${out}` });
  expect(summary.outputs).toEqual([out]);
  expect(fs.readdirSync(out)).toContain('model.safetensors.index.json');
  expect(fs.existsSync(lock)).toBe(false);
});

test('local inputs are opened first: a mistyped input or selection is named before an existing output, and env is checked', async () => {
  const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 33 });
  const out = path.join(root, 'existing');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'model.safetensors.index.json'), '{}');
  const base = { instruct: pair.instruct, thinking: pair.thinking, lambda: 0.5, output: out };
  await expect(interpolate({ ...base, instruct: path.join(root, 'nowhere') })).rejects.toMatchObject({ code: 'ModelNotFound' });
  await expect(interpolate({ ...base, layers: '50-60' })).rejects.toMatchObject({ code: 'Usage', message: expect.stringContaining('layers') });
  await expect(interpolate(base)).rejects.toMatchObject({ code: 'OutputExists' });
  // env as merge checks it: an object of text variables (a number crashed the hub's reader with a TypeError).
  await expect(interpolate({ ...base, env: 5 as unknown as NodeJS.ProcessEnv })).rejects.toMatchObject({
    code: 'Usage',
    message: "env: option 'env' must be an object of variables, got 5",
  });
  await expect(interpolate({ ...base, thinking: 'Org/Model', env: { HF_HUB_OFFLINE: 1 } as unknown as NodeJS.ProcessEnv })).rejects.toMatchObject({
    code: 'Usage',
    message: "env: option 'env': variable 'HF_HUB_OFFLINE' must be a string, got 1",
  });
  expect(fs.readdirSync(root).filter((n) => n.includes('existing'))).toEqual(['existing']); // no lock or temporary folder made
});
