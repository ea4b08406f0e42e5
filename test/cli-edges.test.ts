/**
 * First-use edges of the command line a reviewer found: each is one line and its exit status, at once, with nothing left
 * behind (an output under /proc spun forever at 100 % CPU; a link to nothing was refused only after the whole merge).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { expectOneLineError, runCli } from './helpers/cli';
import { testIf } from './helpers/skip';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('wm-cli-edges-');

let pair: { instruct: string; thinking: string };
beforeAll(async () => {
  pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', seed: 1 });
}, 60_000);

const inputs = () => ['--instruct', pair.instruct, '--thinking', pair.thinking];

test("an unknown option's suggestion is on the error's one line, not a line of its own", async () => {
  const line = expectOneLineError(await runCli(['demo', '--kep']), 2);
  expect(line).toBe("weightmix: error: unknown option '--kep' (did you mean --keep?)");
});

test('help of a command that does not exist is the unknown-command error (was the whole help, exit 2, no error line)', async () => {
  const bogus = await runCli(['help', 'bogus']);
  expect(expectOneLineError(bogus, 2)).toBe("weightmix: error: unknown command 'bogus'");
  expect(bogus.stdout).toBe('');
  expect(expectOneLineError(await runCli(['help', 'merg']), 2)).toBe("weightmix: error: unknown command 'merg' (did you mean merge?)");
  expect(expectOneLineError(await runCli(['--debug', 'help', 'bogus']), 2)).toBe("weightmix: error: unknown command 'bogus'");
  const merge = await runCli(['help', 'merge']);
  expect([merge.status, merge.stdout.split('\n')[0]]).toEqual([0, 'Usage: weightmix merge [options] <recipes...>']);
});

test('--help marks required options (commander listed them like optional ones)', async () => {
  const lines = (await runCli(['interpolate', '--help'])).stdout.replace(/\n {5,}/g, ' ');
  for (const flag of ['--lambda', '--output', '--instruct', '--thinking']) expect(lines).toMatch(new RegExp(`${flag} <\\w+>[^\\n]*\\(required\\)\\n`));
  expect(lines).not.toMatch(/--layers[^\n]*\(required\)/);
});

test('an output that is a symbolic link to nothing is refused before the merge, in one line', async () => {
  const link = freshPath('dangling');
  fs.symlinkSync(path.join(dir, 'nowhere'), link);
  const line = expectOneLineError(await runCli(['interpolate', ...inputs(), '--lambda', '0.5', '-o', link]));
  expect(line).toMatch(/is a symbolic link to .*nowhere, which does not exist/);
  expect(expectOneLineError(await runCli(['sweep', ...inputs(), '--lambdas', '0.2,0.4', '-o', link]))).toMatch(/is a symbolic link to .*nowhere/);
  expect(fs.readdirSync(dir).filter((n) => n.includes('weightmix'))).toEqual([]);
});

test("an output that is a link to a folder: --force is refused (it replaced the link: the model landed on the link's disk), both say where it leads", async () => {
  const big = freshPath('big-disk');
  fs.mkdirSync(path.join(big, 'old'), { recursive: true });
  fs.writeFileSync(path.join(big, 'old', 'junk'), 'x');
  const link = freshPath('linked-out');
  fs.symlinkSync(path.join(big, 'old'), link);
  const real = fs.realpathSync(path.join(big, 'old'));
  expect(expectOneLineError(await runCli(['interpolate', ...inputs(), '--lambda', '0.5', '-o', link]))).toBe(
    `weightmix: error: output ${link} already exists: a symbolic link to the folder ${real} (--force replaces a model folder, never a link: remove the link or choose another output path)`,
  );
  expect(expectOneLineError(await runCli(['interpolate', ...inputs(), '--lambda', '0.5', '-o', link, '--force']))).toBe(
    `weightmix: error: output ${link} is a symbolic link to ${real}: --force replaces a model folder, never a link; remove the link or choose another output path`,
  );
  // A link to a folder that holds the link (`out -> .`) is refused too: nothing there is replaced.
  const self = freshPath('self');
  fs.mkdirSync(path.join(self, 'keep'), { recursive: true });
  fs.symlinkSync('.', path.join(self, 'out'));
  expect(expectOneLineError(await runCli(['interpolate', ...inputs(), '--lambda', '0.5', '-o', path.join(self, 'out'), '--force']))).toMatch(/never a link/);
  expect([fs.lstatSync(link).isSymbolicLink(), fs.readdirSync(path.join(big, 'old')), fs.readdirSync(self).sort()]).toEqual([true, ['junk'], ['keep', 'out']]);
});

test('demo with an unusable TMPDIR: one line naming the folder and the remedy, exit 1 (was an internal error)', async () => {
  const line = expectOneLineError(await runCli(['demo'], { env: { TMPDIR: path.join(dir, 'no-such-folder') } }));
  expect(line).toMatch(/cannot make the demo's folder in .*no-such-folder \(set TMPDIR to a writable folder\): ENOENT/);
});

const haveProc = fs.existsSync('/proc/self/status');
testIf(haveProc, 'no procfs at /proc')(
  'outputs under /proc: one line at once (sweep and interpolate spun forever in mkdir), fixture not blaming space',
  async () => {
    const timeoutMs = 20_000;
    for (const args of [
      ['sweep', ...inputs(), '--lambdas', '0.2,0.4', '-o', '/proc/weightmix-test'],
      ['interpolate', ...inputs(), '--lambda', '0.5', '-o', '/proc/weightmix-test/a'],
    ]) {
      expectOneLineError(await runCli(args, { timeoutMs }));
    }
    const line = expectOneLineError(await runCli(['fixture', '--shape', 'tiny', '--out', '/proc/weightmix-test'], { timeoutMs }));
    expect(line).not.toMatch(/GB free/);
  },
);

test("help and messages a first run reads: score --help shows no '(default: [])', fixture --seed names its range", async () => {
  const help = await runCli(['score', '--help']);
  expect(help.status).toBe(0);
  expect(help.stdout).toContain('--field <name=key>');
  expect(help.stdout).not.toContain('(default: [])');
  const line = expectOneLineError(await runCli(['fixture', '--shape', 'tiny', '--out', freshPath('fx'), '--seed=-1']), 2);
  expect(line).toBe('weightmix: error: --seed "-1": expected a whole number from 0 to 4294967295');
});

test('an error whose message holds a line break (a model path with a newline in it) is still one line, the break escaped', async () => {
  const recipe = freshPath('newline.yml');
  fs.writeFileSync(recipe, 'merge_method: linear\nmodels:\n  - model: "no/such\\nmodel"\n    parameters: {weight: 1}\n');
  const line = expectOneLineError(await runCli(['merge', recipe, '-o', freshPath('out')]));
  expect(line).toContain('no/such\\nmodel');
  // commander's own errors too (an unknown command typed with a line break, or a paragraph separator).
  const unknown = expectOneLineError(await runCli(['frob\nx\u2028y']), 2);
  expect(unknown).toContain("'frob\\nx\\u2028y'");
});
