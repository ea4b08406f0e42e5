/**
 * weightmix and real mergekit side by side on the same recipes over small Qwen3-shaped fixtures.
 * Optional: WEIGHTMIX_MERGEKIT_PYTHON names a Python that can `import mergekit` (docs/mergekit-parity.md
 * says how one was installed by hand); without it the suite is skipped and says why. Both merge with
 * `dtype: float32` so that the arithmetic, not mergekit's bf16 rounding, is compared; the distances
 * are printed as a table (largest distance in f32 ulps of mergekit's value, relative L2 of the difference).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { openCheckpoint } from '../lib/model/checkpoint';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { readTensorValues } from '../lib/format/tensor-data';
import { testIf } from './helpers/skip';
import { makeNearFarModels } from './helpers/tiny-models';
import { dir, useTempDir } from './helpers/temp-dir';

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
  let A: string;
  let B: string;
  let N: string;
  let F: string;
  const table: string[] = [];

  useTempDir('weightmix-mergekit-');

  beforeAll(async () => {
    if (!PYTHON) return;
    ({ A, B, N, F } = await makeNearFarModels(dir, 3));
  }, 120000);

  afterAll(async () => {
    if (!PYTHON) return;
    console.log(['method | max f32 ulps | relative L2 | tensors', ...table].join('\n'));
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
    [
      // density 1: no mask (deterministic), so della's sign election, weights and normalization are compared value for value.
      'della-density-1',
      () => ({
        merge_method: 'della',
        base_model: N,
        models: [{ model: A, parameters: { weight: 0.6 } }, { model: B, parameters: { weight: 0.4 } }, { model: F, parameters: { weight: 0.3 } }, { model: N }],
      }),
      (d) => expect(d.relL2).toBeLessThan(1e-6),
    ],
    [
      'sce',
      () => ({ merge_method: 'sce', base_model: N, models: [{ model: A }, { model: B }, { model: F }, { model: N }] }),
      (d) => expect(d.relL2).toBeLessThan(1e-6),
    ],
    [
      // Deterministic, but mergekit's torch.topk and weightmix (lower index first) may pick different elements among equal variances at the cut.
      'sce-select_topk-0.5',
      () => ({ merge_method: 'sce', base_model: N, parameters: { select_topk: 0.5 }, models: [{ model: A }, { model: B }, { model: F }, { model: N }] }),
      (d) => expect(d.relL2).toBeLessThan(1e-2),
    ],
    [
      // Every fixture tensor is below 10⁶ elements, so mergekit's quantiles are exact there too (it samples only above).
      'arcee_fusion',
      () => ({ merge_method: 'arcee_fusion', base_model: N, models: [{ model: A }, { model: N }] }),
      (d) => expect(d.relL2).toBeLessThan(1e-2),
    ],
  ];

  /** Both tools on `doc` (dtype float32); returns the two output folders. */
  async function mergeBoth(name: string, doc: Record<string, unknown>): Promise<[string, string]> {
    const full = { ...doc, dtype: 'float32' };
    const file = path.join(dir, `${name}.yml`);
    fs.writeFileSync(file, stringify(full));
    const ours = path.join(dir, `wm-${name}`);
    const theirs = path.join(dir, `mk-${name}`);
    await merge(parseRecipe(full), { output: ours, threads: 2 });
    execFileSync(PYTHON!, ['-W', 'ignore', '-m', 'mergekit.scripts.run_yaml', file, theirs], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, HF_HUB_OFFLINE: '1', CUDA_VISIBLE_DEVICES: '' },
    });
    return [ours, theirs];
  }

  for (const [name, make, check] of recipes)
    mergekitTest(
      name,
      async () => {
        const [ours, theirs] = await mergeBoth(name, make());
        const d = await distance(ours, theirs);
        table.push(`${name} | ${d.maxUlp.toFixed(1)} | ${d.relL2.toExponential(2)} | ${d.tensors}`);
        check(d);
      },
      300000,
    );

  // della's masks are random (and mergekit ignores random_seed): statistics, not values, are compared.
  // One model, weight 1: out − base is the model's task vector, kept or not, times the tensor's L1 factor.
  mergekitTest(
    'della_linear and della (MAGPRUNE): kept fraction by rank within rows and the L1 factor agree in statistics',
    async () => {
      for (const method of ['della_linear', 'della']) {
        const doc = { merge_method: method, base_model: N, models: [{ model: A, parameters: { weight: 1, density: 0.4, epsilon: 0.2 } }, { model: N }] };
        const [ours, theirs] = await mergeBoth(method, doc);
        const [o, t] = await Promise.all([magpruneStats(ours, A, N), magpruneStats(theirs, A, N)]);
        table.push(
          `${method} (kept by rank quarter; mean factor) | weightmix ${o.quarters.map((q) => q.toFixed(3)).join(' ')}; ${o.factor.toFixed(4)} | mergekit ${t.quarters.map((q) => q.toFixed(3)).join(' ')}; ${t.factor.toFixed(4)} | ${o.elements}`,
        );
        // p runs from 0.2 to 0.6 with the rank (among all elements; δ = 0 ones, uncounted here, rank lowest).
        o.quarters.forEach((q, k) => {
          if (k > 0) expect(q - o.quarters[k - 1]).toBeGreaterThan(0.05);
          expect(Math.abs(q - t.quarters[k])).toBeLessThan(0.02);
        });
        // mergekit's own factor varies by about 0.5% (one standard deviation) from run to run.
        expect(Math.abs(o.factor / t.factor - 1)).toBeLessThan(0.03);
      }
    },
    300000,
  );
});

/**
 * MAGPRUNE's statistics in a one-model merge `out` of `model` over `base`: per row (the last
 * dimension; a 1-D tensor is one row), elements ranked by |δ| (f32 δ = model − base; ties by index) and
 * counted kept (out ≠ base) per quarter of the ranks; and the mean of the per-tensor factors
 * (out − base)/δ over kept elements, weighted by element count. Elements with δ = 0 are not counted.
 */
async function magpruneStats(out: string, model: string, base: string): Promise<{ quarters: number[]; factor: number; elements: number }> {
  const [o, m, b] = await Promise.all([openCheckpoint(out), openCheckpoint(model), openCheckpoint(base)]);
  const kept = [0, 0, 0, 0];
  const seen = [0, 0, 0, 0];
  let factorSum = 0;
  let elements = 0;
  for (const name of o.names) {
    const loc = o.tensors.get(name)!;
    const [vo, vm, vb] = await Promise.all([readTensorValues(loc), readTensorValues(m.tensors.get(name)!), readTensorValues(b.tensors.get(name)!)]);
    const L = loc.shape[loc.shape.length - 1] ?? 1;
    const factors: number[] = [];
    for (let r0 = 0; r0 < vo.length; r0 += L) {
      const idx = Array.from({ length: L }, (_, j) => r0 + j).filter((i) => Math.fround(vm[i] - vb[i]) !== 0);
      idx.sort((i, j) => Math.abs(vm[i] - vb[i]) - Math.abs(vm[j] - vb[j]) || j - i);
      idx.forEach((i, r) => {
        const q = Math.min(3, Math.floor((4 * r) / idx.length));
        seen[q]++;
        if (vo[i] !== vb[i]) {
          kept[q]++;
          factors.push((vo[i] - vb[i]) / (vm[i] - vb[i]));
        }
      });
    }
    if (factors.length === 0) continue;
    factors.sort((x, y) => x - y);
    factorSum += factors[factors.length >> 1] * vo.length;
    elements += vo.length;
  }
  return { quarters: kept.map((k, q) => k / seen[q]), factor: factorSum / elements, elements };
}
