/**
 * Zero-element tensors ([0], [4, 0], [0, 4]) beside ordinary ones, through every merge method: each writes them empty, with their
 * shape, and merges the rest (della, della_linear and arcee_fusion refused the plan, PlanInvalid, a code kept for weightmix's bugs:
 * their rows tiled no elements).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensorsFile, readSafetensorsHeader } from '../lib/format/safetensors';
import { MERGE_METHOD_NAMES, type MergeMethodName } from '../lib/merge-method-names';
import { merge } from '../lib/recipes/merge-recipe';
import { verify } from '../lib/analysis/verify';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-empty-tensors-');

const EMPTY: Record<string, number[]> = {
  'model.layers.0.mlp.up_proj.weight': [4, 0],
  'model.layers.0.mlp.down_proj.weight': [0, 4],
  'model.layers.0.input_layernorm.weight': [0],
};

/** A model of the three empty tensors and two of 4 x 4 and 4 BF16 elements, its values from `seed`. */
async function model(name: string, seed: number): Promise<string> {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  const values = (n: number) => {
    const data = Buffer.alloc(2 * n);
    for (let i = 0; i < n; i++) data.writeUInt16LE(0x3f80 + ((seed * 31 + i * 7) % 64), 2 * i); // 1.0 .. 1.5 in bf16
    return data;
  };
  await writeSafetensorsFile(path.join(dir, 'model.safetensors'), [
    ...Object.entries(EMPTY).map(([n, shape]) => ({ name: n, dtype: 'BF16' as const, shape, data: Buffer.alloc(0) })),
    { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'BF16', shape: [4, 4], data: values(16) },
    { name: 'model.norm.weight', dtype: 'BF16', shape: [4], data: values(4) },
  ]);
  return dir;
}

let a: string, b: string, c: string;
beforeAll(async () => {
  [a, b, c] = await Promise.all([model('a', 1), model('b', 2), model('c', 3)]);
});

const withBase = (method: string, parameters: Record<string, unknown> = {}) => ({
  merge_method: method,
  base_model: a,
  parameters,
  models: [{ model: a }, { model: b }],
});
const thinned = (method: string, parameters: Record<string, unknown>) => ({
  merge_method: method,
  base_model: a,
  random_seed: 1,
  models: [
    { model: b, parameters: { weight: 0.6, ...parameters } },
    { model: c, parameters: { weight: 0.4, ...parameters } },
  ],
});
const weighted = (method: string) => ({
  merge_method: method,
  models: [
    { model: a, parameters: { weight: 0.3 } },
    { model: b, parameters: { weight: 0.7 } },
  ],
});

const RECIPES: Record<MergeMethodName, () => Record<string, unknown>> = {
  linear: () => weighted('linear'),
  slerp: () => withBase('slerp', { t: 0.4 }),
  task_arithmetic: () => thinned('task_arithmetic', {}),
  model_stock: () => ({ merge_method: 'model_stock', base_model: a, models: [{ model: b }, { model: c }] }),
  passthrough: () => ({ merge_method: 'passthrough', models: [{ model: b }] }),
  ties: () => thinned('ties', { density: 0.5 }),
  dare_ties: () => thinned('dare_ties', { density: 0.5 }),
  dare_linear: () => thinned('dare_linear', { density: 0.5 }),
  breadcrumbs: () => thinned('breadcrumbs', { density: 0.5 }),
  breadcrumbs_ties: () => thinned('breadcrumbs_ties', { density: 0.5 }),
  karcher: () => ({ merge_method: 'karcher', models: [{ model: a }, { model: b }] }),
  multislerp: () => weighted('multislerp'),
  nuslerp: () => weighted('nuslerp'),
  nearswap: () => withBase('nearswap', { t: 0.01 }),
  ram: () => withBase('ram', { epsilon: 0.01 }),
  ramplus_tl: () => withBase('ramplus_tl', { epsilon: 0.01, r: 0.5, alpha: 0.4 }),
  della: () => thinned('della', { density: 0.5, epsilon: 0.1 }),
  della_linear: () => thinned('della_linear', { density: 0.5, epsilon: 0.1 }),
  sce: () => ({ merge_method: 'sce', base_model: a, parameters: { select_topk: 0.5 }, models: [{ model: b }, { model: c }] }),
  arcee_fusion: () => withBase('arcee_fusion'),
};

test.each([...MERGE_METHOD_NAMES])('%s writes the empty tensors empty, with their shapes, and the model verifies', async (method) => {
  const out = path.join(root, `out-${method}`);
  const summary = await merge(RECIPES[method](), { output: out });
  expect(summary.tensors).toBe(5);
  const header = await readSafetensorsHeader(path.join(out, 'model.safetensors'));
  for (const [name, shape] of Object.entries(EMPTY)) {
    const t = header.tensors.find((x) => x.name === name)!;
    expect([t.shape, t.dataOffsets[1] - t.dataOffsets[0]]).toEqual([shape, 0]);
  }
  expect((await verify({ dir: out })).problems).toEqual([]);
});
