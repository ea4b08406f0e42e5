/**
 * Lock files holding their run's pid and host (`PID HOST`, as the hub's blob locks), and on Linux a second line naming which
 * process that pid is (`process NAMESPACE BOOT START`, process-identity.ts): an output's whole-run and part locks
 * (engine/output-locks.ts) and the fixture folder's. This machine's lock that names its process is held while that very process
 * lives, at any age; one that does not (an earlier weightmix's, another OS's, another pid namespace's) is judged by its pid and
 * its age; another machine's (the parts of a --part job fill a shared folder from many) by its age alone: its holder touches it
 * every LOCK_TIMING.refreshMs, and one untouched for LOCK_TIMING.staleMs was left by a run that died (here, a pid that a restart
 * gave to another process).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { pidAlive } from './leftovers';
import { ownProcessIdentity, ProcessIdentity, processIdentity } from './process-identity';

/** A lock file still without a pid after this long was left by a process that died between creating and writing it. */
export const EMPTY_LOCK_STALE_MS = 10_000;

/** How often a holder touches its lock, and how long another machine's lock may go untouched before it counts as abandoned (tests shorten them). */
export const LOCK_TIMING = { refreshMs: 30_000, staleMs: 10 * 60_000 };

/**
 * A lock file's holder as the file says: its pid (NaN where it names none, or not yet), its host (undefined in a lock of an
 * earlier weightmix, which named none), and how long ago it was written.
 */
export interface LockHolder {
  pid: number;
  host: string | undefined;
  ageMs: number;
  /** Which process the pid was when the lock was made (its second line), where the lock says. */
  process?: ProcessIdentity;
  /** The file could not be read (another user's, 0600): judged as one without a pid. */
  unreadable?: boolean;
  /** Which file (inode) said so, and what: a take-over (takeOverLock) removes that one and no other. */
  judged: JudgedLock;
}

/** A lock file as it was judged: its inode and its text. */
export interface JudgedLock {
  ino: number;
  dev: number;
  text: string;
}

/** The holder `file` names, or undefined where there is no such file. */
export function readLockHolder(file: string): LockHolder | undefined {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (stat === undefined) return undefined;
  let text = '';
  let unreadable = false;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    unreadable = true; // or removed since the stat: no pid, judged by its age
  }
  // The pid, then the host name (the rest of the first line: a host name may hold a space); then which process, where said.
  const [first, ...rest] = text.trim().split('\n');
  const [, pid, host] = /^(\S*)\s*(.*)$/.exec(first)!;
  const named = rest.map((line) => /^process (\S+) (\S+) (\d+)$/.exec(line.trim())).find((m) => m !== null);
  const judged = { ino: stat.ino, dev: stat.dev, text };
  const holder: LockHolder = { pid: Number.parseInt(pid, 10), host: host.trim() || undefined, ageMs: Date.now() - stat.mtimeMs, judged };
  if (named) holder.process = { namespace: named[1], boot: named[2], start: named[3] };
  if (unreadable) holder.unreadable = true;
  return holder;
}

/** Whether a lock names another machine (parts of a --part job fill a shared folder from many): its pid means nothing here. */
export function onAnotherHost(holder: LockHolder): boolean {
  return holder.host !== undefined && holder.host !== os.hostname();
}

/**
 * Whether a lock's pid means nothing here: another machine's, or one of this host name made in another pid namespace (another
 * container's on a shared folder, where the lock says so): only its age can tell.
 */
function pidOfElsewhere(holder: LockHolder): boolean {
  if (onAnotherHost(holder)) return true;
  const own = ownProcessIdentity()?.namespace;
  return holder.process !== undefined && own !== undefined && holder.process.namespace !== own;
}

/**
 * Whether a holder still holds its lock: a live process (this one too) that touched it within LOCK_TIMING.staleMs, one still
 * writing its pid (EMPTY_LOCK_STALE_MS), or one on another machine, whose pid no process here can ask, that touched it within
 * LOCK_TIMING.staleMs.
 */
export function holderAlive(holder: LockHolder): boolean {
  if (pidOfElsewhere(holder)) return holder.ageMs < LOCK_TIMING.staleMs;
  if (Number.isNaN(holder.pid)) return holder.ageMs < EMPTY_LOCK_STALE_MS;
  const same = sameProcess(holder);
  if (same !== undefined) return same;
  // A live pid that has not touched its lock for that long is another process now: a container restarted under the same
  // hostname gives its first pids again (weightmix as pid 1 would otherwise hold a killed run's lock forever).
  return pidAlive(holder.pid) && holder.ageMs < LOCK_TIMING.staleMs;
}

/**
 * Whether a lock of this machine names a process that is gone: its pid not alive, or (where the lock says which process, in
 * this pid namespace) another process now. False where that cannot be told.
 */
export function holderGone(holder: LockHolder): boolean {
  if (pidOfElsewhere(holder) || Number.isNaN(holder.pid)) return false;
  return sameProcess(holder) === false || !pidAlive(holder.pid);
}

/**
 * Whether the lock's pid, of this pid namespace (pidOfElsewhere), is still the process that made it and has not exited (a zombie
 * holds nothing): undefined where the lock does not say which (an earlier weightmix's, another OS's) or /proc does not say now
 * (a process not ours to read).
 */
function sameProcess(holder: LockHolder): boolean | undefined {
  const made = holder.process;
  if (made === undefined || ownProcessIdentity() === undefined) return undefined;
  const now = processIdentity(holder.pid);
  if (now === undefined) return pidAlive(holder.pid) ? undefined : false;
  return !now.exited && now.namespace === made.namespace && now.boot === made.boot && now.start === made.start;
}

/** A refusal's account of a lock's holder: ` (pid N)`, ` (pid N on HOST)`, or nothing where it names no pid yet. */
export function holderNote(holder: LockHolder): string {
  if (Number.isNaN(holder.pid)) return '';
  return onAnotherHost(holder) ? ` (pid ${holder.pid} on ${holder.host})` : ` (pid ${holder.pid})`;
}

/** The refusal of a lock another run holds: `who` (with its holderNote) is writing `target`, and what to do about it. */
export function heldMessage(who: string, holder: LockHolder, file: string, target: string): string {
  return `${who}${holderNote(holder)} is writing ${target}${anotherHostHint(holder, file) || '; try again once it is done'}`;
}

/** What a lock this process makes holds: its pid and host, and which process that is where /proc says (the hub's blob locks say the same). */
export function ownLockText(): string {
  const id = ownProcessIdentity();
  return `${process.pid} ${os.hostname()}\n${id ? `process ${id.namespace} ${id.boot} ${id.start}\n` : ''}`;
}

/** What a refusal adds for a lock of another machine: when it counts as abandoned, and that its file may go sooner. */
export function anotherHostHint(holder: LockHolder, file: string): string {
  if (!onAnotherHost(holder)) return '';
  const minutes = Math.round(LOCK_TIMING.staleMs / 60_000);
  return `; if that run is gone, its lock counts as abandoned once untouched for ${minutes} minutes, or remove ${file}`;
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
 * Takes the lock `file` by creating it with this process's pid and host ('wx': one creator wins), judging an existing one by
 * `rules`, and touches it every LOCK_TIMING.refreshMs until releaseLock. An error creating it (not its existing) is thrown as it is.
 */
export async function takePidLock(file: string, rules: LockRules, attempts: number): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      const text = ownLockText();
      await fs.promises.writeFile(file, text, { flag: 'wx' });
      holdLock(file, text);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readLockHolder(file);
    if (holder === undefined) continue; // removed meanwhile: try again
    if (rules.held(holder)) throw rules.refuse(holder);
    // Not a plain removal: a second run that judged the same lock stale would remove the first one's fresh lock, and both write.
    await takeOverLock(file, holder.judged);
  }
  throw rules.contended();
}

/**
 * Removes a lock judged stale so that one of several runs that judged it takes it over (array jobs after a killed one): the lock
 * is renamed to this run's own name, which only one of them can do to one file, then checked to be the file judged. A fresh lock
 * renamed in a race (another run took over between this one's judgement and its rename) is linked back, as it was. Errors other
 * than the lock's being gone are thrown as they are. Returns whether it removed the lock judged (not: gone, or another's now).
 */
export async function takeOverLock(file: string, judged: JudgedLock): Promise<boolean> {
  const aside = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.stale`;
  try {
    await fs.promises.rename(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false; // another run moved it first
    throw e;
  }
  try {
    const st = await fs.promises.stat(aside);
    const same = st.ino === judged.ino && st.dev === judged.dev && (await fs.promises.readFile(aside, 'utf8')) === judged.text;
    // Where a third run holds a new lock by now, link fails and that one stands (RELIABILITY.md: where links fail otherwise).
    if (!same) await fs.promises.link(aside, file).catch(() => undefined);
    return same;
  } finally {
    await fs.promises.rm(aside, { force: true });
  }
}

/** This process's locks (which file each is, and its text: only that one is touched and removed) and the timers that touch them. */
const refreshing = new Map<string, { timer: NodeJS.Timeout; mine: JudgedLock }>();

/** Whether `file` is still the lock this process made there: its inode (a number a file system may give a new file) and its text. */
async function stillOurs(file: string, mine: JudgedLock): Promise<boolean> {
  const st = await fs.promises.stat(file).catch(() => undefined);
  if (st === undefined || st.ino !== mine.ino || st.dev !== mine.dev) return false;
  return (await fs.promises.readFile(file, 'utf8').catch(() => '')) === mine.text;
}

/**
 * Holds the lock `file` this process just made (`text` written to it): touches it every `refreshMs` while it is still that file,
 * until releaseLock. takePidLock calls it; the hub's blob locks (their own creation and waiting) too.
 */
export function holdLock(file: string, text: string, refreshMs: number = LOCK_TIMING.refreshMs): void {
  const made = fs.statSync(file);
  const mine = { ino: made.ino, dev: made.dev, text };
  clearInterval(refreshing.get(file)?.timer);
  const timer = setInterval(() => {
    const now = new Date();
    // A failed touch (the lock removed by hand) only lets another machine take it over sooner.
    void stillOurs(file, mine)
      .then((ours) => (ours ? fs.promises.utimes(file, now, now) : undefined))
      .catch(() => undefined);
  }, refreshMs);
  timer.unref();
  refreshing.set(file, { timer, mine });
}

/** Whether this process still holds `file` (holdLock): another run may have taken it over, or a user removed it. */
export async function stillHeld(file: string): Promise<boolean> {
  const held = refreshing.get(file);
  return held !== undefined && (await stillOurs(file, held.mine));
}

/** Ends this process's hold on `file` (holdLock) and removes it, unless another run has made its own there since; else nothing. */
export async function releaseLock(file: string): Promise<void> {
  const held = refreshing.get(file);
  if (held === undefined) return;
  clearInterval(held.timer);
  refreshing.delete(file);
  if (await stillOurs(file, held.mine)) await fs.promises.rm(file, { force: true });
}
