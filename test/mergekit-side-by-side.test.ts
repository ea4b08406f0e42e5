/**
 * weightmix and real mergekit side by side on the same recipes over small Qwen3-shaped fixtures.
 * Optional: WEIGHTMIX_MERGEKIT_PYTHON names a Python that can `import mergekit` (docs/mergekit-parity.md
 * says how one was installed by hand); without it the suite is skipped and says why. Both merge with
 * `dtype: float32` so that the arithmetic, not mergekit's bf16 rounding, is compared; the distances
 * are printed as a table (largest distance in f32 ulps of mergekit's value, relative L2 of the difference).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { openCheckpoint } from '../lib/model/checkpoint';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { readTensorValues } from '../lib/format/tensor-data';
import { testIf } from './helpers/skip';

const PYTHON = process.env.WEIGHTMIX_MERGEKIT_PYTHON;
const mergekitTest = testIf(PYTHON !== undefined && PYTHON !== '', 'WEIGHTMIX_MERGEKIT_PYTHON is not set (a Python that can import mergekit)');

interface Distance {
  maxUlp: number;
  relL2: number;
  tensors: number;
}

/** Distances of weightmix's output from mergekit's over every tensor mergekit wrote. */
async function distance(ours: string, theirs: string): Promise<Distance> {
  const [a, b] = await Promise.all([openCheckpoint(ours), openCheckpoint(theirs)]);
  let maxUlp = 0;
  let diff = 0;
  let norm = 0;
  for (const name of b.names) {
    const ta = a.tensors.get(name);
    if (!ta) throw new Error(`${name} is in mergekit's output but not in weightmix's`);
    const [va, vb] = await Promise.all([readTensorValues(ta), readTensorValues(b.tensors.get(name)!)]);
    expect(va.length).toBe(vb.length);
    for (let i = 0; i < va.length; i++) {
      const ulp = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(vb[i]) || 2 ** -126)), -126) - 23);
      maxUlp = Math.max(maxUlp, Math.abs(va[i] - vb[i]) / ulp);
      diff += (va[i] - vb[i]) ** 2;
      norm += vb[i] ** 2;
    }
  }
  expect(a.names.length).toBe(b.names.length);
  return { maxUlp, relL2: Math.sqrt(diff / norm), tensors: b.names.length };
}

describe('weightmix against mergekit', () => {
  let dir: string;
  let A: string;
  let B: string;
  let N: string;
  let F: string;
  const table: string[] = [];

  beforeAll(async () => {
    if (!PYTHON) return;
    dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'weightmix-mergekit-'));
    const pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', seed: 3 });
    const near = await makeCheckpointPair({ dir: path.join(dir, 'near'), shape: 'tiny', seed: 3, delta: 0.01 });
    const far = await makeCheckpointPair({ dir: path.join(dir, 'far'), shape: 'tiny', seed: 3, delta: 0.3 });
    [A, B, N, F] = [pair.instruct, pair.thinking, near.thinking, far.thinking];
  }, 120000);

  afterAll(async () => {
    if (!PYTHON) return;
    console.log(['method | max f32 ulps | relative L2 | tensors', ...table].join('\n'));
    await fs.promises.rm(dir, { recursive: true, force: true });
  });

  const recipes: [string, () => Record<string, unknown>, (d: Distance) => void][] = [
    [
      'linear',
      () => ({
        merge_method: 'linear',
        models: [
          { model: A, parameters: { weight: 0.3 } },
          { model: B, parameters: { weight: 0.7 } },
        ],
      }),
      (d) => expect(d.maxUlp).toBeLessThanOrEqual(2),
    ],
    [
      'slerp',
      () => ({ merge_method: 'slerp', base_model: A, parameters: { t: [0, 0.5, 1] }, models: [{ model: A }, { model: F }] }),
      (d) => expect(d.relL2).toBeLessThan(1e-6),
    ],
    [
      'task_arithmetic',
      () => ({
        merge_method: 'task_arithmetic',
        base_model: N,
        models: [
          { model: A, parameters: { weight: 0.7 } },
          { model: B, parameters: { weight: 0.7 } },
        ],
      }),
      (d) => expect(d.maxUlp).toBeLessThanOrEqual(2),
    ],
    [
      'ties',
      () => ({
        merge_method: 'ties',
        base_model: N,
        models: [
          { model: A, parameters: { weight: 0.5, density: 0.5 } },
          { model: B, parameters: { weight: 0.5, density: 0.5 } },
        ],
      }),
      (d) => expect(d.relL2).toBeLessThan(1e-2),
    ],
    [
      'breadcrumbs',
      () => ({
        merge_method: 'breadcrumbs',
        base_model: N,
        models: [
          { model: A, parameters: { weight: 0.6, density: 0.4, gamma: 0.05 } },
          { model: B, parameters: { weight: 0.6, density: 0.4, gamma: 0.05 } },
        ],
      }),
      (d) => expect(d.relL2).toBeLessThan(1e-2),
    ],
    [
      'model_stock',
      () => ({ merge_method: 'model_stock', base_model: A, models: [{ model: B }, { model: N }, { model: F }] }),
      (d) => expect(d.relL2).toBeLessThan(1e-6),
    ],
    // passthrough is not compared: mergekit leaves config.json's layer_types at the source depth and
    // transformers 5 refuses the stacked config (num_hidden_layers 6, 4 layer_types) before any tensor is written.
    ['karcher', () => ({ merge_method: 'karcher', models: [{ model: A }, { model: B }, { model: F }] }), (d) => expect(d.relL2).toBeLessThan(1e-5)],
    [
      'multislerp',
      () => ({
        merge_method: 'multislerp',
        base_model: N,
        models: [
          { model: A, parameters: { weight: 0.5 } },
          { model: B, parameters: { weight: 0.3 } },
          { model: F, parameters: { weight: 0.2 } },
        ],
      }),
      (d) => expect(d.relL2).toBeLessThan(1e-5),
    ],
    [
      'nuslerp',
      () => ({
        merge_method: 'nuslerp',
        models: [
          { model: A, parameters: { weight: 0.3 } },
          { model: F, parameters: { weight: 0.7 } },
        ],
      }),
      (d) => expect(d.relL2).toBeLessThan(1e-6),
    ],
    [
      'nuslerp-base',
      () => ({
        merge_method: 'nuslerp',
        base_model: N,
        models: [{ model: A, parameters: { weight: 0.4 } }, { model: B, parameters: { weight: 0.6 } }, { model: N }],
      }),
      (d) => expect(d.relL2).toBeLessThan(1e-6),
    ],
    [
      'nuslerp-rows',
      () => ({
        merge_method: 'nuslerp',
        base_model: N,
        parameters: { nuslerp_flatten: false },
        models: [{ model: A, parameters: { weight: 0.4 } }, { model: F, parameters: { weight: 0.6 } }, { model: N }],
      }),
      (d) => expect(d.relL2).toBeLessThan(1e-6),
    ],
    [
      'nuslerp-columns',
      () => ({
        merge_method: 'nuslerp',
        parameters: { nuslerp_flatten: false, nuslerp_row_wise: true },
        models: [
          { model: A, parameters: { weight: 0.4 } },
          { model: F, parameters: { weight: 0.6 } },
        ],
      }),
      (d) => expect(d.relL2).toBeLessThan(1e-6),
    ],
    [
      'model_stock-filter_wise',
      () => ({ merge_method: 'model_stock', base_model: A, parameters: { filter_wise: true }, models: [{ model: B }, { model: N }, { model: F }] }),
      (d) => expect(d.relL2).toBeLessThan(1e-6),
    ],
    [
      'nearswap',
      () => ({ merge_method: 'nearswap', base_model: N, parameters: { t: 0.01 }, models: [{ model: A }, { model: N }] }),
      (d) => expect(d.maxUlp).toBeLessThanOrEqual(2),
    ],
    [
      'ram',
      () => ({ merge_method: 'ram', base_model: N, parameters: { epsilon: 0.01 }, models: [{ model: A }, { model: B }, { model: F }, { model: N }] }),
      (d) => expect(d.maxUlp).toBeLessThanOrEqual(2),
    ],
    [
      'ramplus_tl',
      () => ({
        merge_method: 'ramplus_tl',
        base_model: N,
        parameters: { epsilon: 0.01, r: 0.5, alpha: 0.4 },
        models: [{ model: A }, { model: B }, { model: F }, { model: N }],
      }),
      (d) => expect(d.maxUlp).toBeLessThanOrEqual(2),
    ],
  ];

  for (const [name, make, check] of recipes)
    mergekitTest(
      name,
      async () => {
        const doc = { ...make(), dtype: 'float32' };
        const file = path.join(dir, `${name}.yml`);
        fs.writeFileSync(file, stringify(doc));
        const ours = path.join(dir, `wm-${name}`);
        const theirs = path.join(dir, `mk-${name}`);
        await merge(parseRecipe(doc), { output: ours, threads: 2 });
        execFileSync(PYTHON!, ['-W', 'ignore', '-m', 'mergekit.scripts.run_yaml', file, theirs], {
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { ...process.env, HF_HUB_OFFLINE: '1', CUDA_VISIBLE_DEVICES: '' },
        });
        const d = await distance(ours, theirs);
        table.push(`${name} | ${d.maxUlp.toFixed(1)} | ${d.relL2.toExponential(2)} | ${d.tensors}`);
        check(d);
      },
      300000,
    );
});
