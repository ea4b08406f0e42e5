/**
 * Hub ids everywhere a model is taken, against a local imitation of the hub (test/helpers/hub-server.ts,
 * 127.0.0.1 only): downloads into huggingface_hub's cache layout, offline use, @REVISION, recipes,
 * resume after a cut, sha256 verification, locks, and every error as one line with no output folder.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cachedPair, expectOneLineError, runCli, scratchDir, startCli } from './helpers/cli';
import { commitOf, filesFromFolder, hubFile, HubServer, isolatedHubEnv, repoOf, startHubServer } from './helpers/hub-server';
import { hubFaultCases } from './helpers/hub-fault-cases';
import { readSafetensorsHeader } from '../lib/format/safetensors';
import { hubEnvironment } from '../lib/hub/environment';
import { parseHubReference } from '../lib/hub/reference';
import { resolveModelReference } from '../lib/hub/resolve';
import { loadTokenCounter } from '../lib/analysis/tokenizer';
import { interpolate } from '../lib/interpolation/interpolate';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';

const JUNK = { 'pytorch_model.bin': 'pickle', 'original/consolidated.pth': 'x', 'model.gguf': 'gguf', 'onnx/model.onnx': 'onnx', 'README.md': '# card' };

const PROXY_VARIABLES = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy'];
// The same for the requests this process makes itself.
for (const v of PROXY_VARIABLES) delete process.env[v];

let server: HubServer;
let pair: { instruct: string; thinking: string };
let work: string;
let n = 0;
/** A fresh cache (HF_HOME) per test unless one is given; every HF_* and proxy variable set, so the host's never leak in. */
const hfEnv = (extra: Record<string, string> = {}, home = path.join(work, `home-${++n}`)) => isolatedHubEnv(server.endpoint, home, extra);
const cacheOf = (env: Record<string, string>) => path.join(env.HF_HOME, 'hub');
const shardFiles = (dir: string) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
const bytesOf = (dir: string) =>
  shardFiles(dir)
    .map((f) => fs.readFileSync(path.join(dir, f)).toString('base64'))
    .join();

beforeAll(async () => {
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 13 });
  work = scratchDir('hub');
  const instruct = filesFromFolder(pair.instruct, JUNK);
  const repo = repoOf(instruct, ['v1']);
  // A second commit on main whose config differs: `@v1` must keep naming the first.
  const changedFiles = instruct.map((f) => (f.path === 'generation_config.json' ? hubFile(f.path, Buffer.from('{"changed": true}\n')) : f));
  const main2 = commitOf(changedFiles, 'second');
  repo.commits[main2] = changedFiles;
  repo.refs.main = main2;
  server = await startHubServer({
    'Org/Instruct': repo,
    'Org/Thinking': repoOf(filesFromFolder(pair.thinking)),
    'Org/Private': { ...repoOf(filesFromFolder(pair.thinking)), privateToken: 'hf_secretprivatetoken' },
    'Org/Gated': { ...repoOf(filesFromFolder(pair.thinking)), gatedToken: 'hf_gatedtoken' },
  });
  server.pageSize = 4;
}, 120_000);

afterAll(async () => {
  await server?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  server.log.length = 0;
  server.cuts.length = 0;
  server.stalls.length = 0;
  server.corrupt.clear();
});

describe('references and environment', () => {
  test('ORG/NAME and ORG/NAME@REVISION are hub ids; paths and odd names are not', () => {
    expect(parseHubReference('Qwen/Qwen3-4B-Instruct-2507')).toEqual({ repo: 'Qwen/Qwen3-4B-Instruct-2507', revision: 'main' });
    expect(parseHubReference('Qwen/Qwen3-4B@v1.0')).toEqual({ repo: 'Qwen/Qwen3-4B', revision: 'v1.0' });
    expect(parseHubReference('org/name@refs/pr/1')).toEqual({ repo: 'org/name', revision: 'refs/pr/1' });
    for (const bad of ['./org/name', '/abs/path', 'a/b/c', 'name', 'org/na--me', 'org/..', 'org/name@', 'org/name@../x', '../x/y', 'org/name@a b']) {
      expect([bad, parseHubReference(bad)]).toEqual([bad, null]);
    }
  });

  test("huggingface_hub's variables: HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN and the token file, HF_HUB_OFFLINE", () => {
    const home = path.join(work, 'envhome');
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(path.join(home, 'token'), 'hf_fromfile\n');
    expect(hubEnvironment({ HF_HOME: home })).toEqual({
      endpoint: 'https://huggingface.co',
      cacheDir: path.join(home, 'hub'),
      token: 'hf_fromfile',
      offline: false,
      metadataTimeoutSeconds: 10,
      downloadTimeoutSeconds: 60,
    });
    const e = hubEnvironment({ HF_HOME: home, HF_HUB_CACHE: '/c', HF_ENDPOINT: 'http://127.0.0.1:9/', HF_TOKEN: 'hf_env', HF_HUB_OFFLINE: 'YES' });
    expect(e).toEqual({
      endpoint: 'http://127.0.0.1:9',
      cacheDir: '/c',
      token: 'hf_env',
      offline: true,
      metadataTimeoutSeconds: 10,
      downloadTimeoutSeconds: 60,
    });
    expect(hubEnvironment({ HF_HUB_DOWNLOAD_TIMEOUT: '5' }).downloadTimeoutSeconds).toBe(5);
    expect(hubEnvironment({ HF_HUB_ETAG_TIMEOUT: '2.5' }).metadataTimeoutSeconds).toBe(2.5);
    expect(hubEnvironment({ HF_HUB_ETAG_TIMEOUT: 'soon' }).metadataTimeoutSeconds).toBe(10);
    expect(hubEnvironment({ XDG_CACHE_HOME: '/x', HF_HUB_OFFLINE: '0' })).toMatchObject({ cacheDir: '/x/huggingface/hub', offline: false });
    // huggingface_hub: HF_HUB_OFFLINE = HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE.
    expect(hubEnvironment({ TRANSFORMERS_OFFLINE: '1' })).toMatchObject({ offline: true });
  });
});

describe('interpolate with hub ids', () => {
  test("the paper's command: downloads what a merge needs into the shared cache, same bytes as from folders, commit recorded", async () => {
    const env = hfEnv();
    const out = path.join(work, 'mi-0.8');
    const r = await runCli(['interpolate', '--instruct', 'Org/Instruct', '--thinking', 'Org/Thinking', '--lambda', '0.8', '-o', out, '--json'], { env });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const local = path.join(work, 'mi-local');
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: local });
    expect(bytesOfTensors(out)).toEqual(bytesOfTensors(local));

    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const downloads = events.filter((e) => e.event === 'download');
    expect(downloads.map((d) => d.repo)).toContain('Org/Instruct');
    const last = downloads.filter((d) => d.repo === 'Org/Instruct').pop();
    expect([last.bytesDone, last.bytesReceived]).toEqual([last.bytesTotal, last.bytesTotal]);

    // The cache is huggingface_hub's: refs/main → commit, snapshot entries are relative links into blobs/.
    const repoDir = path.join(cacheOf(env), 'models--Org--Instruct');
    const commit = fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8');
    const snap = path.join(repoDir, 'snapshots', commit);
    for (const f of fs.readdirSync(snap)) expect(fs.readlinkSync(path.join(snap, f))).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{40,64}$/);
    expect(fs.readdirSync(snap).sort()).toEqual(fs.readdirSync(pair.instruct).sort());
    // Never the formats a merge does not read.
    const asked = server.log.map((l) => l.url);
    for (const junk of Object.keys(JUNK)) expect(asked.some((u) => u.endsWith(`/${junk}`))).toBe(false);

    const card = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(card).toContain(`\`Org/Instruct\` at commit \`${commit}\` (revision \`main\`)`);
    expect(card).toMatch(/base_model:\n- Org\/Instruct\n- Org\/Thinking\n/);
    const meta = JSON.parse((await readSafetensorsHeader(path.join(out, shardFiles(out)[0]))).metadata!.weightmix);
    expect(meta.instruct_hub).toEqual({ repo: 'Org/Instruct', revision: 'main', commit });
    // The recorded sources are the cache snapshots: verify recomputes from them, offline.
    const verified = await runCli(['verify', out, '--recompute'], { env: { ...env, HF_HUB_OFFLINE: '1' } });
    expect([verified.status, verified.stderr]).toEqual([0, '']);
  }, 120_000);

  test('offline (HF_HUB_OFFLINE=1) from the cache, with @REVISION; a revision never fetched is a one-line error', async () => {
    const env = hfEnv();
    const online = await runCli(
      ['interpolate', '--instruct', 'Org/Instruct@v1', '--thinking', 'Org/Thinking', '--lambda', '0.5', '-o', path.join(work, 'on-v1'), '-q'],
      { env },
    );
    expect(online.stderr).toBe('');
    const offline = { ...env, HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9' };
    server.log.length = 0;
    const out = path.join(work, 'off-v1');
    const r = await runCli(['interpolate', '--instruct', 'Org/Instruct@v1', '--thinking', 'Org/Thinking', '--lambda', '0.5', '-o', out, '-q'], {
      env: offline,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(server.log).toEqual([]);
    const v1 = server.repos.get('Org/Instruct')!.refs.v1;
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8')).toContain(`at commit \`${v1}\` (revision \`v1\`)`);
    expect(fs.readFileSync(path.join(out, 'generation_config.json'), 'utf8')).not.toContain('changed');

    const missing = await runCli(
      ['interpolate', '--instruct', 'Org/Instruct@main', '--thinking', 'Org/Thinking', '--lambda', '0.5', '-o', path.join(work, 'off-main')],
      { env: offline },
    );
    expect(expectOneLineError(missing)).toMatch(
      /Org\/Instruct is neither a folder here nor in the Hugging Face cache .*, and HF_HUB_OFFLINE \(or TRANSFORMERS_OFFLINE\) forbids downloading it/,
    );
    expect(fs.existsSync(path.join(work, 'off-main'))).toBe(false);
  }, 120_000);

  test('the hub unreachable: the cached revision is used, with a notice; with nothing cached a one-line error', async () => {
    const env = hfEnv();
    await resolveModelReference('Org/Thinking', { env });
    const down = { ...env, HF_ENDPOINT: 'http://127.0.0.1:9' };
    const notices: string[] = [];
    const r = await resolveModelReference('Org/Thinking', { env: down, onNotice: (m) => notices.push(m) });
    expect(r.hub?.commit).toBe(server.repos.get('Org/Thinking')!.refs.main);
    expect(notices.join()).toMatch(/cannot reach the hub at http:\/\/127.0.0.1:9 .*using the cached Org\/Thinking/);
    // The commands say so on stderr whether or not it is a terminal (diff used to print no notice off a TTY).
    const cached = await runCli(['diff', 'Org/Thinking', 'Org/Thinking'], { env: down });
    expect([cached.status, cached.stderr]).toEqual([
      0,
      expect.stringMatching(/^weightmix: cannot reach the hub at http:\/\/127.0.0.1:9 .*using the cached Org\/Thinking/),
    ]);
    const fresh = await runCli(['diff', 'Org/Thinking', 'Org/Instruct'], { env: hfEnv({ HF_ENDPOINT: 'http://127.0.0.1:9' }) });
    expect(expectOneLineError(fresh)).toMatch(/cannot reach the hub at http:\/\/127.0.0.1:9/);
  }, 60_000);
});

/** Tensor bytes of a model's shards, headers left out (the metadata names folders). */
function bytesOfTensors(dir: string): string[] {
  return shardFiles(dir).map((f) => {
    const buf = fs.readFileSync(path.join(dir, f));
    const headerLen = Number(buf.readBigUInt64LE(0));
    return buf.subarray(8 + headerLen).toString('base64');
  });
}

describe('errors: one line, exit 1, no output folder, never the token', () => {
  const attempt = async (model: string, extra: Record<string, string> = {}) => {
    const out = path.join(work, `err-${++n}`);
    const r = await runCli(['interpolate', '--instruct', model, '--thinking', 'Org/Thinking', '--lambda', '0.5', '-o', out], { env: hfEnv(extra) });
    const line = expectOneLineError(r);
    expect(fs.existsSync(out)).toBe(false);
    for (const secret of ['hf_secretprivatetoken', 'hf_wrongtoken', 'hf_gatedtoken']) expect(r.stderr + r.stdout).not.toContain(secret);
    return line;
  };
  test('unknown repo, unknown revision', async () => {
    expect(await attempt('Org/Nope')).toMatch(
      /Org\/Nope is neither a folder here nor a model repo on http:\/\/127.0.0.1:\d+ \(or it is private and no token is set/,
    );
    expect(await attempt('Org/Instruct@nope')).toMatch(/Org\/Instruct has no revision "nope"/);
  }, 60_000);
  test('private without a valid token; gated without access', async () => {
    expect(await attempt('Org/Private')).toMatch(/nor a model repo .*no token is set \(HF_TOKEN/);
    expect(await attempt('Org/Private', { HF_TOKEN: 'hf_wrongtoken' })).toMatch(/or it is private and the token .* has no access/);
    expect(await attempt('Org/Gated')).toMatch(/Org\/Gated is a gated repo .*accept its conditions/);
    expect(await attempt('Org/Gated', { HF_TOKEN: 'hf_wrongtoken' })).toMatch(/gated repo/);
    // With the token: it works, and the token never leaves the hub for the storage it redirects to.
    const r = await resolveModelReference('Org/Private', { env: hfEnv({ HF_TOKEN: 'hf_secretprivatetoken' }) });
    expect(fs.existsSync(r.dir)).toBe(true);
    const cdn = server.log.filter((l) => l.url.startsWith('/cdn/'));
    expect(cdn.length).toBeGreaterThan(0);
    expect(cdn.every((l) => !l.authorized)).toBe(true);
  }, 60_000);
  test('a listing whose hashes are not hashes (they name files in blobs/) is refused', async () => {
    const files = filesFromFolder(pair.thinking).map((f) => (f.path === 'config.json' ? { ...f, gitOid: '../../../../evil' } : f));
    server.repos.set('Org/Evil', repoOf(files));
    expect(await attempt('Org/Evil')).toMatch(/the listing of Org\/Evil describes "config.json" with an invalid path, oid, sha256 or size/);
  }, 60_000);
  test('a download that fails verification: removed, never in a snapshot', async () => {
    const env = hfEnv();
    const shard = 'model-00001-of-00002.safetensors';
    server.corrupt.add(shard);
    expect(await attempt('Org/Instruct', env)).toMatch(
      /Org\/Instruct: model-00001-of-00002.safetensors failed verification \(sha256 [0-9a-f]{64}, the hub says [0-9a-f]{64}\)/,
    );
    const cache = cacheOf(env);
    const repoDir = path.join(cache, 'models--Org--Instruct');
    const leftovers = fs.readdirSync(path.join(repoDir, 'blobs')).filter((b) => b.endsWith('.incomplete'));
    expect(leftovers).toEqual([]);
    for (const s of fs.readdirSync(path.join(repoDir, 'snapshots'))) expect(fs.existsSync(path.join(repoDir, 'snapshots', s, shard))).toBe(false);
  }, 60_000);
  test('a full disk: the partial blob removed, the rest of the cache intact', async () => {
    if (!fs.existsSync('/dev/full')) return console.warn('hub.test: full-disk case skipped: no /dev/full on this system');
    const env = hfEnv();
    const home = env.HF_HOME;
    await resolveModelReference('Org/Thinking', { env });
    const before = fs.readdirSync(path.join(cacheOf(env), 'models--Org--Thinking', 'blobs')).sort();
    // The shard's transfer file is /dev/full, where every write fails with ENOSPC.
    const files = server.repos.get('Org/Instruct')!.commits[server.repos.get('Org/Instruct')!.refs.main];
    const shard = files.find((f) => f.path === 'model-00001-of-00002.safetensors')!;
    const blobs = path.join(cacheOf(env), 'models--Org--Instruct', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.symlinkSync('/dev/full', path.join(blobs, `${shard.sha256}.incomplete`));
    expect(await attempt('Org/Instruct', env)).toMatch(/no space left for Org\/Instruct: model-00001-of-00002.safetensors .*the partial files were removed/);
    expect(fs.existsSync(path.join(blobs, `${shard.sha256}.incomplete`))).toBe(false);
    expect(fs.readdirSync(path.join(cacheOf(env), 'models--Org--Thinking', 'blobs')).sort()).toEqual(before);
    expect(home).toBe(env.HF_HOME);
  }, 60_000);
});

describe('resume, locks', () => {
  const shard = 'model-00001-of-00002.safetensors';
  test('a transfer cut midway resumes with an HTTP range in the same run', async () => {
    server.cuts.push({ path: shard, afterBytes: 100_000, times: 1 });
    const notices: string[] = [];
    const r = await resolveModelReference('Org/Instruct', { env: hfEnv(), onNotice: (m) => notices.push(m) });
    expect(fs.readdirSync(r.dir)).toContain(shard);
    const ranged = server.log.filter((l) => l.url.includes(shard) && l.range);
    expect(ranged.map((l) => l.range)).toEqual(['bytes=100000-', 'bytes=100000-']);
    expect(notices.join()).toMatch(/broke off after 100000 of \d+ bytes.*resuming \(try 2 of 3\)/);
    expect(bytesOf(r.dir)).toBe(bytesOf(pair.instruct));
  }, 60_000);

  test('a run that gives up keeps the partial file; the next run resumes from it', async () => {
    const env = hfEnv();
    server.cuts.push({ path: shard, afterBytes: 150_000, times: Infinity });
    const out = path.join(work, 'cut');
    const first = await runCli(['interpolate', '--instruct', 'Org/Instruct', '--thinking', 'Org/Thinking', '--lambda', '0.5', '-o', out, '-q'], { env });
    expect(expectOneLineError(first)).toMatch(/broke off after 150000 of \d+ bytes .*run again to resume/);
    expect(fs.existsSync(out)).toBe(false);
    const blobs = path.join(cacheOf(env), 'models--Org--Instruct', 'blobs');
    const partial = fs.readdirSync(blobs).filter((b) => b.endsWith('.incomplete'));
    expect(partial).toHaveLength(1);
    expect(fs.statSync(path.join(blobs, partial[0])).size).toBe(150_000);
    server.cuts.length = 0;
    server.log.length = 0;
    const second = await runCli(['interpolate', '--instruct', 'Org/Instruct', '--thinking', 'Org/Thinking', '--lambda', '0.5', '-o', out, '--json'], { env });
    expect(second.stderr).toBe('');
    // The resumed bytes are in the cache but were not received in this run: the transfer rate leaves them out.
    const last = second.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.event === 'download' && e.repo === 'Org/Instruct')
      .pop();
    expect(last.bytesDone).toBe(last.bytesTotal);
    expect(last.bytesReceived).toBeLessThanOrEqual(last.bytesTotal - 150_000);
    expect(server.log.filter((l) => l.url.includes(shard)).map((l) => l.range ?? null)).toEqual(['bytes=150000-', 'bytes=150000-']);
  }, 60_000);

  test('SIGINT during a download: exit 130, one line, the partial file kept for a resume, the lock released', async () => {
    const env = hfEnv();
    server.stalls.push({ path: shard, afterBytes: 120_000 });
    const out = path.join(work, 'sigint');
    const run = startCli(['interpolate', '--instruct', 'Org/Instruct', '--thinking', 'Org/Thinking', '--lambda', '0.5', '-o', out, '--json'], { env });
    const blobs = path.join(cacheOf(env), 'models--Org--Instruct', 'blobs');
    const started = Date.now();
    while (!server.log.some((l) => l.url.startsWith('/cdn/') && l.url.includes(shard)) && Date.now() - started < 20_000)
      await new Promise((r) => setTimeout(r, 50));
    // The 120,000 bytes before the stall arrive in well under this (loopback), and stay unflushed until the abort.
    await new Promise((r) => setTimeout(r, 1500));
    run.child.kill('SIGINT');
    const r = await run.done;
    server.stalls.length = 0;
    expect([r.status, r.stderr]).toEqual([130, 'weightmix: stopped by SIGINT; nothing was published\n']);
    expect(fs.existsSync(out)).toBe(false);
    const partial = fs.readdirSync(blobs).filter((b) => b.endsWith('.incomplete'));
    expect(partial.map((p) => fs.statSync(path.join(blobs, p)).size)).toEqual([120_000]);
    expect(fs.readdirSync(path.join(cacheOf(env), '.locks', 'models--Org--Instruct'))).toEqual([]);
  }, 60_000);

  test('two processes downloading the same repo: each blob is fetched once, both get the model', async () => {
    const env = hfEnv();
    const a = startCli(['diff', 'Org/Instruct', 'Org/Thinking', '--json'], { env });
    const b = startCli(['diff', 'Org/Instruct', 'Org/Thinking', '--json'], { env });
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expect([ra.status, rb.status]).toEqual([0, 0]);
    // The one that waits says so, a line per file it waits for (notices print off a terminal too).
    const lines = `${ra.stderr}${rb.stderr}`.split('\n').filter(Boolean);
    for (const line of lines) expect(line).toMatch(/^weightmix: waiting for another process that downloads Org\/(Instruct|Thinking): \S+$/);
    expect(JSON.parse(ra.stdout).sigma).toBe(JSON.parse(rb.stdout).sigma);
    const fetched = server.log.filter((l) => l.url.startsWith('/cdn/')).map((l) => l.url);
    expect(fetched.length).toBe(new Set(fetched).size);
    const locks = path.join(cacheOf(env), '.locks', 'models--Org--Instruct');
    expect(fs.readdirSync(locks)).toEqual([]);
  }, 60_000);

  test("a lock left by a process that is gone is taken over; a live one's is waited for", async () => {
    const env = hfEnv();
    const files = server.repos.get('Org/Thinking')!.commits[server.repos.get('Org/Thinking')!.refs.main];
    const shard0 = files.find((f) => f.sha256)!;
    const locks = path.join(cacheOf(env), '.locks', 'models--Org--Thinking');
    fs.mkdirSync(locks, { recursive: true });
    const dead = spawnSync('true').pid!;
    fs.writeFileSync(path.join(locks, `${shard0.sha256}.weightmix.lock`), `${dead} ${os.hostname()}\n`);
    const r = await resolveModelReference('Org/Thinking', { env });
    expect(bytesOf(r.dir)).toBe(bytesOf(pair.thinking));

    const env2 = hfEnv();
    const locks2 = path.join(cacheOf(env2), '.locks', 'models--Org--Thinking');
    fs.mkdirSync(locks2, { recursive: true });
    const lock = path.join(locks2, `${shard0.sha256}.weightmix.lock`);
    fs.writeFileSync(lock, `${process.pid} ${os.hostname()}\n`);
    const notices: string[] = [];
    let done = false;
    const pending = resolveModelReference('Org/Thinking', { env: env2, onNotice: (m) => notices.push(m) }).then((x) => ((done = true), x));
    await new Promise((res) => setTimeout(res, 500));
    expect(done).toBe(false);
    expect(notices.join()).toMatch(/waiting for another process that downloads Org\/Thinking/);
    fs.rmSync(lock);
    expect(bytesOf((await pending).dir)).toBe(bytesOf(pair.thinking));
  }, 60_000);
});

describe('recipes and score --tokenizer', () => {
  test('a recipe with hub ids merges like the same recipe with folders', async () => {
    const recipe = (a: string, b: string) =>
      `merge_method: linear\nmodels:\n  - model: ${a}\n    parameters: {weight: 0.3}\n  - model: ${b}\n    parameters: {weight: 0.7}\ntokenizer_source: ${b}\ndtype: bfloat16\n`;
    fs.writeFileSync(path.join(work, 'hub.yaml'), recipe('Org/Instruct@v1', 'Org/Thinking'));
    fs.writeFileSync(path.join(work, 'local.yaml'), recipe(pair.instruct, pair.thinking));
    const env = hfEnv();
    const r = await runCli(['merge', path.join(work, 'hub.yaml'), '-o', path.join(work, 'rec-hub'), '-q'], { env });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const l = await runCli(['merge', path.join(work, 'local.yaml'), '-o', path.join(work, 'rec-local'), '-q'], { env });
    expect(l.status).toBe(0);
    expect(bytesOfTensors(path.join(work, 'rec-hub'))).toEqual(bytesOfTensors(path.join(work, 'rec-local')));
    const meta = JSON.parse((await readSafetensorsHeader(path.join(work, 'rec-hub', shardFiles(path.join(work, 'rec-hub'))[0]))).metadata!.weightmix);
    expect(meta.hub.map((h: { repo: string; revision: string }) => `${h.repo}@${h.revision}`)).toEqual(['Org/Instruct@v1', 'Org/Thinking@main']);
    // Parsed against a baseDir without an Org/Thinking folder, the name is the hub repo: a folder of that name in the working
    // directory (another model) must not stand in for it when the merge opens it.
    const elsewhere = path.join(work, 'elsewhere');
    fs.cpSync(pair.instruct, path.join(elsewhere, 'Org', 'Thinking'), { recursive: true });
    const parsed = parseRecipe(fs.readFileSync(path.join(work, 'hub.yaml'), 'utf8'), { baseDir: work });
    const cwd = process.cwd();
    process.chdir(elsewhere);
    try {
      await merge(parsed, { output: path.join(work, 'rec-cwd'), env });
    } finally {
      process.chdir(cwd);
    }
    expect(bytesOfTensors(path.join(work, 'rec-cwd'))).toEqual(bytesOfTensors(path.join(work, 'rec-hub')));
  }, 120_000);

  test('score --tokenizer ORG/NAME counts with the tokenizer.json, downloading only tokenizer files', async () => {
    const env = hfEnv();
    const gens = path.join(work, 'gens.jsonl');
    const texts = ['Hello world, this is a test.', '<think>\nLet me see.</think> The answer is 42.', 'naïve café – 東京'];
    fs.writeFileSync(gens, texts.map((t, i) => JSON.stringify({ question_id: 'q', sample: i, correct: i === 0, response: t })).join('\n') + '\n');
    const r = await runCli(['score', gens, '--tokenizer', 'Org/Instruct', '--json'], { env });
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout);
    const counter = await loadTokenCounter(pair.instruct);
    const expected = texts.reduce((s, t) => s + counter.count(t), 0) / texts.length;
    expect(report.benchmarks[0].tokensSource).toBe('tokenizer');
    expect(report.benchmarks[0].tokens).toBeCloseTo(expected, 10);
    expect(server.log.some((l) => l.url.includes('.safetensors'))).toBe(false);
    const offline = await runCli(['score', gens, '--tokenizer', 'Org/Instruct', '--json'], { env: { ...env, HF_ENDPOINT: 'http://127.0.0.1:9' } });
    expect([offline.status, offline.stderr]).toEqual([0, expect.stringMatching(/^weightmix: cannot reach the hub at .*using the cached Org\/Instruct/)]);
    const both = await runCli(['score', gens, '--tokenizer', pair.instruct, '--whitespace-tokens'], { env });
    expectOneLineError(both, 2);
  }, 60_000);
});

describe('faults', () => {
  hubFaultCases({
    get server() {
      return server;
    },
    get pair() {
      return pair;
    },
    get work() {
      return work;
    },
    hfEnv: (extra) => hfEnv(extra),
    cacheOf,
    bytesOf,
  });
});
