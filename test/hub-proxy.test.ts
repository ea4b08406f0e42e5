/** Hub ids behind a proxy: HTTP_PROXY and NO_PROXY are honoured for the metadata API and the downloads alike. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cachedPair, runCli, scratchDir } from './helpers/cli';
import { filesFromFolder, HubServer, repoOf, isolatedHubEnv, startHubServer } from './helpers/hub-server';
import { ForwardProxy, startForwardProxy } from './helpers/forward-proxy';

let server: HubServer;
let proxy: ForwardProxy;
let work: string;
let n = 0;
/** A fresh cache per run. */
const env = (extra: Record<string, string>) => isolatedHubEnv(server.endpoint, path.join(work, `home-${++n}`), extra);

beforeAll(async () => {
  const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 13 });
  work = scratchDir('hub-proxy');
  server = await startHubServer({ 'Org/Instruct': repoOf(filesFromFolder(pair.instruct)), 'Org/Thinking': repoOf(filesFromFolder(pair.thinking)) });
  proxy = await startForwardProxy();
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await server?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  proxy.log.length = 0;
});

test('HTTP_PROXY: the metadata requests and the file downloads go through the proxy', async () => {
  const r = await runCli(['diff', 'Org/Instruct', 'Org/Thinking'], { env: env({ HTTP_PROXY: proxy.url }) });
  expect([r.status, r.stderr]).toEqual([0, '']);
  const paths = proxy.log.map((u) => new URL(u).pathname);
  expect(paths.some((p) => p.startsWith('/api/models/Org/Instruct/revision/'))).toBe(true);
  expect(paths.some((p) => p.startsWith('/api/models/Org/Thinking/tree/'))).toBe(true);
  expect(paths.filter((p) => p.includes('/resolve/')).length).toBeGreaterThan(2);
}, 60_000);

test('NO_PROXY naming the hub: nothing goes through the proxy, and the merge still reads the hub', async () => {
  const host = new URL(server.endpoint).hostname;
  const r = await runCli(['diff', 'Org/Instruct', 'Org/Thinking'], { env: env({ http_proxy: proxy.url, no_proxy: `${host},localhost` }) });
  expect([r.status, r.stderr]).toEqual([0, '']);
  expect(proxy.log).toEqual([]);
}, 60_000);
