/**
 * A download answered HTTP 429, 503 or 408 (lib/hub/fetch-blob.ts): the server cannot serve now, and huggingface_hub tries
 * again; weightmix failed the run at once with "answered HTTP 503". Now each is a broken-off transfer, tried again (three tries
 * in all) after the pause the answer asks for (Retry-After, at most 30 s; else 1 s).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as http from 'node:http';
import { resolveModelReference } from '../lib/hub/resolve';
import { cachedPair } from './helpers/cli';
import { HubProxy, startHubProxy } from './helpers/hub-proxy';
import { filesFromFolder, HubServer, isolatedHubEnv, repoOf, startHubServer } from './helpers/hub-server';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-hub-busy-');

let server: HubServer;
let proxy: HubProxy;
let pair: { instruct: string; thinking: string };
beforeAll(async () => {
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 29 });
  server = await startHubServer({ 'Org/Model': repoOf(filesFromFolder(pair.instruct)) });
  proxy = await startHubProxy(server.endpoint);
}, 120_000);
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

const busy =
  (status: number, headers: Record<string, string> = {}) =>
  (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    res.end('busy');
  };

test.each([
  [429, { 'retry-after': '1' }, 'too many requests', ' in 1 s'],
  [503, {}, 'a server error', ' in 1 s'],
  [408, {}, 'request timeout', ' in 1 s'],
])('HTTP %d on a file: tried again after the pause, and the model arrives whole', async (status, headers, why, wait) => {
  const shard = 'model-00001-of-00002.safetensors';
  proxy.rules.length = 0;
  proxy.rules.push({ match: new RegExp(`/resolve/[0-9a-f]{40}/${shard}$`), times: 1, respond: busy(status, headers) });
  const notices: string[] = [];
  const started = Date.now();
  const { dir } = await resolveModelReference('Org/Model', {
    env: isolatedHubEnv(proxy.endpoint, path.join(root, `home-${status}`)),
    onNotice: (m) => notices.push(m),
  });
  expect(notices).toEqual([`Org/Model: ${shard}: ${new URL(proxy.endpoint).host} answered HTTP ${status} (${why}); resuming (try 2 of 3)${wait}`]);
  expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  expect(fs.readFileSync(path.join(dir, shard))).toEqual(fs.readFileSync(path.join(pair.instruct, shard)));
});

test('a server busy on every try: one line naming the answer, after three tries', async () => {
  proxy.rules.length = 0;
  proxy.rules.push({ match: /\/resolve\/[0-9a-f]{40}\/config\.json$/, respond: busy(503) });
  await expect(resolveModelReference('Org/Model', { env: isolatedHubEnv(proxy.endpoint, path.join(root, 'home-always')) })).rejects.toMatchObject({
    code: 'HubDownloadInterrupted',
    message: expect.stringMatching(/^Org\/Model: config\.json: 127\.0\.0\.1:\d+ answered HTTP 503 \(a server error\); run again to resume$/),
  });
});
