/** The disk-methods section: each recipe method cold on disk against a cold interpolate on the same pair, runs paired. */
import * as path from 'node:path';
import type { CachedPair } from './fixtures';
import { dropCaches, timeCommand, type Timed } from './system';
import { cli, interpolateArgs, log, median, medianNote, medianRun, repeat, rmOut, rows } from './common';
import { withRecipeFiles } from './tmpfs-methods';

/** One cold run into `out` on the disk under test: page cache of the inputs dropped first, the output removed after. */
function coldRun(pair: CachedPair, out: string, argv: string[]): Timed {
  rmOut(out);
  dropCaches(pair.files);
  const run = timeCommand(argv);
  rmOut(out);
  return run;
}

/** `repeat` pairs of cold runs (interpolate, then the method) per method; the row's ratio is the median of the paired ratios. */
export function runDiskMethods(pair: CachedPair, work: string, methods: string[]) {
  const out = path.join(work, 'out-methods');
  withRecipeFiles(pair, methods, (method, recipe) => {
    log(`disk ${pair.spec.label} ${method}`);
    const interpolate: number[] = [];
    const runs: Timed[] = [];
    for (let i = 0; i < repeat; i++) {
      interpolate.push(coldRun(pair, out, interpolateArgs(pair, out)).seconds);
      runs.push(coldRun(pair, out, cli(['merge', recipe, '-o', out])));
    }
    const run = medianRun(runs);
    rows.push({
      section: 'disk-methods',
      pair: pair.spec.label,
      what: `${method} (recipe as scripts/bench/tmpfs-methods.ts writes it) cold → ${work}${medianNote()}, each run paired with a cold interpolate run`,
      seconds: run.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: run.peakRss,
      floor: { label: 'interpolate λ=0.8 cold on the same pair', seconds: median(interpolate) },
      ratio: median(runs.map((r, i) => r.seconds / interpolate[i])),
      target: { limit: 1.3, text: '≤ 1.3 × interpolate cold' },
    });
  });
}
