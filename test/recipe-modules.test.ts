/**
 * mergekit's `modules: {default: …}`: the one module of a text-only decoder, the recipe written without
 * `modules` (the same bytes), with the module's parameters a level between the slice's and the recipe's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { openCheckpoint } from '../lib/model/checkpoint';
import { readTensorBytes } from '../lib/format/tensor-data';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { scratchDir } from './helpers/cli';

let dir: string;
let A: string;
let B: string;
let counter = 0;

beforeAll(async () => {
  dir = scratchDir('modules');
  const pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', seed: 9 });
  [A, B] = [pair.instruct, pair.thinking];
}, 60000);
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

async function tensors(doc: Record<string, unknown>): Promise<Map<string, Buffer>> {
  const out = path.join(dir, `modules-${counter++}`);
  await merge(parseRecipe(doc), { output: out, threads: 2 });
  const ckpt = await openCheckpoint(out);
  const bytes = new Map(await Promise.all(ckpt.names.map(async (n): Promise<[string, Buffer]> => [n, await readTensorBytes(ckpt.tensors.get(n)!)])));
  await fs.promises.rm(out, { recursive: true, force: true });
  return bytes;
}

test("modules: {default: {models}} merges what the models form merges; the module's parameters come before the recipe's and after a model's", async () => {
  const want = await tensors({
    merge_method: 'linear',
    parameters: { normalize: false },
    models: [
      { model: A, parameters: { weight: 1 } },
      { model: B, parameters: { weight: 0.5 } },
    ],
  });
  const got = await tensors({
    merge_method: 'linear',
    parameters: { normalize: false, weight: 0.25 },
    modules: { default: { parameters: { weight: 1 }, models: [{ model: A }, { model: B, parameters: { weight: 0.5 } }] } },
  });
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, bytes] of want) expect([name, got.get(name)!.equals(bytes)]).toEqual([name, true]);
  // The recipe's weight alone (0.25 each) is another merge: the module level is read.
  const global = await tensors({ merge_method: 'linear', parameters: { normalize: false, weight: 0.25 }, models: [{ model: A }, { model: B }] });
  expect([...global].some(([name, bytes]) => !bytes.equals(got.get(name)!))).toBe(true);
});

test('modules: {default: {slices}} merges what the slices form merges; a slice parameter beats the module one', async () => {
  const slices = (weightA: number | undefined) => [
    {
      sources: [
        { model: A, layer_range: [0, 2], ...(weightA === undefined ? {} : { parameters: { weight: weightA } }) },
        { model: B, layer_range: [0, 2] },
      ],
      parameters: { weight: 0.5 },
    },
  ];
  const want = await tensors({ merge_method: 'linear', slices: slices(0.75) });
  const got = await tensors({ merge_method: 'linear', modules: { default: { slices: slices(0.75), parameters: { weight: 3 } } } });
  for (const [name, bytes] of want) expect([name, got.get(name)!.equals(bytes)]).toEqual([name, true]);
});
