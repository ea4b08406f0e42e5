/**
 * An output's locks, beside it in its parent folder: `.NAME.weightmix.lock` for a whole run, `.NAME.part-I-of-N.weightmix.lock`
 * for each part of a --part job. Each holds its run's pid and host; a run takes its own and refuses while the other kind's is held
 * (another machine's lock is always held: its pid means nothing here). A job's parts also take `.NAME.publish.weightmix.lock` in
 * turn, for the moment each checks the job's count file and publishes (waitForLock).
 */
import * as path from 'node:path';
import { abortError, WeightmixError } from '../errors';
import {
  anotherHostHint,
  heldMessage,
  holderAlive,
  holderNote,
  LOCK_TIMING,
  LockHolder,
  LockRules,
  onAnotherHost,
  readLockHolder,
  takePidLock,
} from '../pid-locks';

const LOCK_TAG = '.weightmix.lock';

/** The lock of the output whose leftovers carry `stem`: a whole run's, or (`lockName`, `part-I-of-N`) a part's. */
export function lockFileOf(parent: string, stem: string, lockName?: string): string {
  return path.join(parent, `.${stem}${lockName ? `.${lockName}` : ''}${LOCK_TAG}`);
}

/** Takes `lockFile` for `target`, refusing while another live run holds it. */
export async function takeLock(lockFile: string, target: string): Promise<void> {
  const rules: LockRules = {
    // A lock is created, then its pid written: one still without a pid is a run between the two (it was taken over at once,
    // and both runs then wrote the output) until EMPTY_LOCK_STALE_MS, as removeStale and the fixture and hub locks judge it.
    held: holderAlive,
    refuse: (holder) => lockedError(holder, lockFile, target),
    contended: () => new WeightmixError('OutputLocked', `cannot lock ${target}`),
  };
  await takePidLock(lockFile, rules, 2).catch((e: Error) => {
    throw e instanceof WeightmixError ? e : new WeightmixError('OutputError', `cannot create lock ${lockFile}: ${e.message}`);
  });
}

/** The refusal of `target` whose lock `holder` holds. */
function lockedError(holder: LockHolder, lockFile: string, target: string): WeightmixError {
  return new WeightmixError(
    'OutputLocked',
    ownLock(holder)
      ? `this process is already writing ${target}`
      : `another weightmix run${holderNote(holder)} is writing ${target}${anotherHostHint(holder, lockFile)}`,
  );
}

/** A part's lock: its output's stem (group 1), I and N. */
export const PART_LOCK = /^\.(.+)\.part-(\d+)-of-(\d+)\.weightmix\.lock$/;

/** The `lockName` of part I of N, which PART_LOCK reads back. */
export function partLockName(part: { index: number; count: number }): string {
  return `part-${part.index}-of-${part.count}`;
}

/** Whether a lock is this process's own (a pid alone, as an earlier weightmix wrote it, or with this host). */
function ownLock(holder: LockHolder): boolean {
  return holder.pid === process.pid && !onAnotherHost(holder);
}

/** The refusal of a run that would write an output another kind of run (whole, or a part of a --part job) is writing. */
export function partRunning(target: string, who: string, holder: LockHolder, lockFile: string): WeightmixError {
  if (ownLock(holder)) return new WeightmixError('OutputLocked', `this process is already writing ${target} (${who})`);
  return new WeightmixError('OutputLocked', heldMessage(who, holder, lockFile, target));
}

/** The lock `file`'s holder where it is held (holderAlive), else undefined. */
export function heldLock(file: string): LockHolder | undefined {
  const holder = readLockHolder(file);
  return holder !== undefined && holderAlive(holder) ? holder : undefined;
}

/** A part refuses while a whole run holds the output's own lock (the parts take theirs: refuseRunningParts is the other way). */
export function refuseWholeRun(lockFile: string, target: string): void {
  const holder = heldLock(lockFile);
  if (holder !== undefined) throw partRunning(target, 'a whole run of weightmix', holder, lockFile);
}

/** The lock a job's parts publish under, one at a time (output.ts's commitAll). */
export function publishLockOf(target: string): string {
  return lockFileOf(path.dirname(target), path.basename(target), 'publish');
}

/**
 * takeLock, waiting while another run holds the lock (a part publishing: a moment), until `signal` aborts or the wait outlasts
 * the time after which another machine's untouched lock is taken over anyway (a part that died while publishing there).
 */
export async function waitForLock(lockFile: string, target: string, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + LOCK_TIMING.staleMs + 60_000;
  for (;;) {
    try {
      await takeLock(lockFile, target);
      return;
    } catch (e) {
      if (!(e instanceof WeightmixError && e.code === 'OutputLocked') || Date.now() > deadline) throw e;
    }
    if (signal?.aborted) throw abortError('the merge was aborted before it was published', signal);
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80));
  }
}
