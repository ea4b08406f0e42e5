/** The tmpfs section's methods: each recipe method warm → tmpfs against interpolate on the same pair, runs paired. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fastStorageSamples } from './fast-storage';
import type { CachedPair } from './fixtures';
import { cli, interpolateArgs, log, median, medianNote, medianRun, repeat, rows } from './common';

/**
 * Methods a two-model pair can run: the recipe each is timed with (density 0.5 where the method thins;
 * instruct is the base where one is needed). model_stock is not here: it needs two models beside the
 * base, and the bench's fixtures are pairs (a third model would be another pair of the same size to generate and keep).
 * sce on a pair has one task vector, whose variance is 0 wherever finite: `select_topk` selects nothing (mergekit's
 * k = 0), so its row times one selection pass and the merge, not the deeper radix passes of three or more models.
 */
const RECIPES: Record<string, (p: CachedPair) => Record<string, unknown>> = {
  linear: (p) => ({
    merge_method: 'linear',
    models: [
      { model: p.instruct, parameters: { weight: 0.2 } },
      { model: p.thinking, parameters: { weight: 0.8 } },
    ],
  }),
  slerp: (p) => ({ merge_method: 'slerp', base_model: p.instruct, models: [{ model: p.instruct }, { model: p.thinking }], parameters: { t: 0.8 } }),
  task_arithmetic: (p) => thinned('task_arithmetic', p, {}),
  ties: (p) => thinned('ties', p, { density: 0.5 }),
  dare_ties: (p) => thinned('dare_ties', p, { density: 0.5 }),
  dare_linear: (p) => thinned('dare_linear', p, { density: 0.5 }),
  breadcrumbs: (p) => thinned('breadcrumbs', p, { density: 0.5 }),
  breadcrumbs_ties: (p) => thinned('breadcrumbs_ties', p, { density: 0.5 }),
  nuslerp: (p) => weighted('nuslerp', p),
  multislerp: (p) => weighted('multislerp', p),
  karcher: (p) => ({ merge_method: 'karcher', models: [{ model: p.instruct }, { model: p.thinking }] }),
  nearswap: (p) => withBase('nearswap', p, { t: 0.01 }),
  ram: (p) => withBase('ram', p, { epsilon: 0.01 }),
  ramplus_tl: (p) => withBase('ramplus_tl', p, { epsilon: 0.01, r: 0.5, alpha: 0.4 }),
  della: (p) => thinned('della', p, { density: 0.5, epsilon: 0.1 }),
  della_linear: (p) => thinned('della_linear', p, { density: 0.5, epsilon: 0.1 }),
  sce: (p) => withBase('sce', p, { select_topk: 0.5 }),
  arcee_fusion: (p) => withBase('arcee_fusion', p, {}),
};

function weighted(method: string, p: CachedPair): Record<string, unknown> {
  return {
    merge_method: method,
    models: [
      { model: p.instruct, parameters: { weight: 0.2 } },
      { model: p.thinking, parameters: { weight: 0.8 } },
    ],
  };
}

function withBase(method: string, p: CachedPair, parameters: Record<string, unknown>): Record<string, unknown> {
  return { merge_method: method, base_model: p.instruct, parameters, models: [{ model: p.instruct }, { model: p.thinking }] };
}

function thinned(method: string, p: CachedPair, parameters: Record<string, unknown>): Record<string, unknown> {
  return { merge_method: method, base_model: p.instruct, random_seed: 1, models: [{ model: p.thinking, parameters: { weight: 0.8, ...parameters } }] };
}

export const BENCH_METHODS = Object.keys(RECIPES);

/** Calls `run(method, recipe file)` for each method with its recipe written to a temporary folder (removed after). */
export function withRecipeFiles(pair: CachedPair, methods: string[], run: (method: string, recipe: string) => void) {
  for (const m of methods) if (!RECIPES[m]) throw new Error(`--methods: ${m} is not one of ${BENCH_METHODS.join(', ')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wm-bench-recipes-'));
  try {
    for (const method of methods) {
      const recipe = path.join(dir, `${method}.json`);
      fs.writeFileSync(recipe, JSON.stringify(RECIPES[method](pair))); // YAML is a superset of JSON
      run(method, recipe);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `repeat` pairs of runs (interpolate, then the method) per method; the row's ratio is the median of the paired ratios. */
export function runFastStorageMethods(pair: CachedPair, tmpfs: string, methods: string[]) {
  withRecipeFiles(pair, methods, (method, recipe) => {
    log(`tmpfs ${pair.spec.label} ${method}`);
    const interpolate: number[] = [];
    const runs = [];
    for (let i = 0; i < repeat; i++) {
      interpolate.push(fastStorageSamples(pair, tmpfs, 1, (out) => interpolateArgs(pair, out))[0].run.seconds);
      runs.push(fastStorageSamples(pair, tmpfs, 1, (out) => cli(['merge', recipe, '-o', out]))[0].run);
    }
    const run = medianRun(runs);
    rows.push({
      section: 'tmpfs',
      pair: pair.spec.label,
      what: `${method} (recipe as scripts/bench/tmpfs-methods.ts writes it) warm → ${tmpfs}${medianNote()}, each run paired with an interpolate run`,
      seconds: run.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: run.peakRss,
      floor: { label: 'interpolate λ=0.8 on the same pair', seconds: median(interpolate) },
      ratio: median(runs.map((r, i) => r.seconds / interpolate[i])),
      target: { limit: 2.5, text: '≤ 2.5 × interpolate' },
    });
  });
}
