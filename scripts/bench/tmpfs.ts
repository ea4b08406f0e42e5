/** The tmpfs section: warm inputs → tmpfs, each run paired with its memory floor. */
import { fastStorageSamples, tmpfsRoot } from './fast-storage';
import type { CachedPair } from './fixtures';
import { interpolateArgs, log, median, medianNote, medianRun, notes, repeat, rows } from './common';

/** Warm inputs → tmpfs, each run paired with its memory floor (scripts/bench/fast-storage.ts); MoE vs dense per byte there too. */
export function runFastStorage(list: CachedPair[]) {
  const tmpfs = tmpfsRoot();
  if (!('dir' in tmpfs)) {
    notes.push(`tmpfs section skipped: ${tmpfs.reason}`);
    return;
  }
  const perByte = new Map<string, number>();
  // CPU seconds per byte too: on a shared machine the wall time of a sub-second run is mostly noise.
  const cpuPerByte = new Map<string, number | null>();
  for (const pair of list) {
    log(`tmpfs ${pair.spec.label}`);
    const samples = fastStorageSamples(pair, tmpfs.dir, repeat, (out) => interpolateArgs(pair, out));
    const run = medianRun(samples.map((x) => x.run));
    perByte.set(pair.spec.label, run.seconds / pair.fileBytesPerModel);
    cpuPerByte.set(pair.spec.label, run.cpuSeconds === null ? null : run.cpuSeconds / pair.fileBytesPerModel);
    rows.push({
      section: 'tmpfs',
      pair: pair.spec.label,
      what: `interpolate λ=0.8 warm → ${tmpfs.dir}${medianNote()}, each run paired with its memory floor`,
      seconds: run.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: run.peakRss,
      floor: { label: 'memory floor (cat of both inputs + cp of the output)', seconds: median(samples.map((x) => x.floorSeconds)) },
      ratio: median(samples.map((x) => x.run.seconds / x.floorSeconds)),
      target: { limit: 1.25, text: '≤ 1.25 × memory floor' },
    });
  }
  const moe = list.find((p) => p.tensors > 10_000);
  const dense = list.find((p) => p.tensors <= 10_000);
  if (moe && dense) {
    const value = perByte.get(moe.spec.label)! / perByte.get(dense.spec.label)!;
    const [moeCpu, denseCpu] = [cpuPerByte.get(moe.spec.label), cpuPerByte.get(dense.spec.label)];
    const cpuNote = moeCpu && denseCpu ? `, in CPU seconds (user + sys) ${(moeCpu / denseCpu).toFixed(2)}` : '';
    rows.push({
      section: 'tmpfs',
      pair: `${moe.spec.label} vs ${dense.spec.label}`,
      what: `seconds per output byte warm → tmpfs: ${moe.tensors} vs ${dense.tensors} tensors`,
      seconds: NaN,
      outBytes: NaN,
      peakRss: null,
      target: { limit: 1.2, text: 'MoE ≤ 1.2 × dense', value },
      note: `ratio ${value.toFixed(2)} in wall time${cpuNote}`,
    });
  }
}
