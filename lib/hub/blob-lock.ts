/**
 * One lock file per blob, so that two processes downloading the same repo never write one blob twice:
 * `open(…, 'wx')` creates it or fails. The holder touches it every `refreshMs`; a lock is taken over
 * when its process is gone (same host: its pid dead, or another process's where the lock names which, pid-locks.ts) or when
 * it has not been touched for `staleMs` (another host: a container killed while it downloaded; this host: its pid now
 * another process's, after a restart, or a download stopped that long).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { cacheFsError, cacheWrite } from './cache';
import { makeFolders } from '../make-folders';
import { EMPTY_LOCK_STALE_MS, holderGone, holdLock, JudgedLock, LockHolder, ownLockText, readLockHolder, releaseLock, takeOverLock } from '../pid-locks';

const POLL_MS = 100;

/** How a lock is kept fresh, judged stale, and waited for (tests shorten them). */
export interface LockTiming {
  /** The holder touches its lock file this often. */
  refreshMs: number;
  /** A lock of another host untouched this long is taken over. */
  staleMs: number;
  /** A waiter repeats its notice this often. */
  noticeMs: number;
}

export const LOCK_TIMING: LockTiming = { refreshMs: 30_000, staleMs: 10 * 60_000, noticeMs: 60_000 };

/** Runs `fn` holding the lock; `onWait` is told (with the seconds waited so far) while another holds it. */
export async function withBlobLock<T>(
  lockFile: string,
  onWait: (waitedSeconds: number) => void,
  signal: AbortSignal | undefined,
  fn: () => Promise<T>,
  timing: LockTiming = LOCK_TIMING,
): Promise<T> {
  await cacheWrite(path.dirname(lockFile), () => makeFolders(path.dirname(lockFile)));
  const started = Date.now();
  let lastNotice = -Infinity;
  const text = ownLockText();
  while (!(await tryLock(lockFile, text))) {
    if (signal?.aborted) throw new WeightmixError('Aborted', 'the download was aborted');
    const stale = staleLock(lockFile, timing.staleMs);
    if (stale) {
      // pid-locks.ts's take-over: one waiter of several (array jobs on a shared cache after a killed one) takes it.
      await takeOverLock(lockFile, stale).catch((e: unknown) => {
        throw cacheFsError(e, lockFile);
      });
      continue;
    }
    if (Date.now() - lastNotice >= timing.noticeMs) {
      lastNotice = Date.now();
      onWait(Math.round((lastNotice - started) / 1000));
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  // The touch that tells waiters on other hosts this holder is alive (pid-locks.ts: only while it is still this lock, which the
  // release alone removes); a failed touch only risks a take-over.
  holdLock(lockFile, text, timing.refreshMs);
  try {
    return await fn();
  } finally {
    await releaseLock(lockFile);
  }
}

/** Creates the lock with this process's pid and host (`text`); false when another holds it. A failed write leaves no lock behind. */
async function tryLock(lockFile: string, text: string): Promise<boolean> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(lockFile, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw cacheFsError(e, lockFile);
  }
  try {
    await fh.writeFile(text);
    await fh.close();
    return true;
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(lockFile, { force: true });
    throw cacheFsError(e, lockFile);
  }
}

/**
 * The lock file, if it is stale: untouched for staleMs (any host: a live holder touches it; here, a live pid is then another
 * process, or a download stopped that long, whose blob is checked by its hash before it lands), its holder gone (this host:
 * pid-locks.ts's holderGone), or empty for long; else null.
 */
function staleLock(lockFile: string, staleMs: number): JudgedLock | null {
  let holder: LockHolder | undefined;
  try {
    holder = readLockHolder(lockFile);
  } catch {
    return null; // its folder unreadable: the wait goes on (tryLock reports what stops it)
  }
  // One this process cannot read (another user's, 0600) is waited for: a take-over could not check what it moves.
  if (holder === undefined || holder.unreadable) return null;
  if (Number.isNaN(holder.pid)) return holder.ageMs > EMPTY_LOCK_STALE_MS ? holder.judged : null;
  return holder.ageMs > staleMs || holderGone(holder) ? holder.judged : null;
}
