/**
 * The fast-storage regime (issue 17): warm inputs, output on tmpfs, so that the engine and not the
 * disk decides. Each run is paired with its memory floor measured beside it: `cat` of both inputs
 * (from the page cache) plus `cp` of the run's own output shards into another tmpfs folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CachedPair } from './fixtures';
import { timeCommand, warm, type Timed } from './system';

export interface FastStorageSample {
  run: Timed;
  /** cat of both inputs + cp of the run's output, seconds, measured right after the run. */
  floorSeconds: number;
}

/** The tmpfs the outputs go to; null (with the reason) when there is none. */
export function tmpfsRoot(): { dir: string } | { reason: string } {
  const dir = '/dev/shm';
  try {
    const mounts = fs.readFileSync('/proc/mounts', 'utf8');
    if (!mounts.split('\n').some((line) => line.split(' ')[1] === dir && line.split(' ')[2] === 'tmpfs')) return { reason: `${dir} is not a tmpfs mount` };
  } catch {
    return { reason: 'no /proc/mounts to find a tmpfs' };
  }
  return { dir };
}

const OUTPUT_FOLDER = /^wm-bench-(?:fast|floor)-(\d+)$/;

/** Whether process `pid` is alive (EPERM: alive, another user's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the output folders that a bench killed before its cleanup left in `tmpfs` (a SIGKILL or a SIGTERM to the bench
 * alone, which unwinds nothing): those whose bench process is gone. Returns their names.
 */
export function removeStaleOutputs(tmpfs: string): string[] {
  const stale = fs.readdirSync(tmpfs).filter((name) => {
    const owner = OUTPUT_FOLDER.exec(name);
    return owner !== null && !alive(Number(owner[1]));
  });
  for (const name of stale) fs.rmSync(path.join(tmpfs, name), { recursive: true, force: true });
  return stale;
}

/**
 * `repeat` paired samples of `argsFor(out)` (a CLI run writing the model folder `out` on tmpfs)
 * against the memory floor. `outputBytes` must fit twice in the tmpfs (the output and its copy).
 */
export function fastStorageSamples(pair: CachedPair, tmpfs: string, repeat: number, argsFor: (out: string) => string[]): FastStorageSample[] {
  const out = path.join(tmpfs, `wm-bench-fast-${process.pid}`);
  const copy = path.join(tmpfs, `wm-bench-floor-${process.pid}`);
  const clean = () => [out, copy].forEach((d) => fs.rmSync(d, { recursive: true, force: true }));
  const samples: FastStorageSample[] = [];
  try {
    for (let i = 0; i < repeat; i++) {
      clean();
      warm(pair.files);
      const run = timeCommand(argsFor(out));
      const shards = fs
        .readdirSync(out)
        .filter((f) => f.endsWith('.safetensors'))
        .map((f) => path.join(out, f));
      fs.mkdirSync(copy);
      const read = warm(pair.files);
      const write = timeCommand(['cp', ...shards, copy]);
      samples.push({ run, floorSeconds: read.seconds + write.seconds });
    }
  } finally {
    clean();
  }
  return samples;
}
