/**
 * `merge RECIPE --part I/N`: one mergekit recipe's output shards split across the parts of a job array, as interpolate's are.
 * Each part writes its share of the shards and the same index, config, tokenizer and model card; the union equals one run,
 * byte for byte, for a method with tensor-local statistics (ties) and one with moments (slerp). A part of another count, or of
 * another recipe's job, is refused before it merges.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { merge } from '../lib/recipes/merge-recipe';
import { verify } from '../lib/analysis/verify';
import { localStatistics } from '../lib/recipes/sparsify';
import { expectOneLineError, runCli, snapshotTree } from './helpers/cli';
import { dir as root, useTempDir } from './helpers/temp-dir';

let pair: { instruct: string; thinking: string };

useTempDir('wm-recipe-parts-');

beforeAll(async () => {
  pair = await makeCheckpointPair({ dir: root, shape: 'tiny', shards: [5, 2], seed: 9 });
});

const RECIPES: Record<string, () => Record<string, unknown>> = {
  ties: () => ({
    merge_method: 'ties',
    base_model: pair.instruct,
    models: [{ model: pair.thinking, parameters: { weight: 0.8, density: 0.5 } }],
  }),
  slerp: () => ({ merge_method: 'slerp', base_model: pair.instruct, models: [{ model: pair.instruct }, { model: pair.thinking }], parameters: { t: 0.6 } }),
};

describe.each(Object.keys(RECIPES))('%s', (method) => {
  test.each([2, 3])('the union of %p parts, run last part first, is byte-identical to one run', async (count) => {
    const single = path.join(root, `${method}-single-${count}`);
    await merge(RECIPES[method](), { output: single });
    const shared = path.join(root, `${method}-parts-${count}`);
    const written: string[][] = [];
    for (let i = count; i >= 1; i--) {
      const before = new Set(fs.existsSync(shared) ? fs.readdirSync(shared) : []);
      const summary = await merge(RECIPES[method](), { output: shared, part: `${i}/${count}` });
      expect(summary.part).toBe(`${i}/${count}`);
      written.push(fs.readdirSync(shared).filter((f) => f.endsWith('.safetensors') && !before.has(f)));
      expect(summary.files).toBe(written[written.length - 1].length);
    }
    const shards = written.flat();
    expect(new Set(shards).size).toBe(shards.length);
    expect(written.every((w) => w.length > 0)).toBe(true);
    expect(snapshotTree(shared)).toEqual(snapshotTree(single));
    expect((await verify({ dir: shared })).problems).toEqual([]);
    expect(fs.readdirSync(root).filter((f) => f.includes('.weightmix'))).toEqual([]);
  });
});

// slerp's streamed statistics are its moments pass (angles of tensors too large to hold), ties' its selection's radix passes.
test.each(Object.keys(RECIPES))(
  "%s with its statistics streamed (no tensor-local job): each part computes its own shards' statistics, and the union equals one streamed run",
  async (method) => {
    const budget = localStatistics.maxTensorBytes;
    localStatistics.maxTensorBytes = 0;
    // The most tensors a run's statistics passes took (the first pass takes every tensor it has statistics of).
    const statisticsTensors = async (output: string, part?: string) => {
      let most = 0;
      await merge(RECIPES[method](), { output, part, onProgress: (p) => (most = p.stage === 'statistics' ? Math.max(most, p.tensorsTotal) : most) });
      return most;
    };
    try {
      const single = path.join(root, `${method}-streamed-single`);
      const whole = await statisticsTensors(single);
      const shared = path.join(root, `${method}-streamed-parts`);
      const parts = [await statisticsTensors(shared, '2/2'), await statisticsTensors(shared, '1/2')];
      expect(whole).toBeGreaterThan(0); // the statistics passes ran, as no tensor was local
      expect(parts.every((n) => n > 0 && n < whole)).toBe(true);
      expect(parts[0] + parts[1]).toBe(whole);
      expect(snapshotTree(shared)).toEqual(snapshotTree(single));
    } finally {
      localStatistics.maxTensorBytes = budget;
    }
  },
);

test("a recipe that one tensor makes invalid is refused by every part, whichever part's shards hold that tensor", async () => {
  // Weights summing to 0 on the final norm only (a filter): the whole run refuses it; a part that does not write that tensor
  // refused nothing and published a job that could never complete.
  const recipe = {
    merge_method: 'linear',
    models: [
      { model: pair.instruct, parameters: { weight: [{ filter: 'model.norm', value: -1 }, { value: 1 }] } },
      { model: pair.thinking, parameters: { weight: 1 } },
    ],
  };
  const shared = path.join(root, 'refused-parts');
  for (const part of [undefined, '1/2', '2/2']) {
    await expect(merge(recipe, { output: shared, part })).rejects.toThrow(/linear: the weights of tensor model\.norm\.weight sum to 0/);
  }
  expect(fs.existsSync(shared)).toBe(false);
});

test("a part of another count, or of another recipe's job, is refused before it merges, and the folder is left as it was", async () => {
  const output = path.join(root, 'refused');
  await merge(RECIPES.ties(), { output, part: '1/2' });
  const before = snapshotTree(output);
  await expect(merge(RECIPES.ties(), { output, part: '2/3' })).rejects.toMatchObject({
    code: 'OutputExists',
    message: expect.stringMatching(/is being filled by a job of 2 parts, and this is part 2\/3/),
  });
  await expect(merge(RECIPES.slerp(), { output, part: '2/2' })).rejects.toMatchObject({
    code: 'OutputExists',
    message: expect.stringMatching(
      /is being filled by another job of 2 parts \(its \.weightmix-parts\.json records another recipe\), and this is part 2\/2 of a new one/,
    ),
  });
  // A file where the shared folder goes: refused at once, as a whole run's output would be.
  const file = path.join(root, 'a-file');
  fs.writeFileSync(file, 'precious');
  await expect(merge(RECIPES.ties(), { output: file, part: '1/2' })).rejects.toMatchObject({
    code: 'OutputExists',
    message: expect.stringMatching(/is a file, not a model folder/),
  });
  expect(fs.readFileSync(file, 'utf8')).toBe('precious');
  expect(snapshotTree(output)).toEqual(before);
});

test('the command line: --part with one recipe prints its part, and a bad part is a usage error', async () => {
  const recipe = path.join(root, 'ties.json');
  fs.writeFileSync(recipe, JSON.stringify(RECIPES.ties()));
  const output = path.join(root, 'cli');
  for (const part of ['1/2', '2/2']) {
    const r = await runCli(['merge', recipe, '-o', output, '--part', part]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout).toMatch(new RegExp(`^wrote ${output}: ties, .*; part ${part}`));
  }
  const single = path.join(root, 'cli-single');
  await merge(RECIPES.ties(), { output: single });
  expect(snapshotTree(output)).toEqual(snapshotTree(single));
  expect(expectOneLineError(await runCli(['merge', recipe, '-o', path.join(root, 'bad'), '--part', '3/2']), 2)).toMatch(/^weightmix: error: --part /);
});
