/** The tmpfs section's methods: each recipe method warm → tmpfs against interpolate on the same pair, runs paired. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fastStorageSamples } from './fast-storage';
import type { CachedPair } from './fixtures';
import { settleInCache, type Timed } from './system';
import { cli, interpolateArgs, log, median, medianNote, medianRun, repeat, rows } from './common';

/** The pair the methods run on, and for the three-model methods a third model of the same shape (`files` then lists its shards too). */
export interface MethodModels extends CachedPair {
  third: string | null;
}

/**
 * Each method's recipe (density 0.5 where the method thins; instruct is the base where one is needed).
 * sce on a pair has one task vector, whose variance is 0 wherever finite: `select_topk` selects nothing (mergekit's
 * k = 0), so its row times one selection pass and the merge; `sce3` has two task vectors and times the radix passes.
 * model_stock and sce3 need a third model (`THREE_MODEL_METHODS`), and are timed against a linear merge of the
 * same three models instead of interpolate.
 */
const RECIPES: Record<string, (p: MethodModels) => Record<string, unknown>> = {
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
  model_stock: (p) => ({ merge_method: 'model_stock', base_model: p.instruct, models: [{ model: p.thinking }, { model: thirdOf(p) }] }),
  sce3: (p) => ({ merge_method: 'sce', base_model: p.instruct, parameters: { select_topk: 0.5 }, models: [{ model: p.thinking }, { model: thirdOf(p) }] }),
};

/** The methods that read a third model; their paired reference is `LINEAR3`, not interpolate. */
export const THREE_MODEL_METHODS = new Set(['model_stock', 'sce3']);

/** The three-model methods' reference: one linear combination of the same three models. */
const LINEAR3 = (p: MethodModels) => ({
  merge_method: 'linear',
  models: [
    { model: p.instruct, parameters: { weight: 0.2 } },
    { model: p.thinking, parameters: { weight: 0.4 } },
    { model: thirdOf(p), parameters: { weight: 0.4 } },
  ],
});

function thirdOf(p: MethodModels): string {
  if (!p.third) throw new Error('a three-model method ran without its third model');
  return p.third;
}

function weighted(method: string, p: MethodModels): Record<string, unknown> {
  return {
    merge_method: method,
    models: [
      { model: p.instruct, parameters: { weight: 0.2 } },
      { model: p.thinking, parameters: { weight: 0.8 } },
    ],
  };
}

function withBase(method: string, p: MethodModels, parameters: Record<string, unknown>): Record<string, unknown> {
  return { merge_method: method, base_model: p.instruct, parameters, models: [{ model: p.instruct }, { model: p.thinking }] };
}

function thinned(method: string, p: MethodModels, parameters: Record<string, unknown>): Record<string, unknown> {
  return { merge_method: method, base_model: p.instruct, random_seed: 1, models: [{ model: p.thinking, parameters: { weight: 0.8, ...parameters } }] };
}

export const BENCH_METHODS = Object.keys(RECIPES);

/** What a method's run is paired with: interpolate on the pair, or for a three-model method the linear merge of the three. */
export interface Reference {
  label: string;
  /** How the target names it: "interpolate" or "linear of three". */
  short: string;
  args: (out: string) => string[];
}

/**
 * Calls `run(method, recipe file, reference)` for each method with its recipe written to a temporary
 * folder (removed after).
 */
export function withRecipeFiles(models: MethodModels, methods: string[], run: (method: string, recipe: string, reference: Reference) => void) {
  for (const m of methods) if (!RECIPES[m]) throw new Error(`--methods: ${m} is not one of ${BENCH_METHODS.join(', ')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wm-bench-recipes-'));
  try {
    const linear3 = path.join(dir, 'linear3.json');
    const interpolate: Reference = { label: 'interpolate λ=0.8 on the same pair', short: 'interpolate', args: (out) => interpolateArgs(models, out) };
    const three: Reference = { label: 'linear merge of the same three models', short: 'linear of three', args: (out) => cli(['merge', linear3, '-o', out]) };
    if (methods.some((m) => THREE_MODEL_METHODS.has(m))) fs.writeFileSync(linear3, JSON.stringify(LINEAR3(models)));
    for (const method of methods) {
      const recipe = path.join(dir, `${method}.json`);
      fs.writeFileSync(recipe, JSON.stringify(RECIPES[method](models))); // YAML is a superset of JSON
      run(method, recipe, THREE_MODEL_METHODS.has(method) ? three : interpolate);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `repeat` pairs of runs (the reference, then the method) per method, inputs settled in the page cache first; the row's ratio is the median of the paired ratios. */
export function runFastStorageMethods(models: MethodModels, tmpfs: string, methods: string[]) {
  settleInCache(models.files);
  withRecipeFiles(models, methods, (method, recipe, reference) => {
    log(`tmpfs ${models.spec.label} ${method}`);
    const references: Timed[] = [];
    const runs: Timed[] = [];
    for (let i = 0; i < repeat; i++) {
      references.push(fastStorageSamples(models, tmpfs, 1, reference.args)[0].run);
      runs.push(fastStorageSamples(models, tmpfs, 1, (out) => cli(['merge', recipe, '-o', out]))[0].run);
    }
    const run = medianRun(runs);
    const cpuRatios = runs.map((r, i) => {
      const ref = references[i].cpuSeconds;
      return r.cpuSeconds !== null && ref ? r.cpuSeconds / ref : NaN;
    });
    rows.push({
      section: 'tmpfs',
      pair: models.spec.label,
      what: `${method} (recipe as scripts/bench/tmpfs-methods.ts writes it) warm → ${tmpfs}${medianNote()}, each run paired with a reference run`,
      seconds: run.seconds,
      outBytes: models.fileBytesPerModel,
      peakRss: run.peakRss,
      floor: { label: reference.label, seconds: median(references.map((r) => r.seconds)) },
      ratio: median(runs.map((r, i) => r.seconds / references[i].seconds)),
      target: { limit: 2.5, text: `≤ 2.5 × ${reference.short}` },
      // The target is wall time; the CPU ratio (user + sys) shows how much of it is work rather than waiting.
      note: cpuRatios.every(Number.isFinite) ? `CPU (user + sys) ${median(cpuRatios).toFixed(2)} × ${reference.short}` : undefined,
    });
  });
}
