/**
 * Concurrency: two command-line runs on one output (the second must fail at once on the lock, and
 * the first must still finish), and several merges in one process through the API at the same
 * time, which must produce exactly the bytes of the same merges run one after another.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CheckpointPair } from '../../lib/fixtures/fixture';
import { interpolate, type InterpolateOptions } from '../../lib/interpolation/interpolate';
import { sweep } from '../../lib/interpolation/sweep';
import { cachedPair, ensureCliBuilt, expectOneLineError, leftoversBeside, runCli, snapshotTree, startCli, waitForFile, scratchDir } from '../helpers/cli';
import { faultEnv, faultShimTests } from '../helpers/fault-shim';

let work: string;
let pair: CheckpointPair;

beforeAll(async () => {
  ensureCliBuilt();
  work = scratchDir('concurrency');
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 19 });
}, 180_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const { shimPath, withShim } = faultShimTests();

withShim('a second CLI run on the same output fails at once on the lock, and the first still completes', async () => {
  const out = path.join(work, 'locked', 'out');
  fs.mkdirSync(path.dirname(out));
  const mark = path.join(work, 'locked', 'publishing');
  const args = ['interpolate', '--instruct', pair.instruct, '--thinking', pair.thinking, '--lambda', '0.8', '-o', out, '--threads', '1'];
  // The first run holds the lock for 3 s more while it syncs its model card, just before publishing; 15 s under
  // check:sanitizers (ASAN_OPTIONS set), where the second CLI alone takes longer than 3 s to start.
  const holdUs = process.env.ASAN_OPTIONS ? 15_000_000 : 3_000_000;
  const first = startCli(args, { env: { ...faultEnv(shimPath, { path: `${path.sep}README.md`, slow: ['fsync'], sleepUs: holdUs, mark }) } });
  let firstEnded = Infinity;
  void first.done.then(() => (firstEnded = Date.now()));
  await waitForFile(mark);
  const second = await runCli(args);
  const secondEnded = Date.now();
  expect(secondEnded).toBeLessThan(firstEnded); // the second did not wait for the first
  expect(expectOneLineError(second, 1)).toMatch(new RegExp(`another weightmix run \\(pid ${first.child.pid}\\) is writing .*out`));
  const done = await first.done;
  expect({ status: done.status, stderr: done.stderr }).toEqual({ status: 0, stderr: '' });
  expect(leftoversBeside(out)).toEqual(['out']);
});

describe('merges in one process at the same time', () => {
  const jobs: Omit<InterpolateOptions, 'instruct' | 'thinking' | 'output'>[] = [
    { lambda: 0.8, threads: 1 },
    { lambda: 0.5, threads: 2, numerics: 'mi' },
    { lambda: 0.3, threads: 3, dtype: 'F32' },
    { lambda: 0.8, threads: 2, layers: '1-2', modules: 'attn,mlp' },
    { lambda: 0.8, threads: 4, blockBytes: 4096 },
  ];

  test('produce byte-identical models to the same merges run one after another', async () => {
    const sequential = path.join(work, 'sequential');
    const concurrent = path.join(work, 'concurrent');
    for (const [i, job] of jobs.entries()) {
      await interpolate({ ...job, instruct: pair.instruct, thinking: pair.thinking, output: path.join(sequential, `m${i}`) });
    }
    await Promise.all(jobs.map((job, i) => interpolate({ ...job, instruct: pair.instruct, thinking: pair.thinking, output: path.join(concurrent, `m${i}`) })));
    for (const i of jobs.keys()) {
      const a = snapshotTree(path.join(sequential, `m${i}`));
      const b = snapshotTree(path.join(concurrent, `m${i}`));
      expect([...b.keys()]).toEqual([...a.keys()]);
      for (const [file, digest] of a) expect({ file, digest: b.get(file) }).toEqual({ file, digest });
    }
    expect(fs.readdirSync(concurrent).sort()).toEqual(jobs.map((_, i) => `m${i}`));
  });

  test('a sweep and interpolations running together agree with each other', async () => {
    const dir = path.join(work, 'mixed');
    await Promise.all([
      sweep({ instruct: pair.instruct, thinking: pair.thinking, lambdas: '0.25,0.75', output: path.join(dir, 'sweep'), threads: 2 }),
      interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.25, output: path.join(dir, 'a'), threads: 1 }),
      interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.75, output: path.join(dir, 'b'), threads: 3 }),
    ]);
    expect(snapshotTree(path.join(dir, 'sweep', 'lambda-0.25'))).toEqual(snapshotTree(path.join(dir, 'a')));
    expect(snapshotTree(path.join(dir, 'sweep', 'lambda-0.75'))).toEqual(snapshotTree(path.join(dir, 'b')));
  });

  test('two merges into the same output at once: one publishes, the other fails with OutputLocked and leaves nothing', async () => {
    const out = path.join(work, 'same', 'out');
    const results = await Promise.allSettled(
      [0.2, 0.8].map((lambda) => interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda, output: out })),
    );
    const fulfilled = results.filter((r) => r.status === 'fulfilled');
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(fulfilled).toHaveLength(1);
    expect(rejected).toHaveLength(1);
    expect(rejected[0].reason).toMatchObject({ code: 'OutputLocked' });
    expect(leftoversBeside(out)).toEqual(['out']);
  });
});
