/**
 * What a run leaves behind while it works (a temporary folder, a lock, the folders it made for its output) and how a later run or
 * its own cleanup judges and removes it: shared by the output transaction (engine/) and the fixture pair (fixtures/).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A lock file still without a pid after this long was left by a process that died between creating and writing it. */
export const EMPTY_LOCK_STALE_MS = 10_000;

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

/**
 * A lock file's holder as the file says: its pid (NaN where it names none, or not yet), its host (undefined in a lock of an
 * earlier weightmix, which named none), and how long ago it was written.
 */
export interface LockHolder {
  pid: number;
  host: string | undefined;
  ageMs: number;
}

/** The holder `file` names, or undefined where there is no such file. */
export function readLockHolder(file: string): LockHolder | undefined {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (stat === undefined) return undefined;
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    // unreadable or removed since the stat: no pid, judged by its age
  }
  const [pid, host] = text.trim().split(/\s+/);
  return { pid: Number.parseInt(pid ?? '', 10), host: host || undefined, ageMs: Date.now() - stat.mtimeMs };
}

/** Whether a lock names another machine (parts of a --part job fill a shared folder from many): its pid means nothing here. */
export function onAnotherHost(holder: LockHolder): boolean {
  return holder.host !== undefined && holder.host !== os.hostname();
}

/**
 * Whether a holder still holds its lock: a live process (this one too), one still writing its pid (EMPTY_LOCK_STALE_MS), or
 * one on another machine, which no process here can judge (its lock stays until that run or the user removes it).
 */
export function holderAlive(holder: LockHolder): boolean {
  if (onAnotherHost(holder)) return true;
  return Number.isNaN(holder.pid) ? holder.ageMs < EMPTY_LOCK_STALE_MS : pidAlive(holder.pid);
}

/** A refusal's account of a lock's holder: ` (pid N)`, ` (pid N on HOST)`, or nothing where it names no pid yet. */
export function holderNote({ pid, host }: LockHolder): string {
  if (Number.isNaN(pid)) return '';
  return host !== undefined && host !== os.hostname() ? ` (pid ${pid} on ${host})` : ` (pid ${pid})`;
}

/** What a refusal adds for a lock of another machine: that run's end is the only one that frees it. */
export function anotherHostHint(holder: LockHolder, file: string): string {
  return onAnotherHost(holder) ? `; if that run is no longer running, remove ${file}` : '';
}

/** How a lock's caller judges a holder and words a refusal. */
export interface LockRules {
  /** Whether the holder still holds it; one that does not (its run died) is removed and the lock taken over. */
  held(holder: LockHolder): boolean;
  /** The error for a lock that is held. */
  refuse(holder: LockHolder): Error;
  /** The error after `attempts` tries lost to others taking the lock over at the same time. */
  contended(): Error;
}

/**
 * Takes the lock `file` by creating it with this process's pid and host ('wx': one creator wins; the hub's blob locks say the
 * same), judging an existing one by `rules`.
 * An error creating it (not its existing) is thrown as it is.
 */
export async function takePidLock(file: string, rules: LockRules, attempts: number): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      await fs.promises.writeFile(file, `${process.pid} ${os.hostname()}\n`, { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readLockHolder(file);
    if (holder === undefined) continue; // removed meanwhile: try again
    if (rules.held(holder)) throw rules.refuse(holder);
    await fs.promises.rm(file, { force: true });
  }
  throw rules.contended();
}
