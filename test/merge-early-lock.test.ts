/**
 * A merge whose output another live run is writing is refused at once (OutputTransaction.refuseLocked), before it opens or
 * downloads its models, applies LoRA adapters, rebuilds vocabularies or runs statistics passes: it was refused only when it
 * began writing, minutes later on a large recipe, after all that work.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { merge } from '../lib/recipes/merge-recipe';
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
