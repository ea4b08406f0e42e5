/**
 * The output transaction: a model is written into a temporary folder beside its target, synced,
 * and published with one rename. A failure or abort removes the temporary folder; `--force`
 * replaces an existing output only once the new one is complete. An advisory lock beside the
 * target stops a second run on the same output, and leftovers of a killed run are cleaned up.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { syncDir, syncTree } from '../durable-files';
import { makeFolders } from '../make-folders';
import { abortError, usageError, WeightmixError } from '../errors';
import { removeEmptyParents } from '../leftovers';
import { releaseLock, stillHeld } from '../pid-locks';
import { refuseForcedNonModel } from '../force-target';
import { isAtOrInside } from '../path-inside';
import { leftoverStem, oldFolderName, removeStale, tempFolderName } from './output-leftovers';
import { heldLock, lockFileOf, PART_LOCK, partLockName, partRunning, publishLockOf, refuseWholeRun, takeLock, waitForLock } from './output-locks';
import {
  type JobPart,
  partsFileText,
  PARTS_FILE,
  refuseForeignFiles,
  refuseOtherPartJob,
  removeForeignFiles,
  removePartsFileWhenComplete,
} from './part-target';

/** begin's options for part I of N of a --part job: publish into the shared target, under the part's own lock (a whole run: neither). */
export function partBeginOptions(part: { index: number; count: number } | undefined): Pick<BeginOptions, 'mergeInto' | 'lockName'> {
  return part ? { mergeInto: true, lockName: partLockName(part) } : {};
}

export interface BeginOptions {
  force?: boolean;
  /** Publish file by file into a shared target folder (one part of a `--part I/N` job array). */
  mergeInto?: boolean;
  /** Distinguishes the lock of one part from another's (e.g. `part-2-of-8`). */
  lockName?: string;
  /** Called with a one-line notice (stale leftovers removed, …). */
  notice?: (message: string) => void;
  /** Other outputs beside the target that belong to the same kind of run (a sweep's `lambda-*`): their stale leftovers are removed too. */
  siblings?: (name: string) => boolean;
  /** Whether to look for stale leftovers at all (default true): a sweep's first target does, for all of them (once, not per λ). */
  removeStale?: boolean;
  /**
   * Whether a whole run refuses here while a --part job holds a lock on the target (default true). A sweep and a batch pass
   * false and call refuseRunningParts once all their targets are locked: one listing of the folder, not one per output.
   */
  checkParts?: boolean;
  /** Files and folders the run reads: the target may be none of them and hold none (a --force swap would delete it). */
  reads?: readonly string[];
}

export class OutputTransaction {
  private finished = false;
  /** A part's: every shard the whole job writes (engine/part-target.ts), set by `partOf` once the plan is made. */
  private jobShards: ReadonlySet<string> = new Set();
  /** A part's: which part of how many, of which recipe (`partOf`). */
  private part: JobPart | undefined;

  private constructor(
    readonly target: string,
    readonly tempDir: string,
    private readonly lockFile: string,
    private readonly force: boolean,
    private readonly mergeInto: boolean,
    /** The outermost folder this transaction created above the target, removed again if it aborts while empty. */
    private readonly createdParent: string | undefined,
  ) {}

  static async begin(targetPath: string, options: BeginOptions = {}): Promise<OutputTransaction> {
    const target = path.resolve(targetPath);
    const parent = path.dirname(target);
    const base = path.basename(target);
    const stem = leftoverStem(base);
    refuseInputs(targetPath, options.reads ?? []);
    const createdParent = await makeFolders(parent).catch((e) => {
      throw new WeightmixError('OutputError', `cannot create ${parent}: ${whyMkdirFailed(parent, e as Error)}`);
    });
    const lockFile = lockFileOf(parent, stem, options.lockName);
    await takeLock(lockFile, target);
    try {
      if (options.lockName !== undefined) refuseWholeRun(lockFileOf(parent, stem), target);
      else if (options.checkParts !== false) refuseRunningParts([target]);
      // Parts on other machines share the folder: of theirs, only this host's temporaries are ours to judge (output-leftovers.ts).
      const shared = options.mergeInto === true;
      if (options.removeStale !== false) await removeStale(parent, base, options.siblings, options.notice, shared);
      OutputTransaction.refuseExisting(targetPath, options.force, shared);
      const tempDir = path.join(parent, tempFolderName(stem, shared));
      await fs.promises.mkdir(tempDir).catch((e: Error) => {
        throw new WeightmixError('OutputError', `cannot create a temporary folder beside ${targetPath}: ${e.message}`);
      });
      return new OutputTransaction(target, tempDir, lockFile, options.force ?? false, options.mergeInto ?? false, createdParent);
    } catch (e) {
      await releaseLock(lockFile);
      removeEmptyParents(parent, createdParent);
      throw e;
    }
  }

  /** Refuses an output that is or holds one of `reads` (a --force swap would delete it): begin asks for the inputs known then. */
  static refuseInputs(targetPath: string, reads: readonly string[]): void {
    refuseInputs(targetPath, reads);
  }

  /**
   * Refuses an existing output without `force`: begin does, and a merge asks first, before its statistics passes (minutes on a large model).
   * `shared`: a --part job's target, which other parts fill: only what can never be a model folder is refused (a file, a link to nothing).
   * `reads`: the inputs known so far, refused first (a target holding one is named as such, not as a folder without a model).
   */
  static refuseExisting(targetPath: string, force: boolean | undefined, shared = false, reads: readonly string[] = []): void {
    refuseInputs(targetPath, reads);
    // --force replaces a model folder; a file there is the user's, whatever it holds (a typo'd -o model.safetensors).
    const resolved = path.resolve(targetPath);
    let existing: fs.Stats | undefined;
    try {
      existing = fs.statSync(resolved, { throwIfNoEntry: false });
    } catch (e) {
      // A file on the way (ENOTDIR), a loop of links, a name too long: no output can be there.
      throw new WeightmixError('OutputError', `cannot use ${targetPath} as the output: ${(e as Error).message}`);
    }
    // A link's target as the link names it where it leads nowhere, else the folder it leads to (`.` would say little).
    const isLink = fs.lstatSync(resolved, { throwIfNoEntry: false })?.isSymbolicLink() === true;
    const link = !isLink ? null : existing === undefined ? fs.readlinkSync(resolved) : fs.realpathSync(resolved);
    // A link to nothing: stat sees no output, and the publishing rename would fail only after the whole merge.
    if (link !== null && existing === undefined) {
      throw new WeightmixError(
        'OutputError',
        `output ${targetPath} is a symbolic link to ${link}, which does not exist; remove the link or choose another output path`,
      );
    }
    // --force would replace the link, not the folder it names: the new model would land on the link's disk and the old one stay.
    if (link !== null && existing?.isDirectory() && force && !shared) {
      throw new WeightmixError(
        'OutputExists',
        `output ${targetPath} is a symbolic link to ${link}: --force replaces a model folder, never a link; remove the link or choose another output path`,
      );
    }
    if (existing && !existing.isDirectory()) {
      throw new WeightmixError(
        'OutputExists',
        `output ${targetPath} is a file, not a model folder: it is never replaced, not even with --force; choose another output path`,
      );
    }
    // With --force, or before a hint to use it: a folder it would not replace is refused for that reason.
    if (existing && (force || (!shared && link === null))) refuseForcedNonModel(`output ${targetPath}`, resolved, { marks: [PARTS_FILE] });
    if (!force && existing && !shared) {
      throw new WeightmixError(
        'OutputExists',
        link === null
          ? `output ${targetPath} already exists (use --force, or force: true in the API, to replace it once the new one is complete)`
          : `output ${targetPath} already exists: a symbolic link to the folder ${link} (--force replaces a model folder, never a link: remove the link or choose another output path)`,
      );
    }
  }

  /**
   * Syncs every file and publishes the folder with one rename (swapping out an old one under --force);
   * an abort that arrives before the rename still stops it.
   */
  async commit(signal?: AbortSignal): Promise<void> {
    await OutputTransaction.commitAll([this], signal);
  }

  /**
   * Aborts several outputs (a batch's, a sweep's) latest first, since the first may have created the folder that holds the
   * others; each one even where another fails to (its lock is released whatever fails), so that the merge's error is reported.
   */
  static async abortAll(txs: readonly OutputTransaction[]): Promise<void> {
    for (const tx of [...txs].reverse()) await tx.abort().catch(() => {});
  }

  /**
   * Publishes several outputs (a batch's, a sweep's) all or none: every folder synced first, so that an abort or a
   * failed sync publishes none; every target checked for a folder that appeared meanwhile; then each renamed into place,
   * a rename that still fails putting back those before it; old folders (--force) deleted once all are in place. A
   * part's per-file publish into a shared target (`mergeInto`) is not put back: other parts' files live there too.
   */
  static async commitAll(txs: readonly OutputTransaction[], signal?: AbortSignal): Promise<void> {
    if (txs.some((tx) => tx.finished)) throw new Error('internal: transaction already finished');
    // The native engine already synced the shards; sidecars and index are small.
    for (const tx of txs) await syncTree(tx.tempDir);
    if (signal?.aborted) throw abortError('the merge was aborted before it was published', signal);
    // A job's parts publish one at a time, each checking the job's count file once those before it put theirs in: two parts of
    // different counts started together both passed the check, and both published.
    const publishing = await lockPublishing(
      txs.filter((tx) => tx.mergeInto).map((tx) => tx.target),
      signal,
    );
    try {
      await OutputTransaction.publishChecked(txs);
    } finally {
      for (const lock of publishing) await releaseLock(lock);
    }
  }

  /** commitAll's publishing, once its parts hold their publish locks. */
  private static async publishChecked(txs: readonly OutputTransaction[]): Promise<void> {
    for (const tx of txs) await tx.checkTarget();
    const published: { tx: OutputTransaction; old: string | null }[] = [];
    try {
      for (const tx of txs) {
        if (tx.mergeInto) await tx.commitInto();
        else published.push({ tx, old: await tx.publish() });
      }
    } catch (e) {
      // Latest first, each folder back to its temporary name and the old one (--force) back in place; one that cannot be
      // put back does not stop the others, and the first error is the one reported.
      for (const { tx, old } of published.reverse()) await tx.unpublish(old).catch(() => {});
      throw e;
    }
    // Every output is in place now: a sync that fails below is reported, but publishes, removes or puts back nothing more.
    for (const { tx } of published) tx.finished = true;
    let unsynced: Error | undefined;
    let unremoved: unknown;
    for (const { tx, old } of published) {
      await syncDir(path.dirname(tx.target)).catch((e: Error) => (unsynced ??= e));
      // Every lock released, whatever fails: a lock left here would be kept fresh for as long as this process lives.
      try {
        if (old) await fs.promises.rm(old, { recursive: true, force: true });
      } catch (e) {
        unremoved ??= e;
      } finally {
        await releaseLock(tx.lockFile);
      }
    }
    const failures = [
      ...(unsynced ? [`a folder holding them could not be synced to disk: ${unsynced.message}`] : []),
      ...(unremoved !== undefined ? [`a replaced model's old folder could not be removed: ${String((unremoved as Error).message ?? unremoved)}`] : []),
    ];
    if (failures.length > 0) {
      throw new WeightmixError('OutputError', `the outputs are published, but ${failures.join('; and ')}`, { cause: unsynced ?? unremoved });
    }
  }

  /**
   * A part's: the shards every part of its job writes, so that its shared target is told from another model, and its part count
   * and recipe, recorded in the target until the job is complete (engine/part-target.ts). A target that another job is filling (of
   * another count, or of the same count and another recipe) is refused here, before the merge, and again before publishing.
   */
  partOf(shards: readonly string[], part: JobPart): void {
    refuseOtherPartJob(this.target, part, this.force);
    this.jobShards = new Set(shards);
    this.part = part;
    fs.writeFileSync(path.join(this.tempDir, PARTS_FILE), partsFileText(part));
  }

  /** Refuses a target that appeared while merging (without --force): before any output of the run is published. */
  private async checkTarget(): Promise<void> {
    // A run stopped past the stale time (Ctrl-Z, a sleeping machine) finds its lock taken over: another run may be writing
    // this output now, so this one publishes nothing.
    if (!(await stillHeld(this.lockFile))) {
      throw new WeightmixError(
        'OutputLocked',
        `this run's lock on ${this.target} (${this.lockFile}) was removed or taken over while it merged (a run stopped for longer than a lock's stale time loses it); nothing was published: run again`,
      );
    }
    if (this.mergeInto && this.part) refuseOtherPartJob(this.target, this.part, this.force);
    if (this.force) return;
    if (this.mergeInto) await refuseForeignFiles(this.target, this.tempDir, this.jobShards);
    else if (fs.existsSync(this.target)) throw this.appeared();
  }

  private appeared(): WeightmixError {
    return new WeightmixError('OutputExists', `output ${this.target} appeared while merging; not replacing it`);
  }

  /** Renames the folder into place, an existing one (--force) first aside; returns where that one went. */
  private async publish(): Promise<string | null> {
    let old: string | null = null;
    if (fs.existsSync(this.target)) {
      // checkTarget ran before any rename; a folder that appeared since is not ours to replace either.
      if (!this.force) throw this.appeared();
      refuseForcedNonModel(`output ${this.target}`, this.target, { marks: [PARTS_FILE] });
      old = path.join(path.dirname(this.target), oldFolderName(leftoverStem(path.basename(this.target))));
      await fs.promises.rename(this.target, old).catch((e: Error) => {
        throw new WeightmixError('OutputError', `cannot move ${this.target} aside to replace it: ${e.message}`);
      });
    }
    try {
      await fs.promises.rename(this.tempDir, this.target);
    } catch (e) {
      if (old) await fs.promises.rename(old, this.target);
      throw new WeightmixError('OutputError', `cannot publish ${this.target}: ${(e as Error).message}`);
    }
    return old;
  }

  /** publish() undone: the folder back to its temporary name (abort() then removes it), the old one back in place. */
  private async unpublish(old: string | null): Promise<void> {
    await fs.promises.rename(this.target, this.tempDir);
    if (old) await fs.promises.rename(old, this.target);
  }

  /** Parts of a job array share the target: each publishes its files by rename, one at a time. */
  private async commitInto(): Promise<void> {
    await makeFolders(this.target);
    // The part count first: a part stopped midway leaves shards only where the count says the job is unfinished.
    const names = (await fs.promises.readdir(this.tempDir)).sort((a, b) => Number(b === PARTS_FILE) - Number(a === PARTS_FILE));
    for (const name of names) await fs.promises.rename(path.join(this.tempDir, name), path.join(this.target, name));
    if (this.force) await removeForeignFiles(this.target, names, this.jobShards);
    if (this.part) await removePartsFileWhenComplete(this.target, this.jobShards, this.part);
    await syncDir(this.target);
    this.finished = true;
    try {
      await fs.promises.rm(this.tempDir, { recursive: true, force: true });
    } finally {
      await releaseLock(this.lockFile);
    }
  }

  /**
   * Removes the temporary folder, the lock and the folders begin() created (when empty); safe to
   * call more than once. Abort transactions that share parents in reverse order of begin().
   */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    try {
      await fs.promises.rm(this.tempDir, { recursive: true, force: true });
    } finally {
      await releaseLock(this.lockFile);
    }
    removeEmptyParents(path.dirname(this.target), this.createdParent);
  }
}

/** Takes the publish locks of `targets` (parts' shared folders) in one order, so that two runs never hold one each and wait. */
async function lockPublishing(targets: readonly string[], signal?: AbortSignal): Promise<string[]> {
  const held: string[] = [];
  try {
    for (const target of [...new Set(targets)].sort()) {
      const lock = publishLockOf(target);
      await waitForLock(lock, target, signal);
      held.push(lock);
    }
  } catch (e) {
    for (const lock of held) await releaseLock(lock);
    throw e;
  }
  return held;
}

/** Why makeFolders (a plain mkdir per folder: its error says why) could not make `dir`, or a file standing where a folder must be. */
function whyMkdirFailed(dir: string, error: Error): string {
  // The nearest folder on the way that exists, or a file standing where one must be.
  for (let up = dir; path.dirname(up) !== up; up = path.dirname(up)) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(up, { throwIfNoEntry: false });
    } catch {
      continue; // ENOTDIR: a file lies further up; the loop reaches it
    }
    if (st) {
      if (!st.isDirectory()) return `${up} is a file, not a folder`;
      break;
    }
  }
  return error.message;
}

/** Refuses a target that is, or holds, something the run reads: publishing or --force would replace it. */
function refuseInputs(targetPath: string, reads: readonly string[]): void {
  const target = realPathOfMaybeMissing(targetPath);
  for (const read of reads) {
    const real = realPathOfMaybeMissing(read);
    if (isAtOrInside(target, real)) {
      const what = real === target ? 'is' : `holds ${real}, which is`;
      throw usageError(`the output ${targetPath} ${what} one of the inputs of this merge; choose another output folder`);
    }
  }
}

/** The real path of `p` through symlinked folders above it, whether or not `p` itself exists yet. */
function realPathOfMaybeMissing(p: string): string {
  const missing: string[] = [];
  for (let at = path.resolve(p); ; at = path.dirname(at)) {
    try {
      return path.join(fs.realpathSync(at), ...missing);
    } catch {
      if (path.dirname(at) === at) return path.resolve(p);
      missing.unshift(path.basename(at));
    }
  }
}

/**
 * A whole run refuses while a --part job holds a lock on one of its targets (the two kinds take different locks: a --force whole
 * run would swap the folder away under the parts). Called with the targets locked, so that a part starting now sees their locks.
 * Each parent folder listed once. An output named like `NAME.part-I-of-N` has a whole lock that reads as NAME's part lock.
 */
export function refuseRunningParts(targets: readonly string[]): void {
  const byParent = new Map<string, Map<string, string>>();
  for (const t of targets) {
    const parent = path.dirname(t);
    if (!byParent.has(parent)) byParent.set(parent, new Map());
    byParent.get(parent)!.set(leftoverStem(path.basename(t)), t);
  }
  for (const [parent, stems] of byParent) {
    let entries: string[];
    try {
      entries = fs.readdirSync(parent);
    } catch {
      continue; // no folder, no parts in it
    }
    for (const entry of entries) {
      const part = PART_LOCK.exec(entry);
      const target = part === null ? undefined : stems.get(part[1]);
      if (target === undefined) continue;
      const lockFile = path.join(parent, entry);
      const holder = heldLock(lockFile);
      if (holder !== undefined) throw partRunning(target, `part ${part![2]}/${part![3]} of a --part job`, holder, lockFile);
    }
  }
}
