/**
 * The hub tests' fault cases (test/hub.test.ts registers them, with its hub imitation and fixtures):
 * answers the metadata API never gives, the token and other hosts, server errors and the cache,
 * partial snapshots, repos without safetensors, refused storage, blobs changed by another process,
 * locks of a killed container, and file-system errors in the cache. Each is one line, never a stack.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectOneLineError, runCli } from './cli';
import { filesFromFolder, hubFile, repoOf, type HubServer } from './hub-server';
import { answer, cutAnswer, HubProxy, startHubProxy } from './hub-proxy';
import { withBlobLock } from '../../lib/hub/blob-lock';
import { resolveModelReference } from '../../lib/hub/resolve';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export interface HubTestContext {
  readonly server: HubServer;
  readonly pair: { instruct: string; thinking: string };
  readonly work: string;
  hfEnv: (extra?: Record<string, string>) => Record<string, string>;
  cacheOf: (env: Record<string, string>) => string;
  bytesOf: (dir: string) => string;
}

export function hubFaultCases(ctx: HubTestContext): void {
  let proxy: HubProxy;
  beforeAll(async () => {
    proxy = await startHubProxy(ctx.server.endpoint);
  });
  afterAll(() => proxy?.close());
  beforeEach(() => {
    proxy.rules.length = 0;
    proxy.log.length = 0;
  });
  const viaProxy = (extra: Record<string, string> = {}) => ctx.hfEnv({ HF_ENDPOINT: proxy.endpoint, ...extra });
  const cliError = async (env: Record<string, string>, model = 'Org/Instruct') => expectOneLineError(await runCli(['diff', model, 'Org/Thinking'], { env }));
  const mainOf = (repo: string) => ctx.server.repos.get(repo)!.refs.main;
  const INFO = /^\/api\/models\/Org\/Instruct\/revision\//;

  describe('metadata answers that are not what the hub gives: one line, never a stack', () => {
    test('an HTML page with status 200', async () => {
      proxy.rules.push({ match: INFO, respond: answer(200, '<!DOCTYPE html><html>sign in</html>', 'text/html') });
      expect(await cliError(viaProxy())).toMatch(
        /the hub at http:\/\/127.0.0.1:\d+ answered something that is not model information \(a JSON object\) for Org\/Instruct \(HTTP 200, text\/html, starting "<!DOCTYPE/,
      );
    }, 60_000);

    test('a listing that is an object, not an array', async () => {
      proxy.rules.push({ match: /^\/api\/models\/Org\/Instruct\/tree\//, respond: answer(200, '{"items": []}') });
      expect(await cliError(viaProxy())).toMatch(/answered something that is not a file listing \(a JSON array\) for Org\/Instruct/);
    }, 60_000);

    test('the connection dropped while the metadata is read: the hub is unreachable, so the cache stands in', async () => {
      proxy.rules.push({ match: INFO, respond: cutAnswer(5000, '{"sha": "') });
      expect(await cliError(viaProxy())).toMatch(/cannot reach the hub at http:\/\/127.0.0.1:\d+ \(the connection broke off mid-answer/);
      const env = ctx.hfEnv();
      await resolveModelReference('Org/Instruct', { env });
      const notices: string[] = [];
      const r = await resolveModelReference('Org/Instruct', { env: { ...env, HF_ENDPOINT: proxy.endpoint }, onNotice: (m) => notices.push(m) });
      expect(r.hub?.commit).toBe(mainOf('Org/Instruct'));
      expect(notices.join()).toMatch(/broke off mid-answer.*; using the cached Org\/Instruct/);
    }, 60_000);
  });

  test('a hub that never answers its metadata request: unreachable after HF_HUB_ETAG_TIMEOUT, so the cache stands in', async () => {
    proxy.rules.push({ match: INFO, respond: () => undefined });
    expect(await cliError(viaProxy({ HF_HUB_ETAG_TIMEOUT: '1' }))).toMatch(
      /cannot reach the hub at http:\/\/127.0.0.1:\d+ \(no answer within 1 s, HF_HUB_ETAG_TIMEOUT\)/,
    );
    const env = ctx.hfEnv({ HF_HUB_ETAG_TIMEOUT: '1' });
    await resolveModelReference('Org/Instruct', { env });
    const r = await resolveModelReference('Org/Instruct', { env: { ...env, HF_ENDPOINT: proxy.endpoint } });
    expect(r.hub?.commit).toBe(mainOf('Org/Instruct'));
  }, 60_000);

  test('the token goes to the endpoint only, never to another host a pagination Link names', async () => {
    const toLocalhost = (h: Record<string, unknown>) => {
      if (typeof h.link === 'string') h.link = h.link.replace('//127.0.0.1:', '//localhost:');
    };
    proxy.rules.push({ match: /\/tree\//, edit: toLocalhost });
    await resolveModelReference('Org/Thinking', { env: viaProxy({ HF_TOKEN: 'hf_sometoken' }) });
    const pages = proxy.log.filter((l) => l.url.includes('/tree/')).map((l) => `${l.host.split(':')[0]} ${l.authorized}`);
    expect(pages.length).toBeGreaterThan(1);
    expect(pages).toEqual(['127.0.0.1 true', ...pages.slice(1).map(() => 'localhost false')]);
  }, 60_000);

  test('HTTP 503 or 429 from the metadata API: the cached revision, with a notice; nothing cached: one line', async () => {
    const env = ctx.hfEnv();
    await resolveModelReference('Org/Thinking', { env });
    for (const status of [503, 429]) {
      proxy.rules.push({ match: /^\/api\/models\//, times: 1, respond: answer(status, '{"error": "busy"}') });
      const notices: string[] = [];
      const r = await resolveModelReference('Org/Thinking', { env: { ...env, HF_ENDPOINT: proxy.endpoint }, onNotice: (m) => notices.push(m) });
      expect(r.hub?.commit).toBe(mainOf('Org/Thinking'));
      expect(notices.join()).toMatch(new RegExp(`answered HTTP ${status} .*; using the cached Org/Thinking`));
    }
    proxy.rules.push({ match: /^\/api\/models\//, respond: answer(500, 'oops', 'text/plain') });
    expect(await cliError(viaProxy())).toMatch(/the hub at http:\/\/127.0.0.1:\d+ answered HTTP 500 \(a server error\) for Org\/Instruct; try again later/);
  }, 60_000);

  const firstLfs = (repo: string) => ctx.server.repos.get(repo)!.commits[mainOf(repo)].find((f) => f.sha256)!;

  test('offline or unreachable, a snapshot only partly in the cache is refused: the shards of its index, of a numbered series', async () => {
    const env = ctx.hfEnv();
    await resolveModelReference('Org/Thinking', { env });
    const r = await resolveModelReference('Org/Instruct', { env });
    const shards = fs.readdirSync(r.dir).filter((f) => f.endsWith('.safetensors'));
    expect(shards.sort()).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    fs.rmSync(path.join(r.dir, shards[1]));
    const offline = { ...env, HF_HUB_OFFLINE: '1' };
    expect(await cliError(offline)).toMatch(
      /Org\/Instruct \(commit [0-9a-f]{40}\) is only partly in the Hugging Face cache \(missing model-00002-of-00002.safetensors\); run again with the network to finish it/,
    );
    const down = { ...env, HF_ENDPOINT: 'http://127.0.0.1:9' };
    await expect(resolveModelReference('Org/Instruct', { env: down })).rejects.toThrow(
      /^cannot reach the hub at http:\/\/127.0.0.1:9 .*, and Org\/Instruct .*only partly/,
    );
    fs.rmSync(path.join(r.dir, 'model.safetensors.index.json'));
    await expect(resolveModelReference('Org/Instruct', { env: offline })).rejects.toThrow(/\(missing model.safetensors.index.json\)/);
    // Without the commit's listing (a cache from before it was kept), judged from the snapshot: the rest of the numbered series.
    fs.rmSync(path.join(r.dir, '..', '..', 'trees'), { recursive: true });
    await expect(resolveModelReference('Org/Instruct', { env: offline })).rejects.toThrow(/\(missing model-00002-of-00002.safetensors\)/);
    const again = await resolveModelReference('Org/Instruct', { env });
    expect(ctx.bytesOf(again.dir)).toBe(ctx.bytesOf(ctx.pair.instruct));
  }, 60_000);

  test('a repo with .bin weights only is refused before any download', async () => {
    const files = filesFromFolder(ctx.pair.thinking).filter((f) => !/safetensors/.test(f.path));
    ctx.server.repos.set('Org/BinOnly', repoOf([...files, hubFile('pytorch_model.bin', Buffer.from('pickle'))]));
    expect(await cliError(ctx.hfEnv(), 'Org/BinOnly')).toMatch(
      /Org\/BinOnly has no safetensors weights \(model.safetensors, shards or their index\) on http:\/\/127.0.0.1:\d+: it holds only pytorch_model.bin, which weightmix does not read/,
    );
    expect(ctx.server.log.filter((l) => l.url.includes('Org/BinOnly/resolve'))).toEqual([]);
  }, 60_000);

  test('the storage host refusing the signed URL is named, with no token hint', async () => {
    proxy.rules.push({ match: /^\/cdn\//, respond: answer(403, '<Error><Code>AccessDenied</Code></Error>', 'application/xml') });
    const line = await cliError(viaProxy());
    expect(line).toMatch(
      /Org\/Instruct: model-0000\d-of-00002.safetensors: localhost:\d+, where http:\/\/127.0.0.1:\d+ redirected the download, refused the signed download URL \(HTTP 403\)/,
    );
    expect(line).not.toMatch(/token|not a model repo/);
  }, 60_000);

  test('a resume the storage host refuses (HTTP 416): the partial file removed and the file fetched again from its start', async () => {
    const env = viaProxy();
    const shard = firstLfs('Org/Thinking');
    const blobs = path.join(ctx.cacheOf(env), 'models--Org--Thinking', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(path.join(blobs, `${shard.sha256}.incomplete`), Buffer.alloc(1000, 7));
    proxy.rules.push({ match: new RegExp(`^/cdn/${shard.sha256}/`), times: 1, respond: answer(416, '', 'text/plain') });
    const notices: string[] = [];
    const r = await resolveModelReference('Org/Thinking', { env, onNotice: (m) => notices.push(m) });
    expect(notices.join('\n')).toMatch(
      new RegExp(
        `${escape(shard.path)}: localhost:\\d+ refused to resume from byte 1000 \\(HTTP 416\\); the partial file was removed to start over; resuming \\(try 2 of 3\\)`,
      ),
    );
    expect(ctx.bytesOf(r.dir)).toBe(ctx.bytesOf(ctx.pair.thinking));
  }, 60_000);

  test('a partial file another process appended to while it downloaded: removed, never published', async () => {
    const env = viaProxy();
    const shard = firstLfs('Org/Thinking');
    const blobs = path.join(ctx.cacheOf(env), 'models--Org--Thinking', 'blobs');
    const partial = path.join(blobs, `${shard.sha256}.incomplete`);
    // As huggingface_hub would under its own lock: bytes appended once this process has measured the partial file.
    proxy.rules.push({ match: new RegExp(`^/cdn/${shard.sha256}/`), times: 1, beforeBody: () => fs.appendFileSync(partial, 'x'.repeat(100)) });
    await expect(resolveModelReference('Org/Thinking', { env })).rejects.toThrow(
      new RegExp(`${escape(shard.path)}: the partial file .*${shard.sha256}.incomplete was changed by another process .*; it was removed, run again$`),
    );
    expect(fs.readdirSync(blobs).filter((b) => b.startsWith(shard.sha256!))).toEqual([]);
  }, 60_000);

  describe('locks', () => {
    test('a lock of another host untouched for 10 minutes (a killed container) is taken over', async () => {
      const env = ctx.hfEnv();
      const locks = path.join(ctx.cacheOf(env), '.locks', 'models--Org--Thinking');
      fs.mkdirSync(locks, { recursive: true });
      const lock = path.join(locks, `${firstLfs('Org/Thinking').sha256}.weightmix.lock`);
      fs.writeFileSync(lock, '1234 another-host\n');
      const old = new Date(Date.now() - 11 * 60_000);
      fs.utimesSync(lock, old, old);
      const stop = new AbortController();
      const run = resolveModelReference('Org/Thinking', { env, signal: stop.signal }).catch((e: Error) => e);
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([run, new Promise((res) => (timer = setTimeout(() => res('still waiting'), 10_000)))]);
      clearTimeout(timer);
      stop.abort();
      await run;
      expect(r).toHaveProperty('dir');
      expect(fs.readdirSync(locks)).toEqual([]);
    }, 60_000);

    test('waiters on one stale lock (array jobs after a killed one) take it over one at a time, never two at once', async () => {
      const timing = { refreshMs: 1000, staleMs: 60_000, noticeMs: 60_000 };
      for (let round = 0; round < 5; round++) {
        const dir = path.join(ctx.work, `takeover-${Date.now()}-${round}`);
        fs.mkdirSync(dir, { recursive: true });
        const lock = path.join(dir, 'x.weightmix.lock');
        fs.writeFileSync(lock, '1234 another-host\n');
        const old = new Date(Date.now() - 11 * 60_000);
        fs.utimesSync(lock, old, old);
        let inside = 0;
        let most = 0;
        const hold = async () => {
          most = Math.max(most, ++inside);
          await sleep(20);
          inside--;
        };
        await Promise.all(Array.from({ length: 6 }, () => withBlobLock(lock, () => undefined, undefined, hold, timing)));
        expect([round, most]).toEqual([round, 1]);
        expect(fs.readdirSync(dir)).toEqual([]);
      }
    }, 60_000);

    test('the holder touches its lock while it works; a waiter repeats its notice', async () => {
      const lock = path.join(ctx.work, `touch-${Date.now()}`, 'x.weightmix.lock');
      const timing = { refreshMs: 50, staleMs: 60_000, noticeMs: 100 };
      let release!: () => void;
      const held = withBlobLock(
        lock,
        () => undefined,
        undefined,
        () => new Promise<void>((r) => (release = r)),
        timing,
      );
      await sleep(50);
      // Aged, but less than the stale time (a live holder's lock untouched past it is taken over: stale-live-locks.test.ts).
      const old = new Date(Date.now() - 30_000);
      fs.utimesSync(lock, old, old);
      const waits: number[] = [];
      const waiter = withBlobLock(
        lock,
        (s) => waits.push(s),
        undefined,
        async () => 'got it',
        timing,
      );
      await sleep(600);
      expect(fs.statSync(lock).mtimeMs).toBeGreaterThan(Date.now() - 1000);
      expect(waits.length).toBeGreaterThan(2);
      release();
      await held;
      expect(await waiter).toBe('got it');
    }, 60_000);
  });

  describe('a file that fails stops the others', () => {
    test('the error comes at once, not after the stalled shard beside it times out; its partial file stays for a resume', async () => {
      const env = ctx.hfEnv();
      // Shard 1 hangs after 120,000 bytes (a hung transfer is given up only after a minute, three times); shard 2 fails verification.
      ctx.server.stalls.push({ path: 'model-00001-of-00002.safetensors', afterBytes: 120_000 });
      ctx.server.corrupt.add('model-00002-of-00002.safetensors');
      const started = Date.now();
      await expect(resolveModelReference('Org/Instruct', { env })).rejects.toThrow(/Org\/Instruct: model-00002-of-00002.safetensors failed verification/);
      expect(Date.now() - started).toBeLessThan(20_000);
      const blobs = path.join(ctx.cacheOf(env), 'models--Org--Instruct', 'blobs');
      const partial = fs.readdirSync(blobs).filter((b) => b.endsWith('.incomplete'));
      expect(partial.map((b) => fs.statSync(path.join(blobs, b)).size)).toEqual([120_000]);
      expect(fs.readdirSync(path.join(ctx.cacheOf(env), '.locks', 'models--Org--Instruct'))).toEqual([]);
    }, 60_000);
  });

  describe('file-system errors in the cache: one line with the path', () => {
    test('HF_HUB_CACHE names a file; blobs/ is a file', async () => {
      const file = path.join(ctx.work, `not-a-folder-${Date.now()}`);
      fs.writeFileSync(file, 'x');
      expect(await cliError(ctx.hfEnv({ HF_HUB_CACHE: file }))).toMatch(
        new RegExp(`the Hugging Face cache: cannot write ${escape(file)}/models--Org--Instruct/refs/main \\(ENOTDIR: a file stands where a folder must be`),
      );
      const env = ctx.hfEnv();
      const repoDir = path.join(ctx.cacheOf(env), 'models--Org--Instruct');
      fs.mkdirSync(repoDir, { recursive: true });
      fs.writeFileSync(path.join(repoDir, 'blobs'), '');
      expect(await cliError(env)).toMatch(/cannot write .*models--Org--Instruct\/blobs \(EEXIST: a file stands where a folder must be/);
    }, 60_000);

    test('a full disk while the lock file, blobs/, a link or a ref is written: NoSpace with the path, no empty lock left', async () => {
      const enospc = () => Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      const p = fs.promises;
      const realOpen = p.open.bind(p);
      const realMkdir = p.mkdir.bind(p);
      // blobs/ alone: the ref is written first (before any file, as huggingface_hub), and has a case of its own below.
      const failingBlobsFolder = async (...args: Parameters<typeof p.mkdir>) =>
        String(args[0]).endsWith('blobs') ? Promise.reject(enospc()) : realMkdir(...args);
      const failingLockWrite = async (...args: Parameters<typeof p.open>) => {
        const fh = await realOpen(...args);
        if (String(args[0]).endsWith('.lock')) (fh as { writeFile: unknown }).writeFile = () => Promise.reject(enospc());
        return fh;
      };
      const cases: [() => jest.SpyInstance, RegExp][] = [
        [() => jest.spyOn(p, 'open').mockImplementation(failingLockWrite as never), /\.weightmix\.lock/],
        [() => jest.spyOn(p, 'mkdir').mockImplementation(failingBlobsFolder as never), /models--Org--Thinking\/blobs/],
        [() => jest.spyOn(p, 'symlink').mockRejectedValue(enospc()), /snapshots\/[0-9a-f]{40}\//],
        [() => jest.spyOn(p, 'writeFile').mockRejectedValue(enospc()), /refs\/main/],
      ];
      for (const [spy, where] of cases) {
        const env = ctx.hfEnv();
        const s = spy();
        try {
          const e = await resolveModelReference('Org/Thinking', { env }).catch((x: { code?: string; message: string }) => x);
          expect(e).toMatchObject({ code: 'NoSpace', message: expect.stringMatching(/^no space left in the Hugging Face cache for .*\(ENOSPC\); free some/) });
          expect((e as Error).message).toMatch(where);
        } finally {
          s.mockRestore();
        }
        const locks = path.join(ctx.cacheOf(env), '.locks', 'models--Org--Thinking');
        expect(fs.existsSync(locks) ? fs.readdirSync(locks) : []).toEqual([]);
      }
    }, 60_000);
  });
}
