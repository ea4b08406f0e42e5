/** `--part I/N`: each part writes its share of the shards plus the same index and sidecars; the union equals one run. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { interpolate } from '../lib/interpolation/interpolate';
import { sweep } from '../lib/interpolation/sweep';
import { verify } from '../lib/analysis/verify';
import { assignParts } from '../lib/engine/parts';
import { describeInterpolation } from '../lib/commands/interpolation-options';
import { dir as root, useTempDir } from './helpers/temp-dir';

let pair: { instruct: string; thinking: string };

useTempDir('wm-parts-');

beforeAll(async () => {
  pair = await makeCheckpointPair({ dir: root, shape: 'tiny', shards: [5, 2], seed: 7 });
});

test('assignParts balances by bytes and gives every shard exactly one part', () => {
  const shards = [100, 90, 80, 30, 20, 10].map((size, i) => ({ name: `s${i}`, size }));
  const parts = assignParts(shards, 3);
  expect([...parts.keys()].sort()).toEqual(shards.map((s) => s.name).sort());
  const load = [0, 0, 0];
  for (const s of shards) load[parts.get(s.name)! - 1] += s.size;
  expect(Math.max(...load) - Math.min(...load)).toBeLessThanOrEqual(Math.max(...shards.map((s) => s.size)));
  expect(assignParts(shards, 3)).toEqual(parts);
});

test.each([1, 2, 3, 7])('the union of %p parts is byte-identical to a single run', async (count) => {
  const single = path.join(root, `single-${count}`);
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: single });
  const shared = path.join(root, `parts-${count}`);
  const written: string[][] = [];
  for (let i = 1; i <= count; i++) {
    const before = new Set(fs.existsSync(shared) ? fs.readdirSync(shared) : []);
    const summary = await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: shared, part: `${i}/${count}` });
    expect(summary.part).toBe(`${i}/${count}`);
    written.push(fs.readdirSync(shared).filter((f) => f.endsWith('.safetensors') && !before.has(f)));
  }
  const shards = written.flat();
  expect(new Set(shards).size).toBe(shards.length);
  expect(fs.readdirSync(shared).sort()).toEqual(fs.readdirSync(single).sort());
  for (const f of fs.readdirSync(single)) expect([f, fs.readFileSync(path.join(shared, f)).equals(fs.readFileSync(path.join(single, f)))]).toEqual([f, true]);
  expect(fs.readdirSync(root).filter((f) => f.includes('.weightmix'))).toEqual([]);
});

test('a part that gets no shard (more parts than shards) says so and writes only the shared files', async () => {
  const notices: string[] = [];
  const output = path.join(root, 'empty-part');
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output, part: '7/7', onNotice: (m) => notices.push(m) });
  expect(notices).toEqual(['part 7/7 gets none of the 5 output shards: it writes only the shared files (index, config, tokenizer, model card)']);
  expect(fs.readdirSync(output).filter((f) => f.endsWith('.safetensors'))).toEqual([]);
  const quiet: string[] = [];
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output, part: '1/7', onNotice: (m) => quiet.push(m) });
  expect(quiet).toEqual([]);
});

test("a part's target holding a truncated shard of an earlier run names it as no valid safetensors file (it said 'a shard of another merge')", async () => {
  const output = path.join(root, 'truncated');
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output, part: '1/2' });
  const shard = fs.readdirSync(output).find((f) => f.endsWith('.safetensors'))!;
  fs.truncateSync(path.join(output, shard), fs.statSync(path.join(output, shard)).size - 8);
  await expect(interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output, part: '1/2' })).rejects.toMatchObject({
    code: 'OutputExists',
    message: expect.stringMatching(new RegExp(`${shard} is not a valid safetensors file \\(.*data is cut short\\)\\) \\(use --force`)),
  });
});

test('a sweep refuses while a --part job runs on one of its λ, not on a λ it does not write', async () => {
  const out = path.join(root, 'sweep-parts');
  fs.mkdirSync(out, { recursive: true });
  // pid 1 is always alive.
  fs.writeFileSync(path.join(out, '.lambda-0.70.part-1-of-4.weightmix.lock'), '1\n');
  await sweep({ instruct: pair.instruct, thinking: pair.thinking, lambdas: [0.2, 0.4], output: out });
  fs.writeFileSync(path.join(out, '.lambda-0.40.part-1-of-4.weightmix.lock'), '1\n');
  await expect(sweep({ instruct: pair.instruct, thinking: pair.thinking, lambdas: [0.2, 0.4], output: out, force: true })).rejects.toMatchObject({
    code: 'OutputLocked',
    message: `part 1/4 of a --part job (pid 1) is writing ${path.join(out, 'lambda-0.40')}; try again once it is done`,
  });
  expect(fs.readdirSync(out).sort()).toEqual([
    '.lambda-0.40.part-1-of-4.weightmix.lock',
    '.lambda-0.70.part-1-of-4.weightmix.lock',
    'lambda-0.20',
    'lambda-0.40',
  ]);
});

test('a malformed --part is a usage error', async () => {
  for (const part of ['0/3', '4/3', 'a/b', '2']) {
    await expect(interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: path.join(root, 'bad'), part })).rejects.toMatchObject({
      code: 'Usage',
    });
  }
});

/** Every file of a folder, name → bytes (base64), for comparing two outputs. */
function filesOf(folder: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(folder).map((f) => [f, fs.readFileSync(path.join(folder, f)).toString('base64')]));
}

const run = (output: string, lambda: number, part: string, force = false) =>
  interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda, output, part, force });

test("a part without --force refuses a folder that holds another model (it overwrote the model's files), and leaves it as it was", async () => {
  const victim = path.join(root, 'victim');
  fs.cpSync(pair.thinking, victim, { recursive: true });
  fs.writeFileSync(path.join(victim, 'notes.txt'), 'mine');
  const before = filesOf(victim);
  for (const part of ['1/2', '2/2']) {
    await expect(run(victim, 0.5, part)).rejects.toMatchObject({
      code: 'OutputExists',
      message: expect.stringMatching(/holds \S+, which this merge does not write|already exists and holds something else/),
    });
  }
  expect(filesOf(victim)).toEqual(before);
});

test('a part of a run that already published (a restarted job) publishes again without --force; a part of another job does not', async () => {
  const shared = path.join(root, 'restarted');
  await run(shared, 0.8, '1/2');
  await run(shared, 0.8, '1/2');
  await run(shared, 0.8, '2/2');
  const single = path.join(root, 'restarted-single');
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: single });
  expect(filesOf(shared)).toEqual(filesOf(single));
  await expect(run(shared, 0.3, '1/2')).rejects.toMatchObject({ code: 'OutputExists' });
});

test('parts run with another count are refused while the job is incomplete: some shards would never be written (they were, silently)', async () => {
  const shared = path.join(root, 'recounted');
  await run(shared, 0.8, '1/3');
  const before = filesOf(shared);
  await expect(run(shared, 0.8, '2/2')).rejects.toMatchObject({
    code: 'OutputExists',
    message: expect.stringContaining(`${shared} is being filled by a job of 3 parts, and this is part 2/2`),
  });
  expect(filesOf(shared)).toEqual(before);
  await run(shared, 0.8, '3/3');
  await run(shared, 0.8, '2/3');
  const single = path.join(root, 'recounted-single');
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: single });
  // Complete: the part count's file is gone, and the folder is what a whole run writes.
  expect(filesOf(shared)).toEqual(filesOf(single));
});

test('parts of another count started together: never both published (each checked the count file before the other put it in); parts of one count together all publish', async () => {
  for (let round = 0; round < 8; round++) {
    const shared = path.join(root, `raced-${round}`);
    const results = await Promise.allSettled([run(shared, 0.8, '1/2'), run(shared, 0.8, '2/3')]);
    const published = results.filter((r) => r.status === 'fulfilled').length;
    expect({ round, published }).toEqual({ round, published: 1 });
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!.reason as { code: string; message: string };
    expect([refused.code, refused.message]).toEqual(['OutputExists', expect.stringMatching(/parts of another count assign the shards otherwise/)]);
  }
  const together = path.join(root, 'together');
  await Promise.all(['1/3', '2/3', '3/3'].map((part) => run(together, 0.8, part)));
  const single = path.join(root, 'together-single');
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: single });
  expect(filesOf(together)).toEqual(filesOf(single));
});

test("a sweep in parts: each λ folder holds the count file until its last part, then equals a whole sweep's", async () => {
  const shared = path.join(root, 'sweep-in-parts');
  const whole = path.join(root, 'sweep-in-parts-whole');
  const lambdas = [0.2, 0.8];
  await sweep({ instruct: pair.instruct, thinking: pair.thinking, lambdas, output: whole });
  await sweep({ instruct: pair.instruct, thinking: pair.thinking, lambdas, output: shared, part: '1/2' });
  for (const folder of fs.readdirSync(shared)) expect(fs.readdirSync(path.join(shared, folder))).toContain('.weightmix-parts.json');
  await expect(sweep({ instruct: pair.instruct, thinking: pair.thinking, lambdas, output: shared, part: '2/3' })).rejects.toMatchObject({
    code: 'OutputExists',
  });
  await sweep({ instruct: pair.instruct, thinking: pair.thinking, lambdas, output: shared, part: '2/2' });
  expect(fs.readdirSync(shared).sort()).toEqual(fs.readdirSync(whole).sort());
  for (const folder of fs.readdirSync(whole)) expect(filesOf(path.join(shared, folder))).toEqual(filesOf(path.join(whole, folder)));
});

test("verify reports a --part job's folder as unfinished while its count file is there, and the file left in a complete folder", async () => {
  const shared = path.join(root, 'verified-parts');
  await run(shared, 0.8, '1/2');
  const unfinishedFile = fs.readFileSync(path.join(shared, '.weightmix-parts.json'));
  const unfinished = await verify({ dir: shared });
  expect(unfinished.ok).toBe(false);
  expect(unfinished.problems.map((p) => p.code)).toContain('PartsIncomplete');
  expect(unfinished.problems.find((p) => p.code === 'PartsIncomplete')!.message).toBe(
    `${shared}: a --part job of 2 parts has not finished here (.weightmix-parts.json): some of its parts have not published`,
  );
  await run(shared, 0.8, '2/2');
  expect((await verify({ dir: shared })).problems).toEqual([]);
  // The part that completed the job stopped before removing the file.
  fs.writeFileSync(path.join(shared, '.weightmix-parts.json'), unfinishedFile);
  expect((await verify({ dir: shared })).problems).toEqual([
    {
      code: 'PartsIncomplete',
      message: `${shared}: .weightmix-parts.json is left though every shard is in place: the part that completed a --part job of 2 parts stopped before removing it; remove it`,
    },
  ]);
  // The file of another recipe's job (a --force job whose parts have not replaced these shards): not finished.
  fs.writeFileSync(path.join(shared, '.weightmix-parts.json'), JSON.stringify({ parts: 2, recipe: '{"method":"interpolate","lambda":0.5}' }));
  expect((await verify({ dir: shared })).problems.map((p) => p.message)).toEqual([
    `${shared}: a --part job of 2 parts has not finished here (.weightmix-parts.json): some of its parts have not published`,
  ]);
});

test('every part again with --force replaces the old model: the union equals a --force whole run (old shards and files gone)', async () => {
  const shared = path.join(root, 'forced');
  const other = await makeCheckpointPair({ dir: path.join(root, 'other-pair'), shape: 'tiny', shards: [3, 1], seed: 8 });
  await interpolate({ instruct: other.instruct, thinking: other.thinking, lambda: 0.5, output: shared });
  fs.writeFileSync(path.join(shared, 'notes.txt'), 'old');
  for (const part of ['1/2', '2/2']) await run(shared, 0.3, part, true);
  const single = path.join(root, 'forced-single');
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.3, output: single });
  expect(filesOf(shared)).toEqual(filesOf(single));
});

test("the command's one-line summary says which part it wrote (the JSON summary and a batch's did; this one did not)", async () => {
  const summary = await run(path.join(root, 'summary'), 0.8, '2/3');
  expect(describeInterpolation(summary)).toMatch(/; part 2\/3 \(its shards, and the shared index and files\)/);
  expect(describeInterpolation({ ...summary, part: undefined })).not.toMatch(/; part /);
});

test('parts that reach the same inputs by other paths (a link, another mount) fill one folder; the model card may differ, nothing else', async () => {
  const shared = path.join(root, 'other-paths');
  const linked = path.join(root, 'linked-pair');
  fs.symlinkSync(path.dirname(pair.instruct), linked);
  await run(shared, 0.8, '1/2');
  await interpolate({ instruct: path.join(linked, 'instruct'), thinking: path.join(linked, 'thinking'), lambda: 0.8, output: shared, part: '2/2' });
  const single = path.join(root, 'other-paths-single');
  await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: single });
  const { ['README.md']: _card, ...files } = filesOf(shared);
  const { ['README.md']: _singleCard, ...singleFiles } = filesOf(single);
  // The shards' recorded recipes name the folders each part read: equal but for those paths.
  expect(Object.keys(files).sort()).toEqual(Object.keys(singleFiles).sort());
  expect(files['config.json']).toEqual(singleFiles['config.json']);
});
