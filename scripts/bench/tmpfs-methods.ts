/** The tmpfs section's methods: each recipe method warm → tmpfs against interpolate on the same pair, runs paired. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fastStorageSamples } from './fast-storage';
import type { CachedPair } from './fixtures';
import { cli, interpolateArgs, log, median, medianNote, medianRun, repeat, rows } from './common';

/** Methods a two-model pair can run: the recipe each is timed with (density 0.5 where the method thins). */
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
};

function thinned(method: string, p: CachedPair, parameters: Record<string, unknown>): Record<string, unknown> {
  return { merge_method: method, base_model: p.instruct, random_seed: 1, models: [{ model: p.thinking, parameters: { weight: 0.8, ...parameters } }] };
}

export const BENCH_METHODS = Object.keys(RECIPES);

/** `repeat` pairs of runs (interpolate, then the method) per method; the row's ratio is the median of the paired ratios. */
export function runFastStorageMethods(pair: CachedPair, tmpfs: string, methods: string[]) {
  for (const m of methods) if (!RECIPES[m]) throw new Error(`--methods: ${m} is not one of ${BENCH_METHODS.join(', ')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wm-bench-recipes-'));
  try {
    for (const method of methods) {
      log(`tmpfs ${pair.spec.label} ${method}`);
      const recipe = path.join(dir, `${method}.json`);
      fs.writeFileSync(recipe, JSON.stringify(RECIPES[method](pair))); // YAML is a superset of JSON
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
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
