/**
 * A snapshot that a broken-off download left (lib/hub/tree-cache.ts): files are fetched largest first, so it held the
 * weights and lacked the config and tokenizer, and offline (or with the hub unreachable) it was merged into a model without
 * them, exit 0. The commit's listing, kept from the download, now names what is missing. Also: a cached file of another size
 * than the listing's is fetched again (it was used as it was), and an unchanged ref is not written again (a read-only cache).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveModelReference } from '../lib/hub/resolve';

import { useHubSuite } from './helpers/hub-suite';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-hub-partial-');

const hub = useHubSuite(24, () => root);
const envOf = (extra?: Record<string, string>) => hub.envOf(extra);

test('a snapshot holding the weights but not the config or tokenizer is refused offline and unreachable, and finished online', async () => {
  const env = envOf();
  const { dir } = await resolveModelReference('Org/Model', { env });
  const dropped = ['config.json', 'tokenizer.json'];
  for (const f of dropped) fs.rmSync(path.join(dir, f));
  const partly = new RegExp(`Org/Model \\(commit [0-9a-f]{40}\\) is only partly in the Hugging Face cache \\(missing ${dropped.join(', ')}\\)`);
  await expect(resolveModelReference('Org/Model', { env: { ...env, HF_HUB_OFFLINE: '1' } })).rejects.toMatchObject({
    code: 'HubError',
    message: expect.stringMatching(partly),
  });
  await expect(resolveModelReference('Org/Model', { env: { ...env, HF_ENDPOINT: 'http://127.0.0.1:9' } })).rejects.toThrow(partly);
  const again = await resolveModelReference('Org/Model', { env });
  for (const f of dropped) expect(fs.readFileSync(path.join(again.dir, f))).toEqual(fs.readFileSync(path.join(hub.pair.instruct, f)));
});

test('a cached file cut short is fetched again online, and named offline', async () => {
  const env = envOf();
  const { dir } = await resolveModelReference('Org/Model', { env });
  const blob = fs.realpathSync(path.join(dir, 'tokenizer.json'));
  fs.truncateSync(blob, 1000);
  await expect(resolveModelReference('Org/Model', { env: { ...env, HF_HUB_OFFLINE: '1' } })).rejects.toThrow(/\(missing tokenizer\.json\)/);
  const again = await resolveModelReference('Org/Model', { env });
  expect(fs.readFileSync(path.join(again.dir, 'tokenizer.json'))).toEqual(fs.readFileSync(path.join(hub.pair.instruct, 'tokenizer.json')));
});

test('a ref that names the same commit is not written again', async () => {
  const env = envOf();
  const { dir } = await resolveModelReference('Org/Model', { env });
  const ref = path.join(dir, '..', '..', 'refs', 'main');
  const before = fs.statSync(ref);
  await resolveModelReference('Org/Model', { env });
  const after = fs.statSync(ref);
  expect({ ino: after.ino, mtime: after.mtimeMs }).toEqual({ ino: before.ino, mtime: before.mtimeMs });
});

test('a download that broke off leaves its ref: offline, the revision is named as partial, with what it lacks, not as absent', async () => {
  const env = envOf();
  const shard = 'model-00001-of-00002.safetensors';
  hub.server.cuts.push({ path: shard, afterBytes: 1000, times: 99 });
  try {
    await expect(resolveModelReference('Org/Model', { env })).rejects.toMatchObject({ code: 'HubDownloadInterrupted' });
  } finally {
    hub.server.cuts.length = 0;
  }
  await expect(resolveModelReference('Org/Model', { env: { ...env, HF_HUB_OFFLINE: '1' } })).rejects.toMatchObject({
    code: 'HubError',
    // Which files it lacks depends on which had arrived when the shard's transfer gave up; the first three are named.
    message: expect.stringMatching(/^Org\/Model \(commit [0-9a-f]{40}\) is only partly in the Hugging Face cache \(missing [^)]+\)/),
  });
});

test("with huggingface_hub's listing alone (its download may have chosen its files), offline needs the weights, their index and config.json", async () => {
  const env = envOf();
  const { dir, hub } = await resolveModelReference('Org/Model', { env });
  const trees = path.join(dir, '..', '..', 'trees');
  fs.renameSync(path.join(trees, `${hub!.commit}.weightmix.json`), path.join(trees, `${hub!.commit}.json`));
  fs.rmSync(path.join(dir, 'tokenizer.json'));
  const offline = { ...env, HF_HUB_OFFLINE: '1' };
  await expect(resolveModelReference('Org/Model', { env: offline })).resolves.toMatchObject({ dir });
  fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
  await expect(resolveModelReference('Org/Model', { env: offline })).rejects.toThrow(/\(missing model-00002-of-00002\.safetensors\)/);
});
