/**
 * A damaged Hugging Face cache, offline (lib/hub/model-files.ts's missingFromSnapshot): a snapshot that is a file, and a shard
 * name whose count is absurd, are refused at once with one line (the first crashed with ENOTDIR and a stack trace; the second
 * stepped through every shard number of its count, a billion, deaf to Ctrl-C); an index the download would refuse counts as
 * missing (model-files.ts's readIndexShards serves both).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { resolveModelReference } from '../lib/hub/resolve';
import { expectOneLineError, runCli } from './helpers/cli';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-hub-cache-damage-');

const COMMIT = '0123456789abcdef0123456789abcdef01234567';
let pair: { instruct: string; thinking: string };
const cache = () => path.join(root, 'hub');
const env = () => ({ HF_HUB_CACHE: cache(), HF_HUB_OFFLINE: '1' });

/** The cache's snapshot folder of `repo` at COMMIT, its main ref pointing there (created empty). */
function snapshotOf(repo: string): string {
  const repoDir = path.join(cache(), `models--${repo.replace('/', '--')}`);
  fs.mkdirSync(path.join(repoDir, 'refs'), { recursive: true });
  fs.writeFileSync(path.join(repoDir, 'refs', 'main'), COMMIT);
  fs.mkdirSync(path.join(repoDir, 'snapshots'), { recursive: true });
  return path.join(repoDir, 'snapshots', COMMIT);
}

beforeAll(async () => {
  pair = await makeCheckpointPair({ dir: path.join(root, 'pair'), shape: 'tiny', seed: 2 });
});

test('a shard whose name counts a billion shards: the missing ones counted, the first three named, at once', async () => {
  const snapshot = snapshotOf('org/huge');
  fs.mkdirSync(snapshot);
  fs.copyFileSync(path.join(pair.instruct, 'config.json'), path.join(snapshot, 'config.json'));
  fs.copyFileSync(path.join(pair.instruct, 'model.safetensors'), path.join(snapshot, 'model-00002-of-999999999.safetensors'));
  const started = Date.now();
  await expect(resolveModelReference('org/huge', { env: env() })).rejects.toMatchObject({
    code: 'HubError',
    message: `org/huge (commit ${COMMIT}) is only partly in the Hugging Face cache (missing model-00001-of-999999999.safetensors, model-00003-of-999999999.safetensors, model-00004-of-999999999.safetensors and 999999995 more); run again with the network to finish it`,
  });
  expect(Date.now() - started).toBeLessThan(5000); // not a step per shard number (it took minutes and 3.4 GB)
});

test('a snapshot that is a file: one line, exit 1, from the library and the command line', async () => {
  fs.writeFileSync(snapshotOf('org/file'), '');
  const message = `the Hugging Face cache is damaged: org/file's snapshot (commit ${COMMIT}), ${snapshotOf('org/file')}, is not a folder; remove it and run again`;
  await expect(resolveModelReference('org/file', { env: env() })).rejects.toMatchObject({ code: 'HubError', message });
  const result = await runCli(['diff', 'org/file', pair.thinking], { env: env() });
  expect(expectOneLineError(result)).toBe(`weightmix: error: ${message}`);
});

test('an index naming a shard outside its snapshot: the cached snapshot lacks a readable index, as the download would refuse it', async () => {
  const snapshot = snapshotOf('org/escape');
  fs.mkdirSync(snapshot);
  fs.copyFileSync(path.join(pair.instruct, 'config.json'), path.join(snapshot, 'config.json'));
  fs.writeFileSync(path.join(snapshot, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'a.weight': '../escape.safetensors' } }));
  await expect(resolveModelReference('org/escape', { env: env() })).rejects.toMatchObject({
    code: 'HubError',
    message: `org/escape (commit ${COMMIT}) is only partly in the Hugging Face cache (missing a readable model.safetensors.index.json); run again with the network to finish it`,
  });
});
