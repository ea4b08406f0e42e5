/**
 * karcher, multislerp and nuslerp (mergekit's spherical methods) end to end, against f64 oracles that follow
 * mergekit's code on whole tensors (test/reference/merge-methods.ts): weightmix finds the same
 * combination from the moments pass's Gram matrix, so every element is within one ulp of the output dtype.
 */
import { openCheckpoint } from '../lib/model/checkpoint';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { karcherWeights } from '../lib/recipes/methods/karcher';
import { nuslerpCoefficients, nuslerpT } from '../lib/recipes/methods/nuslerp';
import { karcherRef, multislerpRef, nuslerpRef } from './reference/merge-methods';
import { modelValues, worstUlp } from './helpers/model-values';
import { makeNearFarModels } from './helpers/tiny-models';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

let A: string;
let B: string;
let N: string;
let F: string;

useTempDir('weightmix-sphere-');

beforeAll(async () => {
  ({ A, B, N, F } = await makeNearFarModels(dir, 9, { pair: [2, 1] }, 0.4));
}, 60000);

async function worstUlpOf(doc: Record<string, unknown>, oracle: (name: string) => number[]): Promise<number> {
  const outDir = freshPath('out');
  await merge(parseRecipe(doc), { output: outDir, threads: 2 });
  return worstUlp(await openCheckpoint(outDir), oracle);
}

test('karcherWeights on a Gram matrix equal the f64 oracle on the vectors themselves (two, three and a zero vector)', () => {
  const vs = [
    [1, 0.2, -0.5, 0.3],
    [0.8, 0.5, -0.1, 0.9],
    [-0.3, 0.7, 0.4, 0.1],
    [0, 0, 0, 0],
  ];
  for (const set of [vs.slice(0, 2), vs.slice(0, 3), vs]) {
    const g = set.map((a) => set.map((b) => a.reduce((s, x, i) => s + x * b[i], 0)));
    const w = karcherWeights(g, 10, 1e-5);
    const got = set[0].map((_, k) => set.reduce((s, v, i) => s + w[i] * v[k], 0));
    const ref = karcherRef(set);
    got.forEach((x, k) => expect(x).toBeCloseTo(ref[k], 12));
  }
});

test("karcher of three models (max_iter 20) is within 1 bf16 ulp of mergekit's iteration on whole tensors", async () => {
  const [a, b, f] = await Promise.all([modelValues(A), modelValues(B), modelValues(F)]);
  const doc = { merge_method: 'karcher', parameters: { max_iter: 20 }, models: [{ model: A }, { model: B }, { model: F }] };
  expect(await worstUlpOf(doc, (k) => karcherRef([a.get(k)!, b.get(k)!, f.get(k)!], 20))).toBeLessThanOrEqual(1);
});

test("karcher refuses max_iter past 10,000: one tensor's iterations run between two abort checks", async () => {
  const doc = { merge_method: 'karcher', parameters: { max_iter: 1e12, tol: -1 }, models: [{ model: A }, { model: B }] };
  await expect(merge(parseRecipe(doc), { output: freshPath('karcher') })).rejects.toThrow(
    "karcher: parameter 'max_iter' must be an integer from 0 to 10000, got 1000000000000",
  );
});

test('multislerp of three models, unequal weights, no base: within 1 bf16 ulp of the oracle', async () => {
  const [a, b, f] = await Promise.all([modelValues(A), modelValues(B), modelValues(F)]);
  const doc = {
    merge_method: 'multislerp',
    models: [
      { model: A, parameters: { weight: 0.5 } },
      { model: B, parameters: { weight: 0.3 } },
      { model: F, parameters: { weight: 0.2 } },
    ],
  };
  expect(await worstUlpOf(doc, (k) => multislerpRef([a.get(k)!, b.get(k)!, f.get(k)!], [0.5, 0.3, 0.2], null))).toBeLessThanOrEqual(1);
});

test('multislerp of task vectors around a base (normalize_weights false), within 1 f32 ulp with out_dtype float32', async () => {
  const [a, b, f, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(F), modelValues(N)]);
  const doc = {
    merge_method: 'multislerp',
    base_model: N,
    out_dtype: 'float32',
    parameters: { normalize_weights: false },
    models: [
      { model: A, parameters: { weight: 0.6 } },
      { model: B, parameters: { weight: 0.6 } },
      { model: F, parameters: { weight: 0.2 } },
    ],
  };
  expect(await worstUlpOf(doc, (k) => multislerpRef([a.get(k)!, b.get(k)!, f.get(k)!], [0.6, 0.6, 0.2], n.get(k)!, false))).toBeLessThanOrEqual(1);
});

test('nuslerpCoefficients from the Gram entries equal the f64 oracle on the vectors (near-opposite, colinear, a zero vector, weights summing to 0)', () => {
  const vs = [
    [1, 0.2, -0.5, 0.3],
    [0.8, 0.5, -0.1, 0.9],
    [-1, -0.2, 0.5, -0.25],
    [2, 0.4, -1, 0.6],
    [0, 0, 0, 0],
    [-0.2, 1, 0.4, 0],
  ];
  const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
  for (const [i, j] of [
    [0, 1],
    [0, 2],
    [0, 3],
    [0, 4],
    [4, 4],
    [0, 5],
  ]) {
    for (const w of [
      [1, 1],
      [0.3, 0.7],
      [2, -1],
      [0.5, -0.5],
    ] as [number, number][]) {
      const [c0, c1] = nuslerpCoefficients(nuslerpT(...w), dot(vs[i], vs[i]), dot(vs[j], vs[j]), dot(vs[i], vs[j]));
      const ref = nuslerpRef(vs[i], vs[j], w, null);
      vs[i].forEach((x, k) => expect(c0 * x + c1 * vs[j][k]).toBeCloseTo(ref[k], 12));
    }
  }
  // Weights whose sum overflows f64 keep their ratio (w1 / (w0 + w1) made it 0: the first model whole).
  expect([nuslerpT(1e308, 1e308), nuslerpT(1e308, 3e307)]).toEqual([0.5, 3e307 / 1.3e308]);
});

test('nuslerp of two models, no base: within 1 bf16 ulp of the oracle on whole tensors', async () => {
  const [a, f] = await Promise.all([modelValues(A), modelValues(F)]);
  const doc = {
    merge_method: 'nuslerp',
    models: [
      { model: A, parameters: { weight: 0.3 } },
      { model: F, parameters: { weight: 0.5 } },
    ],
  };
  expect(await worstUlpOf(doc, (k) => nuslerpRef(a.get(k)!, f.get(k)!, [0.3, 0.5], null))).toBeLessThanOrEqual(1);
});

test('nuslerp of task vectors around a base (nuslerp_row_wise ignored when flattened): within 1 f32 ulp with out_dtype float32', async () => {
  const [a, b, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(N)]);
  const doc = {
    merge_method: 'nuslerp',
    base_model: N,
    out_dtype: 'float32',
    parameters: { nuslerp_row_wise: true },
    models: [{ model: A, parameters: { weight: 1 } }, { model: B, parameters: { weight: 2 } }, { model: N }],
  };
  expect(await worstUlpOf(doc, (k) => nuslerpRef(a.get(k)!, b.get(k)!, [1, 2], n.get(k)!))).toBeLessThanOrEqual(1);
});

test('nuslerp refuses three models in one line', () => {
  const three = { merge_method: 'nuslerp', models: [A, B, F].map((model) => ({ model, parameters: { weight: 1 } })) };
  expect(() => parseRecipe(three)).toThrow(/^nuslerp merges exactly two models .* names 3$/);
});
