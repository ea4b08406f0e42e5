/**
 * A name that would be a hub id but for its organization (`gpt2`): looked for as a local folder only (docs/mergekit-parity.md),
 * and every not-found message for it says why. The hub endpoint is unreachable here: nothing may be fetched.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectOneLineError, runCli, scratchDir } from './helpers/cli';
import { isolatedHubEnv } from './helpers/hub-server';
import { bareNameHint } from '../lib/hub/reference';
import { loadTokenCounter } from '../lib/analysis/tokenizer';
import { parseRecipe } from '../lib/recipes/recipe';

let work: string;
beforeAll(() => {
  work = scratchDir('bare-names');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const why = ' \\(a hub id needs its organization, ORG\\/NAME\\[@REVISION\\]; a name without one is looked for as a local folder only\\)$';
const env = () => isolatedHubEnv('http://127.0.0.1:9', path.join(work, 'home'));

test('bareNameHint: names that would be hub ids with an organization, and nothing else', () => {
  for (const bare of ['gpt2', 'bert-base-uncased@main', 'Qwen3-4B'])
    expect([bare, bareNameHint(bare)]).toEqual([bare, expect.stringMatching(/needs its organization/)]);
  for (const other of ['Qwen/Qwen3-4B', './gpt2', '/abs/gpt2', 'a b', 'name@', '']) expect([other, bareNameHint(other)]).toEqual([other, '']);
});

test('the CLI, the tokenizer and a recipe say why a bare name was not looked up on the hub; a path, a file and a folder are as before', async () => {
  const cwd = fs.mkdtempSync(path.join(work, 'cwd-'));
  const out = path.join(cwd, 'out');
  const cli = await runCli(['interpolate', '--instruct', 'gpt2', '--thinking', 'distilgpt2', '--lambda', '0.5', '-o', out], { cwd, env: env() });
  expect(expectOneLineError(cli)).toMatch(new RegExp(`^weightmix: error: model folder not found: gpt2${why}`));
  expect(fs.existsSync(out)).toBe(false);
  await expect(loadTokenCounter('gpt2', { env: env() })).rejects.toThrow(new RegExp(`^tokenizer: model folder not found: gpt2${why}`));
  expect(() => parseRecipe({ merge_method: 'linear', models: [{ model: 'gpt2' }] }, { baseDir: cwd })).toThrow(
    new RegExp(`^models\\[0\\]\\.model: model folder not found: gpt2${why}`),
  );
  // A path gets no hint; a file of that name is refused as a file, and a folder of that name is opened as every folder is.
  await expect(loadTokenCounter(path.join(cwd, 'gpt2'))).rejects.toThrow(/^tokenizer: model folder not found: \S+gpt2$/);
  fs.writeFileSync(path.join(cwd, 'gpt2'), 'not a model');
  expect(expectOneLineError(await runCli(['diff', 'gpt2', 'gpt2'], { cwd, env: env() }))).toBe('weightmix: error: not a model folder: gpt2');
  fs.rmSync(path.join(cwd, 'gpt2'));
  fs.mkdirSync(path.join(cwd, 'gpt2'));
  expect(expectOneLineError(await runCli(['diff', 'gpt2', 'gpt2'], { cwd, env: env() }))).toMatch(/^weightmix: error: \S+\/gpt2: no \.safetensors files/);
});
