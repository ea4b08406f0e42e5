/** A slice's own `base_model` (mergekit: it replaces the recipe's for that slice's tensors; the embeddings take the first slice's, the final norm the last's). */
import * as path from 'node:path';
import { openCheckpoint } from '../lib/model/checkpoint';
import { readTensorBytes } from '../lib/format/tensor-data';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { qwen3Names, rng, writeRandomBf16Model } from './helpers/models';
import { dir, useTempDir } from './helpers/temp-dir';

let A: string;
let B: string;
let N: string;
let M: string;

useTempDir('weightmix-slice-base-');

beforeAll(async () => {
  const next = rng(21);
  const specs = qwen3Names(2);
  [A, B, N, M] = await Promise.all(['a', 'b', 'n', 'm'].map(async (tag) => await writeRandomBf16Model(path.join(dir, tag), specs, next, tag)));
});

const source = (model: string, layers: [number, number], weight?: number) => ({
  model,
  layer_range: layers,
  ...(weight === undefined ? {} : { parameters: { weight } }),
});
const sliced = () => ({
  merge_method: 'task_arithmetic',
  base_model: M,
  slices: [
    { sources: [source(A, [0, 1], 0.7), source(B, [0, 1], 0.4), source(N, [0, 1])], base_model: N },
    { sources: [source(A, [1, 2], 0.7), source(B, [1, 2], 0.4), source(M, [1, 2])] },
  ],
});
const whole = (base: string) => ({
  merge_method: 'task_arithmetic',
  base_model: base,
  models: [{ model: A, parameters: { weight: 0.7 } }, { model: B, parameters: { weight: 0.4 } }, { model: base }],
});

test('parsing: the slice records its base; the recipe keeps its own', () => {
  const r = parseRecipe(sliced());
  expect(r.slices.map((s) => (s.base === null ? null : r.models[s.base]))).toEqual([N, null]);
  expect(r.models[r.base!]).toBe(M);
});

test("each slice's layers are task vectors from its own base; embeddings from the first slice's base, the final norm from the last's", async () => {
  const outputs = await Promise.all(
    [
      ['sliced', sliced()],
      ['from-n', whole(N)],
      ['from-m', whole(M)],
    ].map(async ([name, doc]) => {
      const out = path.join(dir, name as string);
      await merge(parseRecipe(doc as Record<string, unknown>), { output: out, threads: 2 });
      return openCheckpoint(out);
    }),
  );
  const [s, n, m] = outputs;
  const bytes = async (c: typeof s, name: string) => readTensorBytes(c.tensors.get(name)!);
  let compared = 0;
  for (const name of s.names) {
    const want = name.startsWith('model.layers.1.') || name === 'model.norm.weight' ? m : n;
    const other = want === m ? n : m;
    expect([name, (await bytes(s, name)).equals(await bytes(want, name))]).toEqual([name, true]);
    if (!(await bytes(s, name)).equals(await bytes(other, name))) compared++;
  }
  expect(compared).toBeGreaterThan(s.names.length / 2); // the two bases really give different tensors
});

test('a slice without a base of its own and no recipe base is refused', () => {
  const doc = { ...sliced(), base_model: undefined };
  expect(() => parseRecipe(doc)).toThrow(/task_arithmetic needs a base_model/);
  const both = { ...doc, slices: [doc.slices[0], { ...doc.slices[1], base_model: M }] };
  expect(parseRecipe(both).base).toBeNull();
});
