/**
 * What a run leaves behind while it works (a temporary folder, the folders it made for its output; its lock: pid-locks.ts) and how
 * a later run or its own cleanup judges and removes it: shared by the output transaction (engine/) and the fixture pair (fixtures/).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Whether the process that made a leftover still runs (one of another user's counts as running). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes `dir` and its parents up to `outermost` (the first folder a run created for its output), each only while empty. */
export function removeEmptyParents(dir: string, outermost: string | undefined): void {
  if (outermost === undefined) return;
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      fs.rmdirSync(d);
    } catch {
      return;
    }
    if (d === outermost || path.dirname(d) === d) return;
  }
}
