/**
 * The batch section: six recipes (five linear variants and a SLERP) over one pair, merged cold as one
 * batch (`weightmix merge A.yml … -o DIR`), against the same six merged one by one (each cold) and
 * against the batch's floor: one cold read of the inputs plus the direct-write floor of all six outputs.
 * With --repeat each batch run is paired with a floor measured beside it. The outputs are compared with the singles byte for byte.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CachedPair } from './fixtures';
import { median, medianNote, pairedWithFloor, repeat, type Row } from './common';
import { coldReadFloor, directWriteFloor, dropCaches, timeCommand, type Timed } from './system';
import { slerpSliceRecipe } from '../../test/helpers/slerp-recipe';

/** The six recipes, as JSON (which is YAML), over the pair's models; `layers` sets the layer-range gradient. */
export function batchRecipes(instruct: string, thinking: string, layers: number): Record<string, Record<string, unknown>> {
  const linear = (wi: unknown, wt: unknown) => ({
    merge_method: 'linear',
    models: [
      { model: instruct, parameters: { weight: wi } },
      { model: thinking, parameters: { weight: wt } },
    ],
    dtype: 'bfloat16',
  });
  const from = Math.floor(layers / 3);
  const inRange = (i: number) => i >= from;
  return {
    'lambda-0.20': linear(0.8, 0.2),
    'lambda-0.50': linear(0.5, 0.5),
    'lambda-0.80': linear(0.2, 0.8),
    [`layers-${from}-${layers - 1}`]: linear(
      Array.from({ length: layers }, (_, i) => (inRange(i) ? 0.2 : 1)),
      Array.from({ length: layers }, (_, i) => (inRange(i) ? 0.8 : 0)),
    ),
    'without-attention': linear([{ filter: 'self_attn', value: 1 }, { value: 0.2 }], [{ filter: 'self_attn', value: 0 }, { value: 0.8 }]),
    slerp: slerpSliceRecipe(instruct, thinking, layers, 0.5, { dtype: 'bfloat16' }),
  };
}

function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else out.push(path.relative(root, path.join(d, e.name)));
    }
  };
  walk(root);
  return out.sort();
}

/** Whether two model folders hold the same files with the same bytes (cmp streams them). */
function sameModel(a: string, b: string): boolean {
  const fa = filesUnder(a);
  const fb = filesUnder(b);
  return fa.length === fb.length && fa.every((f, i) => f === fb[i] && spawnSync('cmp', ['-s', path.join(a, f), path.join(b, f)]).status === 0);
}

export function runBatchSection(pair: CachedPair, work: string, cli: (args: string[]) => string[], log: (line: string) => void): Row[] {
  const config = JSON.parse(fs.readFileSync(path.join(pair.instruct, 'config.json'), 'utf8')) as { num_hidden_layers: number };
  const recipes = batchRecipes(pair.instruct, pair.thinking, config.num_hidden_layers);
  const names = Object.keys(recipes);
  const dir = path.join(work, 'batch');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'recipes'), { recursive: true });
  const files = names.map((name) => {
    const file = path.join(dir, 'recipes', `${name}.yml`);
    fs.writeFileSync(file, JSON.stringify(recipes[name], null, 2) + '\n');
    return file;
  });
  const outBytes = names.length * pair.fileBytesPerModel;

  const singlesDir = path.join(dir, 'singles');
  const batchDir = path.join(dir, 'batch');
  const measureFloor = () => {
    log(`batch: floor (cold read once, write of ${names.length} outputs)`);
    return coldReadFloor(pair.files).seconds + directWriteFloor(work, outBytes).seconds;
  };
  const measureBatch = (): Timed => {
    log(`batch: ${names.length} recipes as one batch, cold`);
    fs.rmSync(batchDir, { recursive: true, force: true });
    dropCaches(pair.files);
    return timeCommand(cli(['merge', ...files, '-o', batchDir]));
  };
  // Each batch run beside its own floor (this disk's floor drifts by half within minutes): the verdict is the median of paired ratios.
  const paired = pairedWithFloor(measureFloor, measureBatch);
  const singlesRuns = Array.from({ length: repeat }, () => {
    fs.rmSync(singlesDir, { recursive: true, force: true });
    return names.map((name, i) => {
      log(`batch: single ${name}, cold`);
      dropCaches(pair.files);
      return timeCommand(cli(['merge', files[i], '-o', path.join(singlesDir, name)]));
    });
  });
  const singlesSeconds = median(singlesRuns.map((run) => run.reduce((n, t) => n + t.seconds, 0)));
  const singlesRss = Math.max(...singlesRuns.flat().map((t) => t.peakRss ?? 0)) || null;
  const batch = paired.run;
  const floorSeconds = paired.floorSeconds;
  const differing = names.filter((name) => !sameModel(path.join(batchDir, name), path.join(singlesDir, name)));
  fs.rmSync(dir, { recursive: true, force: true });

  const label = pair.spec.label;
  const what = `${names.length} recipes (${names.join(', ')})`;
  return [
    {
      section: 'floor',
      pair: label,
      what: `cold read (cat) of both inputs once + dd O_DIRECT 8M write of ${names.length} outputs${medianNote()}`,
      seconds: floorSeconds,
      outBytes,
      peakRss: null,
    },
    {
      section: 'batch',
      pair: label,
      what: `merge of ${what} one by one, each cold (sum${repeat > 1 ? `, median of ${repeat}` : ''})`,
      seconds: singlesSeconds,
      outBytes,
      peakRss: singlesRss,
    },
    {
      section: 'batch',
      pair: label,
      what: `merge of the ${names.length} recipes as one batch, cold${medianNote()}, each run paired with a floor measured beside it`,
      seconds: batch.seconds,
      outBytes,
      peakRss: batch.peakRss,
      floor: { label: `cold read once + write floor of ${names.length} outputs`, seconds: floorSeconds },
      ratio: paired.ratio,
      target: { limit: 1.2, text: `≤ 1.2 × cold read once + write floor of ${names.length} outputs` },
    },
    {
      section: 'batch',
      pair: label,
      what: 'cold batch ÷ cold singles added up',
      seconds: NaN,
      outBytes: NaN,
      peakRss: null,
      target: { limit: 0.6, text: '≤ 0.6', value: batch.seconds / singlesSeconds },
      note: `ratio ${(batch.seconds / singlesSeconds).toFixed(2)}`,
    },
    {
      section: 'batch',
      pair: label,
      what: 'batch outputs that differ from their single merge (cmp of every file)',
      seconds: NaN,
      outBytes: NaN,
      peakRss: null,
      target: { limit: 0, text: 'none', value: differing.length },
      note: differing.length === 0 ? 'all byte-identical' : `differ: ${differing.join(', ')}`,
    },
  ];
}
