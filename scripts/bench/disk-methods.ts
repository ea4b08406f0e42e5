/** The disk-methods section: each recipe method cold on disk against a cold reference run (interpolate on the same pair), runs paired. */
import * as path from 'node:path';
import { dropCaches, timeCommand, type Timed } from './system';
import { cli, log, median, medianNote, medianRun, repeat, rmOut, rows } from './common';
import { withRecipeFiles, type MethodModels } from './tmpfs-methods';

/** One cold run into `out` on the disk under test: page cache of the inputs dropped first, the output removed after. */
function coldRun(pair: MethodModels, out: string, argv: string[]): Timed {
  rmOut(out);
  dropCaches(pair.files);
  const run = timeCommand(argv);
  rmOut(out);
  return run;
}

/** `repeat` pairs of cold runs (the reference, then the method) per method; the row's ratio is the median of the paired ratios. */
export function runDiskMethods(pair: MethodModels, work: string, methods: string[]) {
  const out = path.join(work, 'out-methods');
  withRecipeFiles(pair, methods, (method, recipe, reference) => {
    log(`disk ${pair.spec.label} ${method}`);
    const references: number[] = [];
    const runs: Timed[] = [];
    for (let i = 0; i < repeat; i++) {
      references.push(coldRun(pair, out, reference.args(out)).seconds);
      runs.push(coldRun(pair, out, cli(['merge', recipe, '-o', out])));
    }
    const run = medianRun(runs);
    rows.push({
      section: 'disk-methods',
      pair: pair.spec.label,
      what: `${method} (recipe as scripts/bench/tmpfs-methods.ts writes it) cold → ${work}${medianNote()}, each run paired with a cold reference run`,
      seconds: run.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: run.peakRss,
      floor: { label: `${reference.label}, cold`, seconds: median(references) },
      ratio: median(runs.map((r, i) => r.seconds / references[i])),
      target: { limit: 1.3, text: `≤ 1.3 × ${reference.short} cold` },
    });
  });
}
