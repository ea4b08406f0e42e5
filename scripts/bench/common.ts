/** What every bench section shares: the rows and notes of the report, the CLI command lines, --repeat and medians. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CachedPair } from './fixtures';
import type { Timed } from './system';

export const ROOT = path.resolve(__dirname, '../..');
export const CLI = path.join(ROOT, 'bin/weightmix.js');

export interface Row {
  section: string;
  pair: string;
  what: string;
  seconds: number;
  outBytes: number;
  peakRss: number | null;
  /** The floor this row is judged against, and its seconds. */
  floor?: { label: string; seconds: number };
  /** × floor when it is not seconds / floor.seconds (the median of paired ratios). */
  ratio?: number;
  target?: { limit: number; text: string; value?: number };
  note?: string;
}

export const rows: Row[] = [];
export const notes: string[] = [];
export const log = (line: string) => process.stderr.write(`${line}\n`);

export function gb(bytes: number): string {
  return (bytes / 1e9).toFixed(2);
}

export function cli(args: string[]): string[] {
  return [process.execPath, CLI, ...args, '--quiet'];
}

export function interpolateArgs(pair: CachedPair, out: string, extra: string[] = []): string[] {
  return cli(['interpolate', '--instruct', pair.instruct, '--thinking', pair.thinking, '--lambda', '0.8', '-o', out, ...extra]);
}

export function rmOut(dir: string) {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** --repeat: each floor and each end-to-end case is measured this many times and reported by its median. */
export let repeat = 1;

/** The run with the median time of `repeat` runs of `measure` (the largest peak RSS of them). */
export function medianOf(measure: () => Timed): Timed {
  return medianRun(Array.from({ length: repeat }, measure));
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs summed up: the median time and CPU time, the largest peak RSS, the output of the run nearest the median. */
export function medianRun(runs: Timed[]): Timed {
  const seconds = median(runs.map((r) => r.seconds));
  const nearest = runs.reduce((a, b) => (Math.abs(b.seconds - seconds) < Math.abs(a.seconds - seconds) ? b : a));
  const rss = runs.map((r) => r.peakRss).filter((r): r is number => r !== null);
  const cpu = runs.map((r) => r.cpuSeconds).filter((r): r is number => r !== null);
  return { ...nearest, seconds, peakRss: rss.length > 0 ? Math.max(...rss) : null, cpuSeconds: cpu.length === runs.length ? median(cpu) : null };
}

/**
 * `repeat` times: the floor and the run back to back, so that both see the disk in the same state
 * (this virtio disk's direct-write speed drifts by 30% within minutes, and a burst allowance favours
 * whichever writes first: the order alternates, floor first on even repetitions). The verdict is
 * the median of the per-pair ratios; the times shown are the medians.
 */
export function pairedWithFloor(measureFloor: () => number, measureRun: () => Timed): { run: Timed; floorSeconds: number; ratio: number } {
  const samples = Array.from({ length: repeat }, (_, i) => {
    if (i % 2 === 0) {
      const floorSeconds = measureFloor();
      return { floorSeconds, run: measureRun() };
    }
    const run = measureRun();
    return { floorSeconds: measureFloor(), run };
  });
  return {
    run: medianRun(samples.map((x) => x.run)),
    floorSeconds: median(samples.map((x) => x.floorSeconds)),
    ratio: median(samples.map((x) => x.run.seconds / x.floorSeconds)),
  };
}

/** " (median of 3)" when --repeat asks for repeats. */
export const medianNote = () => (repeat > 1 ? ` (median of ${repeat})` : '');

/** Sets --repeat (main parses it). */
export function setRepeat(n: number) {
  repeat = n;
}

export function formatTable(): string {
  const header = ['section', 'pair', 'what', 'wall s', 'GB', 'GB/s', 'peak RSS MB', 'floor s', '× floor', 'target', 'met'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const ratio = r.ratio ?? (r.floor ? r.seconds / r.floor.seconds : NaN);
    let met = '';
    let ratioText = Number.isFinite(ratio) ? ratio.toFixed(2) : '';
    if (r.target) {
      const value = r.target.value ?? ratio;
      if (r.target.text.startsWith('≥')) met = value >= r.target.limit ? 'yes' : `NO (${value.toFixed(2)})`;
      else if (r.target.text.startsWith('weightmix')) met = value >= r.target.limit ? 'yes' : `NO (${value.toFixed(1)}×)`;
      else met = value <= r.target.limit ? 'yes' : `NO (${r.target.limit === 1.5e9 ? `${(value / 1e9).toFixed(2)} GB` : `${value.toFixed(2)}×`})`;
      if (r.target.limit === 1.5e9) ratioText = '';
    }
    lines.push(
      `| ${[
        r.section,
        r.pair,
        r.what + (r.note ? ` — ${r.note}` : ''),
        Number.isFinite(r.seconds) ? r.seconds.toFixed(2) : '',
        Number.isFinite(r.outBytes) ? gb(r.outBytes) : '',
        Number.isFinite(r.seconds) && Number.isFinite(r.outBytes) ? (r.outBytes / 1e9 / r.seconds).toFixed(2) : '',
        r.peakRss === null ? '' : (r.peakRss / 2 ** 20).toFixed(0),
        r.floor ? r.floor.seconds.toFixed(2) : '',
        ratioText,
        r.target?.text ?? '',
        met,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}
