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

describe("the slices: form reads a slice's sources and its base alone (mergekit gathers a slice's tensors from them)", () => {
  const whole2 = (layers: [number, number], models: { model: string; weight?: number }[]) => models.map((m) => source(m.model, layers, m.weight));
  /** Every tensor of two outputs, byte for byte. */
  async function expectSameTensors(a: string, b: string) {
    const [x, y] = await Promise.all([openCheckpoint(a), openCheckpoint(b)]);
    expect(x.names).toEqual(y.names);
    for (const name of x.names)
      expect([name, (await readTensorBytes(x.tensors.get(name)!)).equals(await readTensorBytes(y.tensors.get(name)!))]).toEqual([name, true]);
  }
  const run = async (name: string, doc: Record<string, unknown>) => {
    const out = path.join(dir, name);
    await merge(parseRecipe(doc), { output: out, threads: 2 });
    return out;
  };

  // nearswap, ram, ramplus_tl and arcee_fusion refused a slice's own base ("needs a base_model"); nuslerp counted it as a third model.
  test.each([
    ['nearswap', { t: 0.001 }, [{ model: 'A' }, { model: 'B' }]],
    ['ram', { epsilon: 0.001 }, [{ model: 'A' }, { model: 'B' }]],
    ['ramplus_tl', { epsilon: 0.001 }, [{ model: 'A' }, { model: 'B' }]],
    ['arcee_fusion', {}, [{ model: 'A' }, { model: 'B' }]],
    ['nuslerp', {}, [{ model: 'B', weight: 0.3 }, { model: 'N', weight: 0.7 }, { model: 'A' }]],
  ])("%s takes a slice's own base_model as the models: form takes the recipe's", async (method, parameters, listed) => {
    const at = (tag: string) => ({ A, B, N, M })[tag as 'A' | 'B' | 'N' | 'M'];
    const models = listed.map((m) => ({ model: at(m.model), weight: (m as { weight?: number }).weight }));
    const withModels = await run(`${method}-models`, {
      merge_method: method,
      base_model: A,
      parameters,
      models: models.map((m) => ({ model: m.model, ...(m.weight === undefined ? {} : { parameters: { weight: m.weight } }) })),
    });
    const withSlice = await run(`${method}-slice`, { merge_method: method, parameters, slices: [{ sources: whole2([0, 2], models), base_model: A }] });
    await expectSameTensors(withSlice, withModels);
  });

  // karcher and multislerp took an unlisted top-level base_model as one more model of each slice.
  test.each(['karcher', 'multislerp'])('%s: a top-level base_model that no slice lists changes nothing', async (method) => {
    const weight = method === 'multislerp' ? 1 : undefined;
    const sources = whole2(
      [0, 2],
      [
        { model: A, weight },
        { model: B, weight },
      ],
    );
    const unlisted = await run(`${method}-unlisted-base`, { merge_method: method, base_model: M, slices: [{ sources }] });
    const none = await run(`${method}-no-base`, { merge_method: method, slices: [{ sources }] });
    await expectSameTensors(unlisted, none);
  });
});
