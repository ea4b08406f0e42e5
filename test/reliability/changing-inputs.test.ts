/**
 * Input files that change while a merge reads them. The engine reads with pread (never mmap), so a
 * shard truncated underneath must end the merge with a one-line error (code InputChanged), not
 * SIGBUS, and leave nothing published and no temporary folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../../lib/errors';
import type { CheckpointPair } from '../../lib/fixtures/fixture';
import { interpolate } from '../../lib/interpolation/interpolate';
import { readSafetensorsHeader } from '../../lib/format/safetensors';
import { cachedPair, ensureCliBuilt, expectOneLineError, isProgressLine, leftoversBeside, privateCopy, startCli, scratchDir } from '../helpers/cli';
import { faultShimTests, slowReadsEnv } from '../helpers/fault-shim';

let work: string;

beforeAll(() => {
  ensureCliBuilt();
  work = scratchDir('changing');
}, 180_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A private copy of `pair` whose Thinking shard (read by every job) may be truncated. */
function truncatable(pair: CheckpointPair, tag: string): { thinking: string; shard: string; dataStart: Promise<number> } {
  const thinking = privateCopy(pair.thinking, path.join(work, tag, 'thinking'), ['model.safetensors']);
  const shard = path.join(thinking, 'model.safetensors');
  return { thinking, shard, dataStart: readSafetensorsHeader(shard).then((h) => h.dataStart) };
}

test('an input shard truncated mid-merge (API, ~125 MB models): InputChanged, not SIGBUS; nothing published', async () => {
  const pair = await cachedPair({ shape: 'qwen3-4b', scale: 8, shards: [2, 1], seed: 3 });
  const { thinking, shard, dataStart } = truncatable(pair, 'api');
  const headerEnd = await dataStart;
  const out = path.join(work, 'api', 'out');
  let truncatedAt: number | null = null;
  const err = await interpolate({
    instruct: pair.instruct,
    thinking,
    lambda: 0.8,
    output: out,
    threads: 1,
    blockBytes: 4096, // many small reads: the merge lasts well past the first progress event
    onProgress: (p) => {
      if (truncatedAt !== null) return;
      truncatedAt = p.bytesDone;
      fs.truncateSync(shard, headerEnd); // every tensor's data is gone
    },
  }).catch((e: unknown) => e);
  expect(truncatedAt).not.toBeNull();
  expect(truncatedAt!).toBeLessThan(pair.bytesPerModel);
  expect(err).toBeInstanceOf(WeightmixError);
  expect((err as WeightmixError).code).toBe('InputChanged');
  expect((err as Error).message).not.toContain('\n');
  expect((err as Error).message).toContain(shard);
  expect(leftoversBeside(out)).toEqual([]);
}, 60_000);

test('an input shard truncated before the engine starts: InputChanged from the size check, nothing published', async () => {
  const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 17 });
  const { thinking, shard, dataStart } = truncatable(pair, 'early');
  const out = path.join(work, 'early', 'out');
  const start = await dataStart;
  // Headers are read and validated first; `signal` is read when the engine starts: the truncation
  // lands between the two, where only the engine's own size check can see it. (The option check at
  // the API edge reads `signal` once before anything else: that read is let pass.)
  const options = { instruct: pair.instruct, thinking, lambda: 0.8, output: out };
  let reads = 0;
  Object.defineProperty(options, 'signal', {
    enumerable: true,
    get() {
      if (++reads > 1 && fs.statSync(shard).size > start + 8) fs.truncateSync(shard, start + 8);
      return undefined;
    },
  });
  const err = await interpolate(options).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WeightmixError);
  expect((err as WeightmixError).code).toBe('InputChanged');
  expect(leftoversBeside(out)).toEqual([]);
});

const { shimPath, withShim } = faultShimTests();

withShim('an input shard truncated mid-merge (CLI): exit 1 with one line, the process is not killed by SIGBUS', async () => {
  const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 17 });
  const { thinking, shard, dataStart } = truncatable(pair, 'cli');
  const start = await dataStart;
  const instruct = privateCopy(pair.instruct, path.join(work, 'cli', 'instruct'));
  const out = path.join(work, 'cli', 'out');
  // Every engine read of either model takes 150 ms: the truncation lands before the Thinking shard is read.
  const run = startCli(['interpolate', '--instruct', instruct, '--thinking', thinking, '--lambda', '0.8', '-o', out, '--threads', '1', '--json'], {
    env: slowReadsEnv(shimPath, path.join(work, 'cli', ''), 150_000),
  });
  await run.waitForLine(isProgressLine);
  fs.truncateSync(shard, start);
  const result = await run.done;
  expect(result.signal).toBeNull();
  expect(expectOneLineError(result, 1)).toMatch(/input file changed during the merge .*thinking\/model\.safetensors/);
  expect(leftoversBeside(out)).toEqual([]);
});
