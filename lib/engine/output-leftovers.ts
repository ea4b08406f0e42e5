/**
 * What an output transaction (output.ts) leaves beside its target while it runs, and how a later run judges and removes it once its
 * run is gone: temporary, swapped-out and working folders, named with the run's pid and its host's mark, and locks, which name
 * both inside (pid-locks.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { makeFolders } from '../make-folders';
import { pidAlive, removeEmptyParents } from '../leftovers';
import { holderAlive, readLockHolder, takeOverLock } from '../pid-locks';
import { lockFileOf } from './output-locks';

const TEMP_TAG = '.weightmix-tmp-';
const OLD_TAG = '.weightmix-old-';
const HOST_HASH = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
/**
 * This host's mark in its folders' names, after the pid: `h` in a part's temporary folder, `w` in a whole run's temporary and
 * swapped-out folders and in a working folder. Another machine's pid means nothing here: only this host's dead runs are judged by
 * their pid.
 */
const PART_HOST_TAG = `h${HOST_HASH}`;
const WHOLE_HOST_TAG = `w${HOST_HASH}`;
/** Another host's mark: a letter and 8 hex digits (an untagged folder's suffix, from before the marks, is hex or 6 letters and digits). */
const HOST_MARK = /^([hw])([0-9a-f]{8})/;
/** The longest output name (UTF-8 bytes) its leftovers' names carry whole: they add up to ~60 bytes, and a name has 255 at most (NAME_MAX). */
const LEFTOVER_STEM_MAX = 180;

/** How an output name appears in its leftovers' names: whole, or past LEFTOVER_STEM_MAX bytes its start, `~` and a hash of all of it. */
export function leftoverStem(base: string): string {
  if (Buffer.byteLength(base) <= LEFTOVER_STEM_MAX) return base;
  let start = '';
  for (const ch of base) {
    if (Buffer.byteLength(start + ch) > LEFTOVER_STEM_MAX - 20) break;
    start += ch;
  }
  return `${start}~${createHash('sha256').update(base).digest('hex').slice(0, 12)}`;
}

/** Whether a name in a leftover is leftoverStem's shortened form (it ends in `~` and the hash), not a whole output name. */
const isShortenedStem = (name: string) => /~[0-9a-f]{12}$/.test(name);

/** The temporary folder's name for an output of stem `stem`: this process's pid, this host's mark (a part's or a whole run's), a random suffix. */
export function tempFolderName(stem: string, part: boolean): string {
  return `.${stem}${TEMP_TAG}${process.pid}-${part ? PART_HOST_TAG : WHOLE_HOST_TAG}${randomBytes(4).toString('hex')}`;
}

/** The folder an existing output is moved aside to while a --force run publishes its new one (this process's pid, this host's mark). */
export function oldFolderName(stem: string): string {
  return `.${stem}${OLD_TAG}${process.pid}-${WHOLE_HOST_TAG}`;
}

// What a run leaves beside an output NAME (its leftoverStem): `.NAME.weightmix-tmp-PID-…`, `.NAME.weightmix-old-PID-…`, `.NAME.weightmix-lora-PID-…`, `.NAME.weightmix-vocab-PID-…`
// (a recipe's adapted tensors, recipes/lora/adapted-models.ts), `.NAME[.part-I-of-N|.publish].weightmix.lock`.
const LEFTOVER = /^\.(.+?)(?:\.weightmix-(tmp|old|lora|vocab)-(\d+)(?:-([0-9A-Za-z]+))?|(?:\.part-\d+-of-\d+|\.publish)?\.weightmix\.lock)$/;

/** A working folder's name beside `output`, before mkdtemp's random letters: this process's pid and this host's mark. */
function workingFolderName(output: string, kind: 'lora' | 'vocab'): string {
  return `.${leftoverStem(path.basename(output))}.weightmix-${kind}-${process.pid}-${WHOLE_HOST_TAG}`;
}

/**
 * A working folder beside an output (a recipe's adapted tensors, its rebuilt vocabulary): in the output's folder, made for it
 * where it is missing (the same file system as the output, which has room for a model), named as a leftover, so that the next run
 * on the output removes it if this process is killed. `remove` deletes it, and the folders made for it that stayed empty.
 */
export async function workingFolderBeside(output: string, kind: 'lora' | 'vocab'): Promise<{ dir: string; remove(): Promise<void> }> {
  const parent = path.dirname(path.resolve(output));
  const created = await makeFolders(parent);
  const dir = await fs.promises.mkdtemp(path.join(parent, workingFolderName(output, kind)));
  return {
    dir,
    remove: async () => {
      await fs.promises.rm(dir, { recursive: true, force: true });
      removeEmptyParents(parent, created);
    },
  };
}

/**
 * Whether a folder another host marked (`mark`: its suffix's HOST_MARK match) belongs to a run that may still be going: a part's
 * always (its part lock is not named in the folder), a working folder always (it outlives its run's lock: removed after the
 * output is published), a whole run's temporary or swapped-out folder while its output's lock is held there (pid-locks.ts's
 * holderAlive: touched lately), since the run takes that lock before it makes the folder and gives it up only after publishing or
 * removing it. Output `base` is this run's, and its lock is ours.
 */
function foreignRunAlive(mark: RegExpExecArray, kind: string, parent: string, named: string, isBase: boolean): boolean {
  if (mark[1] === 'h' || (kind !== 'tmp' && kind !== 'old')) return true;
  if (isBase) return false;
  const holder = readLockHolder(lockFileOf(parent, named));
  return holder !== undefined && holderAlive(holder);
}

/**
 * What a part judges beside its shared output (other machines' parts fill it too): this host's parts' temporary folders, and this
 * host's working folders (a recipe part's adapted tensors and rebuilt vocabularies: a process's own, removed only after its
 * output is published).
 */
function ownHostPartLeftover(kind: string | undefined, suffix: string | undefined): boolean {
  if (kind === 'tmp') return suffix?.startsWith(PART_HOST_TAG) === true;
  return (kind === 'lora' || kind === 'vocab') && suffix?.startsWith(WHOLE_HOST_TAG) === true;
}

/**
 * Removes the temporary folders, swapped-out folders and locks left beside `base` (and beside the
 * outputs `siblings` names: a sweep passes every `lambda-*`, so a killed sweep's leftovers go even
 * for λ values the next one does not write) by runs that are no longer alive. A swapped-out folder
 * whose output is missing is the user's model and is put back instead. `shared` (a part, whose folder other machines' parts
 * fill too): only this host's dead parts' temporary folders and dead runs' working folders go. Another host's folders are judged by their output's lock, or left.
 */
export async function removeStale(
  parent: string,
  base: string,
  siblings: ((name: string) => boolean) | undefined,
  notice: ((m: string) => void) | undefined,
  shared: boolean,
): Promise<void> {
  const stem = leftoverStem(base);
  for (const entry of await fs.promises.readdir(parent)) {
    const match = LEFTOVER.exec(entry);
    if (match === null || (match[1] !== stem && siblings?.(match[1]) !== true)) continue;
    const [, named, kind, pidText, suffix] = match;
    const name = named === stem ? base : named;
    if (shared && !ownHostPartLeftover(kind, suffix)) continue;
    const mark = kind !== undefined && suffix !== undefined ? HOST_MARK.exec(suffix) : null;
    const foreign = mark !== null && mark[2] !== HOST_HASH;
    if (foreign && foreignRunAlive(mark, kind!, parent, named, named === stem)) continue;
    const leftover = path.join(parent, entry);
    // A lock names its pid and host inside, and is judged as takeLock judges it (pid-locks.ts's holderAlive: a live run here, one
    // still writing its pid, or another machine's touched lately); a folder names its pid.
    const lock = kind === undefined ? readLockHolder(leftover) : undefined;
    if (kind === undefined && lock === undefined) continue; // removed meanwhile
    const pid = lock?.pid ?? Number.parseInt(pidText!, 10);
    // This process holds base's lock, so its own folders beside base are an earlier run's; its lock,
    // and anything beside a sibling, may belong to a transaction still running here.
    // A working folder of this process is in use: another merge of this process (the API runs several at once) made it.
    // A part holds its own part's lock only: another part of this process may be running beside it.
    const ownEarlier = !shared && pid === process.pid && name === base && (kind === 'tmp' || kind === 'old');
    const live = foreign ? false : lock !== undefined ? holderAlive(lock) : !ownEarlier && (pid === process.pid || pidAlive(pid));
    if (live) continue;
    const target = path.join(parent, name);
    // A sibling's shortened name (leftoverStem) does not say which output to put back: its old folder stays.
    if (kind === 'old' && name !== base && isShortenedStem(name)) continue;
    if (kind === 'old' && !fs.existsSync(target)) {
      // A --force run died between moving the old output aside and publishing the new one: the old one is the user's model.
      // Another run that judged it dead too may have put it back first (a sibling's lock is not held here).
      const restored = await fs.promises.rename(leftover, target).then(
        () => true,
        (e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') return false;
          throw e;
        },
      );
      if (!restored) continue;
      notice?.(`restored ${target} from ${entry}, left by an interrupted --force replacement`);
      continue;
    }
    // A lock is taken over (pid-locks.ts): another run that judged it stale too may have made its own there by now.
    if (lock !== undefined) {
      if (!(await takeOverLock(leftover, lock.judged))) continue;
    } else {
      await fs.promises.rm(leftover, { recursive: true, force: true });
    }
    notice?.(`removed ${leftover} left by an interrupted run`);
  }
}
