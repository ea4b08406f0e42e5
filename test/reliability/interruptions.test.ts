/**
 * Interruptions: SIGINT / SIGTERM to the command line mid-merge, an AbortSignal through the API,
 * SIGKILL (no cleanup possible) and the next run after it, and `--force` replacing an existing
 * output only once the new one is complete.
 *
 * Signals are timed with a fault-injection shim (LD_PRELOAD) that slows chosen system calls, like a
 * slow disk: SIGINT / SIGTERM go to merges of a ~125 MB pair (16 tasks of 8 MiB) whose every read
 * takes 100 ms, so they land mid-merge on any machine and the engine notices them between tasks;
 * other signals land while a merge of the tiny pair syncs its model card, just before publishing.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../../lib/errors';
import type { CheckpointPair } from '../../lib/fixtures/fixture';
import { interpolate } from '../../lib/interpolation/interpolate';
import {
  cachedPair,
  ensureCliBuilt,
  expectOneLineError,
  isProgressLine,
  leftoversBeside,
  ROOT,
  runCli,
  snapshotTree,
  startCli,
  waitForFile,
  scratchDir,
} from '../helpers/cli';
import { faultEnv, faultShimTests, slowReadsEnv } from '../helpers/fault-shim';

/** Without a C compiler the slow-disk shim cannot be built: its tests are skipped, saying why. */
const { shimPath, withShim } = faultShimTests();

let work: string;
let pair: CheckpointPair;
let big: CheckpointPair;
let slow: Record<string, string>;

beforeAll(async () => {
  ensureCliBuilt();
  work = scratchDir('interrupt');
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 11 });
  big = await cachedPair({ shape: 'qwen3-4b', scale: 8, shards: [2, 1], seed: 3 });
  slow = slowReadsEnv(shimPath, path.dirname(big.instruct), 100_000);
}, 180_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

let n = 0;
function outPath(): string {
  const dir = path.join(work, `run-${++n}`);
  fs.mkdirSync(dir);
  return path.join(dir, 'out');
}

const mergeArgsOf = (models: CheckpointPair, out: string, ...extra: string[]) => [
  'interpolate',
  '--instruct',
  models.instruct,
  '--thinking',
  models.thinking,
  '--lambda',
  '0.8',
  '-o',
  out,
  '--threads',
  '1',
  '--json',
  ...extra,
];
const mergeArgs = (out: string, ...extra: string[]) => mergeArgsOf(pair, out, ...extra);
const bigMergeArgs = (out: string, ...extra: string[]) => mergeArgsOf(big, out, ...extra);

describe.each([
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const)('%s mid-merge', (signal, status) => {
  withShim(`stops within a second, exits ${status}, says so in one line, and leaves nothing, not even the folders it created`, async () => {
    const runDir = path.dirname(outPath());
    const out = path.join(runDir, 'new', 'deeper', 'out');
    const run = startCli(bigMergeArgs(out), { env: slow });
    await run.waitForLine(isProgressLine);
    // Mid-merge: the temporary folder and the lock exist, the output does not.
    const during = leftoversBeside(out);
    expect(during.some((e) => e.includes('.weightmix-tmp-'))).toBe(true);
    expect(during).not.toContain('out');
    const sent = Date.now();
    run.child.kill(signal);
    const result = await run.done;
    const stopMs = Date.now() - sent;
    expect({ status: result.status, signal: result.signal, stderr: result.stderr }).toEqual({
      status,
      signal: null,
      stderr: `weightmix: stopped by ${signal}; nothing was published\n`,
    });
    expect(stopMs).toBeLessThan(1000);
    expect(result.stdout).not.toContain('"event":"done"');
    expect(fs.readdirSync(runDir)).toEqual([]);
  });
});

withShim('an abort during a tensor read in chunks for its statistics (della, every local job chunked) stops at the next chunk', async () => {
  const runDir = path.dirname(outPath());
  const out = path.join(runDir, 'out');
  const mark = path.join(runDir, 'first-read');
  // A child process, so that the shim slows its reads (100 ms each): it merges by the API with every tensor-local job read in
  // chunks (the engine's switch, which only a caller in-process can lower), aborts once a read was slowed, and reports how long
  // the merge took to stop. With 1 MiB blocks della's L1 pass over the embedding (2 x 12 MB) reads 24 chunks of 512 KB per source.
  const script = `
    const fs = require('node:fs');
    const { localJobReads } = require(${JSON.stringify(path.join(ROOT, 'dist', 'lib', 'engine', 'execute-plan.js'))});
    const { merge } = require(${JSON.stringify(path.join(ROOT, 'dist', 'lib', 'index.js'))});
    localJobReads.chunkedLocalBytes = 0;
    const controller = new AbortController();
    let aborted = 0;
    const poll = setInterval(() => { if (fs.existsSync(${JSON.stringify(mark)})) { aborted = Date.now(); controller.abort(); clearInterval(poll); } }, 5);
    const recipe = { merge_method: 'della', base_model: ${JSON.stringify(big.instruct)},
      models: [{ model: ${JSON.stringify(big.thinking)}, parameters: { weight: 0.8, density: 0.5, epsilon: 0.1 } }] };
    merge(recipe, { output: ${JSON.stringify(out)}, threads: 1, blockBytes: 1 << 20, signal: controller.signal }).then(
      () => { clearInterval(poll); console.log(JSON.stringify({ code: 'done' })); },
      (e) => { clearInterval(poll); console.log(JSON.stringify({ code: e.code, stopMs: Date.now() - aborted })); });
  `;
  const env = { ...process.env, ...faultEnv(shimPath, { path: path.dirname(big.instruct), slow: ['pread'], sleepUs: 100_000, minBytes: 100_000, mark }) };
  const child = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 120_000 });
  expect({ status: child.status, stdout: child.stdout.trim().startsWith('{') }).toEqual({ status: 0, stdout: true });
  const result = JSON.parse(child.stdout) as { code: string; stopMs: number };
  expect(result.code).toBe('Aborted');
  // 0.23-0.25 s here (0.5-0.9 s with the cores busy); it checked only between tasks before: the rest of the pass's chunk reads, 4.7 s.
  expect(result.stopMs).toBeLessThan(2500);
  expect(leftoversBeside(out)).toEqual([]);
});

withShim('a reader that closes standard output (`| head -1`) stops a sweep as SIGPIPE would: 141, one line, nothing left', async () => {
  const runDir = path.dirname(outPath());
  const out = path.join(runDir, 'sweep');
  const run = startCli(['sweep', '--instruct', big.instruct, '--thinking', big.thinking, '--lambdas', '0.2,0.5,0.8', '-o', out, '--threads', '1', '--json'], {
    env: slow,
  });
  await run.waitForLine(isProgressLine);
  run.child.stdout!.destroy();
  const result = await run.done;
  expect({ status: result.status, signal: result.signal, stderr: result.stderr }).toEqual({
    status: 141,
    signal: null,
    stderr: 'weightmix: stopped by standard output being closed; nothing was published\n',
  });
  expect(fs.readdirSync(runDir)).toEqual([]);
});

test('output that nobody reads any more after the merge is done is no crash: the model is published, exit 0', async () => {
  const out = outPath();
  const run = startCli(['interpolate', '--instruct', pair.instruct, '--thinking', pair.thinking, '--lambda', '0.8', '-o', out]);
  run.child.stdout!.destroy();
  const result = await run.done;
  expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  expect(leftoversBeside(out)).toEqual(['out']);
});

withShim('SIGINT during `weightmix demo`: one line, exit 130, and its temporary folder removed', async () => {
  const tmp = path.join(work, `demo-tmp-${++n}`);
  fs.mkdirSync(tmp);
  // Every read of the demo's pair (in TMPDIR) slowed: the signal comes while it interpolates.
  const run = startCli(['demo'], { env: { ...slowReadsEnv(shimPath, tmp, 100_000), TMPDIR: tmp } });
  await run.waitForLine((l) => l.startsWith('made a tiny Qwen3-shaped pair'));
  run.child.kill('SIGINT');
  const r = await run.done;
  expect([r.status, r.stderr]).toEqual([130, 'weightmix: stopped by SIGINT; nothing was published\n']);
  expect(fs.readdirSync(tmp)).toEqual([]);
});

withShim('a second SIGINT ends the run at once even while the first waits on a read that blocks', async () => {
  const out = outPath();
  const mark = path.join(path.dirname(out), 'blocked');
  // Each read of the Instruct model takes 5 s: the run is stuck opening it, in a read no signal interrupts.
  const stuck = faultEnv(shimPath, { path: pair.instruct, slow: ['pread'], sleepUs: 5_000_000, mark });
  const run = startCli(mergeArgs(out), { env: stuck });
  await waitForFile(mark);
  run.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 200));
  const sent = Date.now();
  run.child.kill('SIGINT');
  const result = await run.done;
  // Ended by the signal itself, as an uncaught SIGINT ends any program (a shell reports status 130).
  expect({ status: result.status, signal: result.signal }).toEqual({ status: null, signal: 'SIGINT' });
  expect(Date.now() - sent).toBeLessThan(1000);
  expect(leftoversBeside(out)).toEqual([]);
});

withShim('a signal after the output is published (while its folder is synced) stops nothing: the model stands, exit 0', async () => {
  const out = outPath();
  // Every sync under the output's folder takes 150 ms, the folder's own after the rename too: the signal lands then.
  const run = startCli(mergeArgs(out), { env: faultEnv(shimPath, { path: path.dirname(out), slow: ['fsync'], sleepUs: 150_000 }) });
  while (!fs.existsSync(out) && run.child.exitCode === null) await new Promise((r) => setTimeout(r, 2));
  run.child.kill('SIGTERM');
  const result = await run.done;
  // Exit 143 used to say "stopped" (with no line) of a model that was published.
  expect({ status: result.status, signal: result.signal, stderr: result.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
  expect(result.stdout).toContain('"event":"done"');
  expect(leftoversBeside(out)).toEqual(['out']);
});

withShim('a signal after the engine finished but before the output is published still publishes nothing', async () => {
  const out = outPath();
  const mark = path.join(path.dirname(out), 'syncing');
  // Syncing the temporary README (the last step before the rename) takes 1 s.
  const slowSync = faultEnv(shimPath, { path: '.weightmix-tmp-', slow: ['fsync'], sleepUs: 1_000_000, mark });
  const run = startCli(mergeArgs(out), { env: { ...slowSync, WEIGHTMIX_FAULT_PATH: `${path.sep}README.md` } });
  await waitForFile(mark);
  expect(run.child.exitCode).toBeNull();
  run.child.kill('SIGINT');
  const result = await run.done;
  expect({ status: result.status, signal: result.signal, stderr: result.stderr }).toEqual({
    status: 130,
    signal: null,
    stderr: 'weightmix: stopped by SIGINT; nothing was published\n',
  });
  expect(result.stdout).not.toContain('"event":"done"');
  expect(leftoversBeside(out)).toEqual([]);
});

withShim('SIGKILL leaves only the temporary folder and a stale lock; the next run removes them with a notice and succeeds', async () => {
  const out = outPath();
  const run = startCli(mergeArgs(out), { env: slowReadsEnv(shimPath, path.dirname(pair.instruct), 150_000) });
  await run.waitForLine(isProgressLine);
  run.child.kill('SIGKILL');
  const killed = await run.done;
  expect(killed.signal).toBe('SIGKILL');
  const left = leftoversBeside(out);
  expect(left).toHaveLength(2);
  expect(left.find((e) => e.includes('.weightmix-tmp-'))).toBeDefined();
  expect(left.find((e) => e.endsWith('.weightmix.lock'))).toBeDefined();
  expect(left).not.toContain('out'); // nothing that looks like a model was published

  const next = await runCli(mergeArgs(out).filter((a) => a !== '--json'));
  expect({ status: next.status, stderr: next.stderr.replace(/^weightmix: removed .* left by an interrupted run\n/gm, '') }).toEqual({ status: 0, stderr: '' });
  expect(next.stderr).toMatch(/^weightmix: removed .*\.out\.weightmix-tmp-\S+ left by an interrupted run$/m);
  expect(leftoversBeside(out)).toEqual(['out']);
});

withShim('a SIGKILLed sweep leaves temporary folders and locks for each λ; the next sweep removes all of them, whichever λ it writes', async () => {
  const runDir = path.dirname(outPath());
  const out = path.join(runDir, 'sweep');
  const sweepArgs = (lambdas: string) => [
    'sweep',
    '--instruct',
    pair.instruct,
    '--thinking',
    pair.thinking,
    '--lambdas',
    lambdas,
    '-o',
    out,
    '--threads',
    '1',
    '--json',
  ];
  const run = startCli(sweepArgs('0.2,0.5,0.8'), { env: slowReadsEnv(shimPath, path.dirname(pair.instruct), 150_000) });
  await run.waitForLine(isProgressLine);
  run.child.kill('SIGKILL');
  expect((await run.done).signal).toBe('SIGKILL');
  const left = fs.readdirSync(out);
  expect(left.filter((e) => e.includes('.weightmix-tmp-'))).toHaveLength(3);
  expect(left.filter((e) => e.endsWith('.weightmix.lock'))).toHaveLength(3);
  const next = await runCli(sweepArgs('0.3'));
  expect(next.status).toBe(0);
  expect(next.stdout.split('\n').filter((l) => l.includes('left by an interrupted run'))).toHaveLength(6);
  expect(fs.readdirSync(out)).toEqual(['lambda-0.30']);
});

describe('--force', () => {
  /** An existing output made at λ = 0.2, and a digest of every file of it. */
  async function existingOutput(): Promise<{ out: string; before: Map<string, string> }> {
    const out = outPath();
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.2, output: out, threads: 2 });
    return { out, before: snapshotTree(out) };
  }

  withShim('a --force run interrupted at its last step before the swap leaves the existing output intact, byte for byte', async () => {
    const { out, before } = await existingOutput();
    const mark = path.join(path.dirname(out), 'syncing');
    // The new model is complete and being synced (1 s for its model card) when the signal comes.
    const slowSync = faultEnv(shimPath, { path: `.out.weightmix-tmp-`, slow: ['fsync'], sleepUs: 1_000_000, mark });
    const run = startCli(mergeArgs(out, '--force'), { env: { ...slowSync, WEIGHTMIX_FAULT_PATH: `${path.sep}README.md` } });
    await waitForFile(mark);
    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.status).toBe(130);
    expect(snapshotTree(out)).toEqual(before);
    expect(leftoversBeside(out)).toEqual(['out']);
  });

  test('a --force run that fails on a malformed input leaves the existing output intact', async () => {
    const { out, before } = await existingOutput();
    const broken = path.join(path.dirname(out), 'broken');
    fs.mkdirSync(broken);
    fs.writeFileSync(path.join(broken, 'model.safetensors'), Buffer.from('\x02\0\0\0\0\0\0\0{}garbage'));
    const result = await runCli(['interpolate', '--instruct', broken, '--thinking', pair.thinking, '--lambda', '0.8', '-o', out, '--force']);
    expectOneLineError(result, 1);
    expect(snapshotTree(out)).toEqual(before);
    expect(leftoversBeside(out)).toEqual(['out']);
  });

  test('an aborted --force merge through the API leaves the existing output intact', async () => {
    const { out, before } = await existingOutput();
    const controller = new AbortController();
    controller.abort();
    await expect(
      interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: out, force: true, signal: controller.signal }),
    ).rejects.toMatchObject({
      code: 'Aborted',
    });
    expect(snapshotTree(out)).toEqual(before);
    expect(leftoversBeside(out)).toEqual(['out']);
  });

  test('--force replaces the output once the new one is complete, and no swapped-out copy remains', async () => {
    const { out, before } = await existingOutput();
    const result = await runCli(mergeArgs(out, '--force'));
    expect(result.status).toBe(0);
    const after = snapshotTree(out);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    expect(after.get('model-00001-of-00002.safetensors')).not.toBe(before.get('model-00001-of-00002.safetensors'));
    expect(leftoversBeside(out)).toEqual(['out']);
  });

  test('without --force an existing output is refused and left intact', async () => {
    const { out, before } = await existingOutput();
    const result = await runCli(mergeArgs(out));
    expect(expectOneLineError(result, 1)).toMatch(/already exists \(use --force/);
    expect(snapshotTree(out)).toEqual(before);
    expect(leftoversBeside(out)).toEqual(['out']);
  });

  test('an output swapped out by a --force run killed between its two renames is restored, not deleted, by the next run', async () => {
    const { out, before } = await existingOutput();
    // The state such a kill leaves: the old model moved aside, the new one complete in its temporary folder.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const parent = path.dirname(out);
    fs.renameSync(out, path.join(parent, `.out.weightmix-old-${dead}`));
    fs.mkdirSync(path.join(parent, `.out.weightmix-tmp-${dead}-0badc0de`));
    const result = await runCli(mergeArgs(out).filter((a) => a !== '--json'));
    expect(expectOneLineError({ ...result, stderr: result.stderr.replace(/^weightmix: (removed|restored) .*\n/gm, '') }, 1)).toMatch(/already exists/);
    expect(result.stderr).toMatch(/^weightmix: restored .*out/m);
    expect(snapshotTree(out)).toEqual(before);
    expect(leftoversBeside(out)).toEqual(['out']);
  });
});

describe('AbortSignal through the API', () => {
  test('an already aborted signal rejects with code Aborted before anything is written', async () => {
    const out = outPath();
    const controller = new AbortController();
    controller.abort();
    const err = await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: out, signal: controller.signal }).catch((e) => e);
    expect(err).toBeInstanceOf(WeightmixError);
    expect(err.code).toBe('Aborted');
    expect(leftoversBeside(out)).toEqual([]);
  });

  test('aborting at the first progress event of a larger merge rejects with code Aborted and leaves nothing', async () => {
    const big = await cachedPair({ shape: 'qwen3-4b', scale: 8, shards: [2, 1], seed: 3 });
    const out = outPath();
    const controller = new AbortController();
    let progressEvents = 0;
    const started = Date.now();
    const err = await interpolate({
      instruct: big.instruct,
      thinking: big.thinking,
      lambda: 0.8,
      output: out,
      threads: 1,
      blockBytes: 4096, // small blocks: the merge lasts well past the first progress event
      signal: controller.signal,
      onProgress: (p) => {
        progressEvents++;
        expect(p.bytesDone).toBeLessThan(p.bytesTotal);
        controller.abort();
      },
    }).catch((e) => e);
    expect(progressEvents).toBeGreaterThanOrEqual(1);
    expect(err).toBeInstanceOf(WeightmixError);
    expect(err.code).toBe('Aborted');
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(leftoversBeside(out)).toEqual([]);
  }, 60_000);
});
