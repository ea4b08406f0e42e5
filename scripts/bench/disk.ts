/** The disk sections: end-to-end interpolate against the storage floor (e2e), the sweep, and thread scaling to disk. */
import * as path from 'node:path';
import type { CachedPair } from './fixtures';
import { coldReadFloor, directWriteFloor, dropCaches, timeCommand, warm, type Timed } from './system';
import { cli, gb, interpolateArgs, medianNote, medianOf, pairedWithFloor, rmOut, rows } from './common';

interface Floors {
  coldRead: Timed;
  write: Timed;
}

const floorCache = new Map<string, Floors>();

export function floorsFor(pair: CachedPair, work: string): Floors {
  let f = floorCache.get(pair.dir);
  if (!f) {
    const coldRead = medianOf(() => coldReadFloor(pair.files));
    const write = medianOf(() => directWriteFloor(work, pair.fileBytesPerModel));
    f = { coldRead, write };
    floorCache.set(pair.dir, f);
    const inBytes = 2 * pair.fileBytesPerModel;
    rows.push({
      section: 'floor',
      pair: pair.spec.label,
      what: `cold read (cat) of both inputs, ${gb(inBytes)} GB${medianNote()}`,
      seconds: coldRead.seconds,
      outBytes: inBytes,
      peakRss: null,
    });
    rows.push({
      section: 'floor',
      pair: pair.spec.label,
      what: `dd O_DIRECT 8M write of ${gb(pair.fileBytesPerModel)} GB${medianNote()}`,
      seconds: write.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: null,
    });
  }
  return f;
}

export const warmSeconds = new Map<string, number>();

export function runE2E(pair: CachedPair, work: string, buffered: boolean, isBig: boolean) {
  floorsFor(pair, work);
  const out = path.join(work, 'out-e2e');
  const modes: [string, string[]][] = [['O_DIRECT (default)', []]];
  if (buffered) modes.push(['--no-direct', ['--no-direct']]);
  for (const [mode, extra] of modes) {
    for (const state of ['warm', 'cold'] as const) {
      const writeFloor = () => directWriteFloor(work, pair.fileBytesPerModel).seconds;
      const paired = pairedWithFloor(state === 'warm' ? writeFloor : () => coldReadFloor(pair.files).seconds + writeFloor(), () => {
        rmOut(out);
        if (state === 'warm') warm(pair.files);
        else dropCaches(pair.files);
        const run = timeCommand(interpolateArgs(pair, out, extra));
        rmOut(out);
        return run;
      });
      const t = paired.run;
      const floor = { label: state === 'warm' ? 'write floor' : 'cold read + write floor', seconds: paired.floorSeconds };
      const limit = state === 'warm' ? 1.2 : 1.1;
      rows.push({
        section: 'e2e',
        pair: pair.spec.label,
        what: `interpolate λ=0.8 ${state}, ${mode}${medianNote()}, each run paired with a floor measured beside it`,
        seconds: t.seconds,
        outBytes: pair.fileBytesPerModel,
        peakRss: t.peakRss,
        floor,
        ratio: paired.ratio,
        target: { limit, text: `≤ ${limit} × ${floor.label}` },
      });
      if (extra.length === 0 && state === 'warm') warmSeconds.set(pair.dir, t.seconds);
      if (extra.length === 0) {
        (coldWarm.get(pair.dir) ?? coldWarm.set(pair.dir, {}).get(pair.dir)!)[state] = t.seconds;
      }
      if (isBig && extra.length === 0) {
        rows.push({
          section: 'e2e',
          pair: pair.spec.label,
          what: `peak RSS of the CLI, ${state}`,
          seconds: NaN,
          outBytes: NaN,
          peakRss: t.peakRss,
          target: { limit: 1.5e9, text: '≤ 1.5 GB', value: t.peakRss ?? NaN },
        });
      }
    }
  }
}

export const coldWarm = new Map<string, { warm?: number; cold?: number }>();

export function runSweep(pair: CachedPair, work: string) {
  const lambdas = [0.2, 0.5, 0.8];
  const floors = floorsFor(pair, work);
  const writeN = directWriteFloor(work, lambdas.length * pair.fileBytesPerModel);
  rows.push({
    section: 'floor',
    pair: pair.spec.label,
    what: `dd O_DIRECT 8M write of ${gb(lambdas.length * pair.fileBytesPerModel)} GB (${lambdas.length} outputs)`,
    seconds: writeN.seconds,
    outBytes: lambdas.length * pair.fileBytesPerModel,
    peakRss: null,
  });
  const out = path.join(work, 'out-sweep');
  rmOut(out);
  dropCaches(pair.files);
  const t = timeCommand(cli(['sweep', '--instruct', pair.instruct, '--thinking', pair.thinking, '--lambdas', lambdas.join(','), '-o', out]));
  rmOut(out);
  const floorSeconds = floors.coldRead.seconds + writeN.seconds;
  rows.push({
    section: 'sweep',
    pair: pair.spec.label,
    what: `sweep --lambdas ${lambdas.join(',')} cold`,
    seconds: t.seconds,
    outBytes: lambdas.length * pair.fileBytesPerModel,
    peakRss: t.peakRss,
    floor: { label: 'cold read once + write floor of 3 outputs', seconds: floorSeconds },
    target: { limit: 1.1, text: '≤ 1.1 × cold read once + write floor of 3 outputs' },
  });
}

export function runThreadsDisk(pair: CachedPair, work: string, threadsList: number[]) {
  const out = path.join(work, 'out-threads');
  for (const threads of threadsList) {
    rmOut(out);
    warm(pair.files);
    const t = timeCommand(interpolateArgs(pair, out, ['--threads', String(threads)]));
    rmOut(out);
    rows.push({
      section: 'threads',
      pair: pair.spec.label,
      what: `interpolate warm → disk O_DIRECT, --threads ${threads}`,
      seconds: t.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: t.peakRss,
    });
  }
}
