/**
 * An output's locks, beside it in its parent folder: `.NAME.weightmix.lock` for a whole run, `.NAME.part-I-of-N.weightmix.lock`
 * for each part of a --part job. Each holds its run's pid; a run takes its own and refuses while the other kind's is held.
 */
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { holderAlive, LockRules, readLockHolder, takePidLock } from '../leftovers';

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
    refuse: ({ pid }) =>
      new WeightmixError(
        'OutputLocked',
        pid === process.pid
          ? `this process is already writing ${target}`
          : `another weightmix run${Number.isNaN(pid) ? '' : ` (pid ${pid})`} is writing ${target}`,
      ),
    contended: () => new WeightmixError('OutputLocked', `cannot lock ${target}`),
  };
  await takePidLock(lockFile, rules, 2).catch((e: Error) => {
    throw e instanceof WeightmixError ? e : new WeightmixError('OutputError', `cannot create lock ${lockFile}: ${e.message}`);
  });
}

/** A part's lock: its output's stem (group 1), I and N. */
export const PART_LOCK = /^\.(.+)\.part-(\d+)-of-(\d+)\.weightmix\.lock$/;

/** The refusal of a run that would write an output another kind of run (whole, or a part of a --part job) is writing. */
export function partRunning(target: string, who: string, pid: number): WeightmixError {
  if (pid === process.pid) return new WeightmixError('OutputLocked', `this process is already writing ${target} (${who})`);
  return new WeightmixError('OutputLocked', `${who}${Number.isNaN(pid) ? '' : ` (pid ${pid})`} is writing ${target}; try again once it is done`);
}

/** Whether the lock `file` is held (holderAlive), and its pid. */
export function lockHolder(file: string): { held: boolean; pid: number } {
  const holder = readLockHolder(file);
  return { held: holder !== undefined && holderAlive(holder), pid: holder?.pid ?? NaN };
}

/** A part refuses while a whole run holds the output's own lock (the parts take theirs: refuseRunningParts is the other way). */
export function refuseWholeRun(lockFile: string, target: string): void {
  const { held, pid } = lockHolder(lockFile);
  if (held) throw partRunning(target, 'a whole run of weightmix', pid);
}
