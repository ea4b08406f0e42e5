/** The tmpfs section: warm inputs → tmpfs, each run paired with its memory floor. */
import { fastStorageSamples, tmpfsRoot, type FastStorageSample } from './fast-storage';
import { settleInCache, type Timed } from './system';
import type { CachedPair } from './fixtures';
import { interpolateArgs, log, median, medianNote, medianRun, notes, repeat, rows } from './common';

/**
 * Warm inputs → tmpfs, each run paired with its memory floor (scripts/bench/fast-storage.ts); MoE vs dense per byte there too. The
 * pairs' inputs are settled in the page cache first and their runs alternate, so that the MoE/dense ratio of each repetition compares
 * two runs made side by side; its verdict is the median of those ratios.
 */
export function runFastStorage(list: CachedPair[]) {
  const tmpfs = tmpfsRoot();
  if (!('dir' in tmpfs)) {
    notes.push(`tmpfs section skipped: ${tmpfs.reason}`);
    return;
  }
  for (const pair of list) settleInCache(pair.files);
  const samples = new Map<CachedPair, FastStorageSample[]>(list.map((pair) => [pair, []]));
  for (let i = 0; i < repeat; i++) {
    for (const pair of list) {
      log(`tmpfs ${pair.spec.label} (${i + 1} of ${repeat})`);
      samples.get(pair)!.push(...fastStorageSamples(pair, tmpfs.dir, 1, (out) => interpolateArgs(pair, out)));
    }
  }
  for (const pair of list) {
    const own = samples.get(pair)!;
    const run = medianRun(own.map((x) => x.run));
    rows.push({
      section: 'tmpfs',
      pair: pair.spec.label,
      what: `interpolate λ=0.8 warm → ${tmpfs.dir}${medianNote()}, each run paired with its memory floor`,
      seconds: run.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: run.peakRss,
      floor: { label: 'memory floor (cat of both inputs + cp of the output)', seconds: median(own.map((x) => x.floorSeconds)) },
      ratio: median(own.map((x) => x.run.seconds / x.floorSeconds)),
      target: { limit: 1.25, text: '≤ 1.25 × memory floor' },
    });
  }
  const moe = list.find((p) => p.tensors > 10_000);
  const dense = list.find((p) => p.tensors <= 10_000);
  if (moe && dense) {
    // Per byte, run i of the MoE pair against run i of the dense pair.
    const perByte = (pair: CachedPair, i: number, of: (t: Timed) => number | null) => {
      const x = of(samples.get(pair)![i].run);
      return x === null ? NaN : x / pair.fileBytesPerModel;
    };
    const ratios = (of: (t: Timed) => number | null) =>
      Array.from({ length: repeat }, (_, i) => perByte(moe, i, of) / perByte(dense, i, of)).filter((r) => Number.isFinite(r));
    const wall = ratios((t) => t.seconds);
    const cpu = ratios((t) => t.cpuSeconds);
    const value = median(wall);
    const cpuNote = cpu.length === repeat ? `, in CPU seconds (user + sys) ${median(cpu).toFixed(2)}` : '';
    rows.push({
      section: 'tmpfs',
      pair: `${moe.spec.label} vs ${dense.spec.label}`,
      what: `seconds per output byte warm → tmpfs: ${moe.tensors} vs ${dense.tensors} tensors (median of ${repeat} side-by-side ratios)`,
      seconds: NaN,
      outBytes: NaN,
      peakRss: null,
      target: { limit: 1.2, text: 'MoE ≤ 1.2 × dense', value },
      note: `ratio ${value.toFixed(2)} in wall time${cpuNote}; each run's: ${wall.map((r) => r.toFixed(2)).join(', ')}`,
    });
  }
}
