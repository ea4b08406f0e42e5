/**
 * Recipes mergekit runs that weightmix refused (a side-by-side review of mergekit a6e4028's configuration reading):
 * YAML read as PyYAML reads it (1.1 booleans `yes`/`on`, a repeated key's last value), keys and parameters mergekit ignores
 * (ignored here too, each named in a notice; one that looks like a misspelling is still refused: recipe-refusals.test.ts),
 * decimal numbers written as text, and a density above 1 (no thinning).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { cachedPair, expectOneLineError, runCli } from './helpers/cli';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-recipe-leniency-');

let pair: { instruct: string; thinking: string };
beforeAll(async () => {
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 26 });
});

const linearYaml = (extra: string) =>
  `merge_method: linear\n${extra}models:\n  - model: ${pair.instruct}\n    parameters: {weight: 0.5}\n  - model: ${pair.thinking}\n    parameters: {weight: 0.5}\n`;

/** A digest of every shard's tensor data (past its header, which records the recipe as written). */
const shardsOf = (dir: string) => {
  const hash = createHash('sha256');
  for (const f of fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.safetensors'))
    .sort()) {
    const bytes = fs.readFileSync(path.join(dir, f));
    hash.update(bytes.subarray(8 + Number(bytes.readBigUInt64LE(0))));
  }
  return hash.digest('hex');
};

test("YAML as PyYAML reads it: yes/on/off are booleans, y and n stay text, a repeated key's last value counts", () => {
  const r = parseRecipe(linearYaml('parameters: {normalize: yes, int8_mask: on}\n'));
  expect(r.parameters).toEqual({ normalize: true, int8_mask: true });
  expect(parseRecipe(linearYaml('parameters: {normalize: Off}\n')).parameters).toEqual({ normalize: false });
  expect(() => parseRecipe(linearYaml('parameters: {normalize: y}\n'))).toThrow(/^parameters\.normalize: 'normalize' takes true or false, got "y"$/);
  expect(parseRecipe(`merge_method: ties\n${linearYaml('')}`).method).toBe('linear');
});

test('keys and parameters mergekit ignores are ignored, each named in a note, and merge gives the notes as notices', async () => {
  const r = parseRecipe(
    linearYaml('name: my-merge\ndefaults: &w {weight: 0.5}\nparameters: {int8_mask: true}\n').replace(
      `  - model: ${pair.instruct}\n`,
      `  - model: ${pair.instruct}\n    layer_range: [0, 2]\n`,
    ),
  );
  expect(r.ignored).toEqual([
    "recipe: key 'name' ignored: weightmix reads no such key here (mergekit ignores it too)",
    "recipe: key 'defaults' ignored: weightmix reads no such key here (mergekit ignores it too)",
    "models[0]: key 'layer_range' ignored: weightmix reads no such key here (mergekit ignores it too)",
    "parameters: 'int8_mask' ignored: merge_method linear takes no parameter 'int8_mask' (it takes 'weight', 'normalize'), and mergekit ignores it too",
  ]);
  const notices: string[] = [];
  const out = path.join(root, 'ignored');
  await merge(r, { output: out, threads: 1, onNotice: (m) => notices.push(m) });
  expect(notices.filter((m) => m.includes(' ignored: '))).toEqual(r.ignored);
  // The same merge without those keys: the same bytes.
  const plain = path.join(root, 'plain');
  await merge(parseRecipe(linearYaml('')), { output: plain, threads: 1 });
  expect(shardsOf(out)).toBe(shardsOf(plain));
  // The command line prints each as a notice and merges.
  const file = path.join(root, 'named.yml');
  fs.writeFileSync(file, linearYaml('name: my-merge\n'));
  const cli = await runCli(['merge', file, '-o', path.join(root, 'cli')]);
  expect(cli.status).toBe(0);
  expect(cli.stderr).toContain("weightmix: recipe: key 'name' ignored: weightmix reads no such key here (mergekit ignores it too)");
}, 60_000);

test('a key is taken for a misspelling only within two edits of a known one, or as its start; keys that merely begin with one are ignored', () => {
  const slerp = (parameters: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    parseRecipe({ merge_method: 'slerp', base_model: pair.instruct, parameters, models: [{ model: pair.instruct }, { model: pair.thinking, ...extra }] });
  expect(slerp({ t: 0.5, temperature: 2 }).ignored).toEqual([
    "parameters: 'temperature' ignored: merge_method slerp takes no parameter 'temperature' (it takes 't'), and mergekit ignores it too",
  ]);
  expect(slerp({ t: 0.5 }, { model_name: 'x' }).ignored).toEqual([
    "models[1]: key 'model_name' ignored: weightmix reads no such key here (mergekit ignores it too)",
  ]);
  expect(() => slerp({ t: 0.5 }, { modle: 'x' })).toThrow(/models\[1\]: unsupported key 'modle' \(did you mean 'model'\?\)/);
});

test('a decimal number written as text is that number; other text is still refused', () => {
  const r = parseRecipe(linearYaml('').replace('{weight: 0.5}', '{weight: "0.5"}'));
  expect(r.slices[0].sources[0].parameters.weight).toBe(0.5);
  expect(parseRecipe(linearYaml('parameters: {weight: ["1e-1", 0.9]}\n')).parameters.weight).toEqual([0.1, 0.9]);
  expect(() => parseRecipe(linearYaml('').replace('{weight: 0.5}', '{weight: "half"}'))).toThrow(/'weight' takes a number, got "half"/);
});

test('a density above 1 thins nothing, as density 1 (mergekit returns the task vector whole for density >= 1)', async () => {
  const ties = (density: number) => ({
    merge_method: 'ties',
    base_model: pair.instruct,
    models: [{ model: pair.thinking, parameters: { weight: 1, density } }],
  });
  const [over, one] = [path.join(root, 'over'), path.join(root, 'one')];
  await merge(ties(1.2), { output: over, threads: 1 });
  await merge(ties(1), { output: one, threads: 1 });
  expect(shardsOf(over)).toBe(shardsOf(one));
  const bad = path.join(root, 'negative.yml');
  fs.writeFileSync(bad, JSON.stringify(ties(-0.1)));
  expect(expectOneLineError(await runCli(['merge', bad, '-o', path.join(root, 'neg')]))).toMatch(/parameter 'density' must lie in \[0, ∞\), got -0\.1/);
}, 60_000);

test('merge_method of another kind than text is named as such, not as missing', () => {
  expect(() => parseRecipe(linearYaml('').replace('merge_method: linear', 'merge_method: 5'))).toThrow(
    /^recipe: 'merge_method' names a method \(e\.g\. linear, slerp, task_arithmetic\), got 5$/,
  );
});

test("mergekit's mapping form of a model reference and a local folder's @revision name the folder, as mergekit reads them", () => {
  const forms = [{ model: { path: pair.instruct } }, { model: { path: pair.instruct, revision: 'main' } }, { model: pair.instruct }, `${pair.instruct}@main`];
  for (const reference of forms) {
    const r = parseRecipe({
      merge_method: 'linear',
      models: [
        { model: reference, parameters: { weight: 0.5 } },
        { model: pair.thinking, parameters: { weight: 0.5 } },
      ],
    });
    expect(r.models).toEqual([pair.instruct, pair.thinking]);
  }
  const refused = (reference: unknown) => () => parseRecipe({ merge_method: 'linear', models: [{ model: reference, parameters: { weight: 1 } }] });
  expect(refused({ model: { path: pair.instruct }, override_architecture: 'LlamaForCausalLM' })).toThrow(
    /models\[0\]\.model\.override_architecture: not supported/,
  );
  expect(refused({ model: { revision: 'main' } })).toThrow(/models\[0\]\.model\.model: expected a model path, or \{path, revision\}/);
  expect(refused({ model: pair.instruct, adapter: 'x' })).toThrow(/unsupported key 'adapter' in a model reference/);
});
