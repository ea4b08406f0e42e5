/**
 * What --force may replace (lib/force-target.ts): a model folder (its shards, an index, a --part job's count file, whatever else it
 * holds) or an empty one; never a folder of other files (a typo'd -o), nor the folder the user runs from or one that holds it. Each
 * refusal comes before anything is written, and leaves the folder as it was; a non-model folder that appears while a --force run
 * merges is not replaced either.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { interpolate } from '../lib/interpolation/interpolate';
import { merge } from '../lib/recipes/merge-recipe';
import { expectOneLineError, runCli, snapshotTree } from './helpers/cli';
import { dir as root, useTempDir } from './helpers/temp-dir';

let pair: { instruct: string; thinking: string };
const models = () => ({ instruct: pair.instruct, thinking: pair.thinking });

useTempDir('wm-force-target-');

beforeAll(async () => {
  pair = await makeCheckpointPair({ dir: path.join(root, 'pair'), shape: 'tiny', shards: [2, 2], seed: 4 });
});

/** A folder of the user's files: no model in it. */
function userFolder(name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'important');
  fs.writeFileSync(path.join(dir, 'config.json'), '{}');
  return dir;
}

/** The command line of an interpolation into `out` with --force, and `extra` flags. */
const args = (out: string, ...extra: string[]) => [
  'interpolate',
  ...Object.entries(models()).flatMap(([k, v]) => [`--${k}`, v]),
  '--lambda',
  '0.5',
  '-o',
  out,
  '--force',
  ...extra,
];
const leftovers = () => fs.readdirSync(root).filter((f) => f.includes('.weightmix'));
const refusal = (dir: string) =>
  `output ${dir} holds 3 entries but no model (no weights file): --force replaces a model folder, never other files; choose another output path`;

test('interpolate --force refuses a folder of other files, whole or as a part, and leaves it as it was', async () => {
  const out = userFolder('notes');
  const before = snapshotTree(out);
  for (const part of [undefined, '1/2']) {
    await expect(interpolate({ ...models(), lambda: 0.5, output: out, force: true, part })).rejects.toMatchObject({
      code: 'OutputExists',
      message: refusal(out),
    });
  }
  expect(snapshotTree(out)).toEqual(before);
  expect(leftovers()).toEqual([]);
});

test('merge --force refuses it too, before its statistics passes', async () => {
  const out = userFolder('notes-merge');
  const before = snapshotTree(out);
  const recipe = { merge_method: 'ties', base_model: pair.instruct, models: [{ model: pair.thinking, parameters: { weight: 0.8, density: 0.5 } }] };
  const stages: string[] = [];
  await expect(merge(recipe, { output: out, force: true, onProgress: (p) => stages.push(p.stage) })).rejects.toMatchObject({
    code: 'OutputExists',
    message: refusal(out),
  });
  expect(stages).toEqual([]);
  expect(snapshotTree(out)).toEqual(before);
});

test('a model folder is replaced, with whatever else it holds; so is an empty folder', async () => {
  const model = userFolder('old-model');
  fs.writeFileSync(path.join(model, 'model.safetensors'), 'an old model');
  const empty = path.join(root, 'empty');
  fs.mkdirSync(empty);
  for (const out of [model, empty]) {
    await interpolate({ ...models(), lambda: 0.5, output: out, force: true });
    expect(fs.readdirSync(out)).toContain('model.safetensors.index.json');
    expect(fs.existsSync(path.join(out, 'notes.txt'))).toBe(false);
  }
});

test('the command line: --force never replaces the current folder or one that holds it, even a model folder', async () => {
  const model = path.join(root, 'here');
  await interpolate({ ...models(), lambda: 0.5, output: model });
  fs.mkdirSync(path.join(model, 'inner'));
  const before = snapshotTree(model);
  const here = await runCli(args('.'), { cwd: model });
  expect(expectOneLineError(here)).toBe(`weightmix: error: output . is the current folder: --force never replaces it; choose another output path`);
  const above = await runCli(args('..'), { cwd: path.join(model, 'inner') });
  expect(expectOneLineError(above)).toBe(
    `weightmix: error: output .. is a folder that holds the current one: --force never replaces it; choose another output path`,
  );
  expect(snapshotTree(model)).toEqual(before);
  expect(leftovers()).toEqual([]);
});

test('a folder of other files that appears while a --force run merges is not replaced', async () => {
  const out = path.join(root, 'appears');
  let made = false;
  const run = interpolate({
    ...models(),
    lambda: 0.5,
    output: out,
    force: true,
    onProgress: () => {
      if (made) return;
      made = true;
      userFolder('appears');
    },
  });
  await expect(run).rejects.toMatchObject({ code: 'OutputExists', message: refusal(out) });
  expect(made).toBe(true);
  expect(fs.readFileSync(path.join(out, 'notes.txt'), 'utf8')).toBe('important');
  expect(leftovers()).toEqual([]);
});

test('fixture --force replaces a model pair, never a folder of other files named instruct/ or thinking/', async () => {
  const dir = path.join(root, 'fixture');
  const mine = userFolder(path.join('fixture', 'instruct'));
  const before = snapshotTree(dir);
  const result = await runCli(['fixture', '--shape', 'tiny', '-o', dir, '--force', '-q']);
  expect(expectOneLineError(result)).toBe(
    `weightmix: error: ${mine} holds 3 entries but no model (no weights file): --force replaces a model folder, never other files; choose another output path`,
  );
  expect(snapshotTree(dir)).toEqual(before);
});

test('without --force, a folder --force would not replace is refused for that reason: no hint to use --force', async () => {
  const out = userFolder('no-hint');
  await expect(interpolate({ ...models(), lambda: 0.5, output: out })).rejects.toMatchObject({ code: 'OutputExists', message: refusal(out) });
});

test("what counts as a model folder: other weights formats beside a config.json (a mergekit .bin output) are; a desktop's litter alone is an empty folder", async () => {
  const bin = path.join(root, 'bin-model');
  fs.mkdirSync(bin);
  for (const f of ['pytorch_model.bin', 'config.json']) fs.writeFileSync(path.join(bin, f), 'x');
  const litter = path.join(root, 'litter');
  fs.mkdirSync(litter);
  for (const f of ['.DS_Store', '.gitkeep']) fs.writeFileSync(path.join(litter, f), '');
  for (const out of [bin, litter]) {
    await interpolate({ ...models(), lambda: 0.5, output: out, force: true });
    expect(fs.readdirSync(out)).toContain('model.safetensors.index.json');
  }
  // Another format's weights alone (a training folder's checkpoint.pt beside its code) do not make a model folder.
  const training = path.join(root, 'training');
  fs.mkdirSync(training);
  for (const f of ['checkpoint.pt', 'train.py']) fs.writeFileSync(path.join(training, f), 'x');
  await expect(interpolate({ ...models(), lambda: 0.5, output: training, force: true })).rejects.toMatchObject({ code: 'OutputExists' });
  expect(fs.readdirSync(training).sort()).toEqual(['checkpoint.pt', 'train.py']);
  // A checkout's .git is the user's work, not litter.
  const repo = userFolder('repo');
  for (const f of fs.readdirSync(repo)) fs.rmSync(path.join(repo, f), { recursive: true });
  fs.mkdirSync(path.join(repo, '.git'));
  await expect(interpolate({ ...models(), lambda: 0.5, output: repo, force: true })).rejects.toMatchObject({ code: 'OutputExists' });
  expect(fs.readdirSync(repo)).toEqual(['.git']);
});

test("the command line: a current folder named '..x' inside the target is still inside it; a --part run fills its current folder, not with --force; a deleted current folder holds nothing", async () => {
  const model = path.join(root, 'dots');
  await interpolate({ ...models(), lambda: 0.5, output: model });
  const dots = path.join(model, '..x');
  fs.mkdirSync(dots);
  const inside = await runCli(args(model), { cwd: dots });
  expect(expectOneLineError(inside)).toBe(
    `weightmix: error: output ${model} is a folder that holds the current one: --force never replaces it; choose another output path`,
  );
  expect(fs.existsSync(dots)).toBe(true);
  // A part fills the folder it runs in; with --force it would also remove what its job does not write there: refused.
  fs.rmdirSync(dots);
  const forcedPart = await runCli(args('.', '--part', '1/1'), { cwd: model });
  expect(expectOneLineError(forcedPart)).toBe(`weightmix: error: output . is the current folder: --force never replaces it; choose another output path`);
  const fresh = path.join(root, 'fresh-part');
  fs.mkdirSync(fresh);
  const part = await runCli(
    args('.', '--part', '1/1', '-q').filter((a) => a !== '--force'),
    { cwd: fresh },
  );
  expect([part.status, part.stderr, fs.readdirSync(fresh)]).toEqual([0, '', expect.arrayContaining(['model.safetensors.index.json'])]);
  // The current folder deleted under the command: --force judges the target alone.
  const gone = path.join(root, 'gone');
  fs.mkdirSync(gone);
  const script = `process.chdir(${JSON.stringify(gone)}); require('fs').rmdirSync(${JSON.stringify(gone)}); require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'lib', 'force-target.js'))}).refuseForcedNonModel('out', ${JSON.stringify(model)}); console.log('ok')`;
  const done = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  expect([done.status, done.stdout.trim(), done.stderr]).toEqual([0, 'ok', '']);
});
