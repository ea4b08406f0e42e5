/**
 * Storage faults through the command line: a full disk (a small tmpfs mounted here; needs root),
 * a read-only one, and I/O errors on writing the output or reading an input (an LD_PRELOAD shim
 * fails the engine's pwrite/pread with EIO; device-mapper's dm-error is not available everywhere).
 * Each ends with one error line, exit status 1, and nothing left: no temporary folder, no lock.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CheckpointPair } from '../../lib/fixtures/fixture';
import { interpolate } from '../../lib/interpolation/interpolate';
import { BIN, cachedPair, ensureCliBuilt, expectOneLineError, leftoversBeside, runCli } from '../helpers/cli';
import { faultEnv, faultShimTests } from '../helpers/fault-shim';
import { testIf } from '../helpers/skip';

let work: string;
let pair: CheckpointPair;
/** Sizes of the tiny pair's merged shards, from a merge on the ordinary disk. */
let shardSizes: number[];
const mounts: string[] = [];
/** Without a C compiler the EIO shim cannot be built: its tests are skipped, saying why. */
const { shimPath, withShim } = faultShimTests();

/** Why no tmpfs can be mounted here (not root, no mount), or undefined: decided once, when the suite loads. */
function whyNoTmpfs(): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weightmix-tmpfs-probe-'));
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { encoding: 'utf8' });
    if (r.error || r.status !== 0) return `cannot mount a tmpfs (${(r.error?.message ?? r.stderr).trim() || `status ${r.status}`})`;
    spawnSync('umount', [dir]);
    return undefined;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
const noTmpfs = whyNoTmpfs();
const withTmpfs = testIf(noTmpfs === undefined, noTmpfs ?? '');

beforeAll(async () => {
  ensureCliBuilt();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'weightmix-storage-'));
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 13 });
  const reference = path.join(work, 'reference');
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: reference, threads: 1 });
  shardSizes = fs
    .readdirSync(reference)
    .filter((f) => f.endsWith('.safetensors'))
    .map((f) => fs.statSync(path.join(reference, f)).size);
}, 180_000);

afterAll(() => {
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  fs.rmSync(work, { recursive: true, force: true });
});

function mountTmpfs(bytes: number, readOnly = false): string | { reason: string } {
  const dir = path.join(work, `disk-${mounts.length}`);
  fs.mkdirSync(dir);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}${readOnly ? ',ro' : ''}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return { reason: `cannot mount a tmpfs (${(r.error?.message ?? r.stderr).trim() || `status ${r.status}`})` };
  mounts.push(dir);
  return dir;
}

const PAGE = 4096;
const pages = (n: number) => Math.ceil(n / PAGE) * PAGE;

function mergeArgs(out: string): string[] {
  return ['interpolate', '--instruct', pair.instruct, '--thinking', pair.thinking, '--lambda', '0.8', '-o', out, '--threads', '1'];
}

withTmpfs('a disk too small for the shards: one line naming the shard and the bytes missing; nothing left on it', async () => {
  const disk = mountTmpfs(pages(shardSizes[0]) + PAGE) as string; // room for one shard, not two
  const out = path.join(disk, 'out');
  const line = expectOneLineError(await runCli(mergeArgs(out)), 1);
  expect(line).toMatch(/not enough space for output \S+\/model-0000[12]-of-00002\.safetensors \((\d+) bytes needed, (\d+) missing\): No space left on device$/);
  const [, needed, missing] = /\((\d+) bytes needed, (\d+) missing\)/.exec(line)!.map(Number);
  expect(shardSizes).toContain(needed);
  expect(missing).toBeGreaterThan(0);
  expect(missing).toBeLessThanOrEqual(needed);
  expect(fs.readdirSync(disk)).toEqual([]);
});

withTmpfs('a disk that holds the shards but not the index and sidecars: one line, not a stack; nothing left on it', async () => {
  // The shards fit; the lock and the first small files take the last pages.
  const disk = mountTmpfs(shardSizes.reduce((n, s) => n + pages(s), 0) + 3 * PAGE) as string;
  const out = path.join(disk, 'out');
  const line = expectOneLineError(await runCli(mergeArgs(out)), 1);
  expect(line).toMatch(/ENOSPC|no space left/i);
  expect(line).toContain(out);
  expect(fs.readdirSync(disk)).toEqual([]);
});

/** A linear recipe over the tiny pair, written to a file for the command line. */
function recipeFile(name: string, weight: number): string {
  const file = path.join(work, `${name}.yml`);
  const doc = {
    merge_method: 'linear',
    models: [pair.instruct, pair.thinking].map((model, k) => ({ model, parameters: { weight: k ? weight : 1 - weight } })),
  };
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}

withTmpfs('merge, a batch and fixture on a disk that holds the shards but not the sidecars: one line each (they ended in an internal error)', async () => {
  const shards = shardSizes.reduce((n, s) => n + pages(s), 0);
  const single = mountTmpfs(shards + 3 * PAGE) as string;
  const line = expectOneLineError(await runCli(['merge', recipeFile('lin', 0.7), '-o', path.join(single, 'out'), '--threads', '1']), 1);
  expect(line).toMatch(/^weightmix: error: cannot finish \S+\/out: ENOSPC/);
  expect(fs.readdirSync(single)).toEqual([]);
  const batch = mountTmpfs(2 * shards + 4 * PAGE) as string;
  const both = expectOneLineError(await runCli(['merge', recipeFile('lin-a', 0.3), recipeFile('lin-b', 0.7), '-o', batch, '--threads', '1']), 1);
  expect(both).toMatch(/ENOSPC|not enough space/);
  expect(fs.readdirSync(batch)).toEqual([]);
  // The fixture's space check counts its shards; its headers and sidecars take the rest.
  const fixtureDisk = mountTmpfs(2 * shards + PAGE) as string;
  const fixture = expectOneLineError(await runCli(['fixture', '--shape', 'tiny', '--out', path.join(fixtureDisk, 'fx'), '--quiet']), 1);
  expect(fixture).toMatch(/^weightmix: error: (cannot write the pair into \S+: ENOSPC|the pair needs)/);
  expect(fs.readdirSync(fixtureDisk)).toEqual([]);
});

test('an output path through a file, a loop of links or a name too long: one line, exit 1 (merge called stat unguarded: an internal error)', async () => {
  const file = path.join(work, 'a-file');
  fs.writeFileSync(file, 'x');
  const loop = path.join(work, 'loop');
  fs.symlinkSync(loop, loop);
  for (const out of [path.join(file, 'out'), path.join(loop, 'out'), path.join(work, 'n'.repeat(300))]) {
    expect(expectOneLineError(await runCli(['merge', recipeFile('lin', 0.7), '-o', out]), 1)).toMatch(
      /^weightmix: error: cannot use \S+ as the output: E(NOTDIR|LOOP|NAMETOOLONG)/,
    );
  }
  expect(expectOneLineError(await runCli(['fixture', '--shape', 'tiny', '--out', file]), 1)).toMatch(/cannot write the pair into \S+: ENOTDIR/);
  // Two levels below the file: a batch said "cannot finish : ENOTDIR" (no output named), a sweep the same.
  const deeper = path.join(file, 'out', 'x');
  for (const args of [
    ['merge', recipeFile('lin-a', 0.3), recipeFile('lin-b', 0.7), '-o', deeper],
    ['sweep', '--instruct', pair.instruct, '--thinking', pair.thinking, '--lambdas', '0.2,0.4', '-o', deeper],
  ]) {
    expect(expectOneLineError(await runCli(args), 1)).toMatch(/^weightmix: error: cannot create \S+: \S+a-file is a file, not a folder$/);
  }
});

withTmpfs('a failed reservation gives back its descriptor and its space (a long-lived process through the API)', async () => {
  const size = pages(shardSizes[0]) + PAGE;
  const disk = mountTmpfs(size) as string;
  const openFds = () => fs.readdirSync('/proc/self/fd').length;
  const before = openFds();
  for (let i = 0; i < 3; i++) {
    await expect(
      interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: path.join(disk, 'out'), threads: 1 }),
    ).rejects.toMatchObject({ code: 'NoSpace' });
  }
  expect(openFds()).toBeLessThanOrEqual(before);
  expect(fs.readdirSync(disk)).toEqual([]);
  const { bavail, bsize } = fs.statfsSync(disk);
  expect(bavail * bsize).toBe(size);
});

for (const where of ['out', 'new/deeper/out'])
  withTmpfs(`a read-only disk, output ${where}: one line that says read-only, nothing written`, async () => {
    const disk = mountTmpfs(1 << 20, true) as string;
    const line = expectOneLineError(await runCli(mergeArgs(path.join(disk, where))), 1);
    expect(line).toMatch(/read-only file system/i);
    expect(fs.readdirSync(disk)).toEqual([]);
  });

describe('I/O errors (EIO injected by an LD_PRELOAD shim)', () => {
  withShim('EIO writing an output shard: one line naming it; temporary folder and lock removed', async () => {
    const out = path.join(work, 'eio-write', 'out');
    fs.mkdirSync(path.dirname(out));
    const env = faultEnv(shimPath, { path: '.out.weightmix-tmp-', eio: 'pwrite' });
    const line = expectOneLineError(await runCli(mergeArgs(out), { env }), 1);
    expect(line).toMatch(/write failed on \S+\/model-0000[12]-of-00002\.safetensors: Input\/output error/);
    expect(leftoversBeside(out)).toEqual([]);
  });

  withShim('EIO reading an input shard mid-merge: one line naming it; nothing left', async () => {
    const out = path.join(work, 'eio-read', 'out');
    fs.mkdirSync(path.dirname(out));
    // Reads of 16 KiB or more are the engine's (the CLI reads headers in smaller pieces).
    const env = faultEnv(shimPath, { path: path.join(pair.thinking, 'model.safetensors'), eio: 'pread', minBytes: 16384 });
    const line = expectOneLineError(await runCli(mergeArgs(out), { env }), 1);
    expect(line).toMatch(/read failed on \S+thinking\/model\.safetensors: Input\/output error/);
    expect(leftoversBeside(out)).toEqual([]);
  });

  withShim('EIO syncing a file before publishing: one line; nothing published', async () => {
    const out = path.join(work, 'eio-sync', 'out');
    fs.mkdirSync(path.dirname(out));
    const env = faultEnv(shimPath, { path: '.out.weightmix-tmp-', eio: 'fsync' });
    const line = expectOneLineError(await runCli(mergeArgs(out), { env }), 1);
    expect(line).toMatch(/EIO|Input\/output error/);
    expect(leftoversBeside(out)).toEqual([]);
  });
});

test('an open-file limit too low for a sweep of many λ: one line that names ulimit -n, nothing left', async () => {
  const out = path.join(work, 'few-files');
  // 16 shards × 25 outputs of open files, far past 150; node itself needs a few dozen.
  const moe = await cachedPair({ shape: 'qwen3-30b-a3b', scale: 128, layers: 4, seed: 13 });
  const r = spawnSync(
    'bash',
    [
      '-c',
      `ulimit -n 150 && exec "$0" "$@"`,
      process.execPath,
      BIN,
      'sweep',
      '--instruct',
      moe.instruct,
      '--thinking',
      moe.thinking,
      '--lambdas',
      '0:0.48:0.02',
      '-o',
      out,
    ],
    { encoding: 'utf8' },
  );
  expect(expectOneLineError({ status: r.status, signal: null, stdout: r.stdout, stderr: r.stderr, ms: 0 }, 1)).toMatch(
    /Too many open files \(every input and output shard stays open .*ulimit -n/,
  );
  expect(fs.existsSync(out) ? fs.readdirSync(out) : []).toEqual([]);
}, 60_000);
