/**
 * The huggingface_hub cache layout, read and written as the Python library does:
 * `models--ORG--NAME/{blobs/<etag>, snapshots/<commit>/<file> → ../../blobs/<etag>, refs/<branch> (the commit)}`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { COMMIT_SHA, HubReference } from './reference';
import { makeFolders } from '../make-folders';

/** A file-system failure in the cache as one line with the path: NoSpace for a full disk or quota, else IoError. */
export function cacheFsError(e: unknown, file: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (e instanceof WeightmixError || typeof err?.code !== 'string') return e;
  if (err.code === 'ENOSPC' || err.code === 'EDQUOT')
    return new WeightmixError('NoSpace', `no space left in the Hugging Face cache for ${file} (${err.code}); free some, then run again`, { cause: e });
  // mkdir says EEXIST or ENOTDIR when a file stands where the cache needs a folder.
  const why = err.code === 'ENOTDIR' || err.code === 'EEXIST' ? 'a file stands where a folder must be; is HF_HUB_CACHE or HF_HOME a file?' : err.message;
  // Node's own message starts with the code already ("EROFS: read-only file system, …").
  const said = why.startsWith(`${err.code}:`) ? why : `${err.code}: ${why}`;
  return new WeightmixError('IoError', `the Hugging Face cache: cannot write ${file} (${said})`, { cause: e });
}

/** Runs a write to the cache, its failure as `cacheFsError`. */
export async function cacheWrite<T>(file: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    throw cacheFsError(e, file);
  }
}

/** `models--ORG--NAME` under the cache root. */
export function repoFolder(cacheDir: string, repo: string): string {
  return path.join(cacheDir, `models--${repo.split('/').join('--')}`);
}

/** Per-blob lock files live beside the repos, as huggingface_hub keeps its own: `.locks/models--ORG--NAME/`. */
export function lockFolder(cacheDir: string, repo: string): string {
  return path.join(cacheDir, '.locks', path.basename(repoFolder(cacheDir, repo)));
}

export function blobPath(repoDir: string, etag: string): string {
  return path.join(repoDir, 'blobs', etag);
}

export function snapshotFolder(repoDir: string, commit: string): string {
  return path.join(repoDir, 'snapshots', commit);
}

/** The commit a revision names in the cache: itself when it is a commit sha, else `refs/<revision>`. */
export function cachedCommit(repoDir: string, revision: string): string | undefined {
  if (COMMIT_SHA.test(revision)) return revision;
  try {
    const commit = fs.readFileSync(path.join(repoDir, 'refs', revision), 'utf8').trim();
    return COMMIT_SHA.test(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

/** The cached snapshot folder of `ref`, if the cache has one (no check of which files it holds). */
export function cachedSnapshot(cacheDir: string, ref: HubReference): { dir: string; commit: string } | undefined {
  const repoDir = repoFolder(cacheDir, ref.repo);
  const commit = cachedCommit(repoDir, ref.revision);
  if (commit === undefined) return undefined;
  const dir = snapshotFolder(repoDir, commit);
  return fs.existsSync(dir) ? { dir, commit } : undefined;
}

/** Records `refs/<revision>` → commit (written whole, then renamed, so a reader never sees half a sha). */
export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (COMMIT_SHA.test(revision)) return;
  const file = path.join(repoDir, 'refs', revision);
  // Unchanged: not written again (a read-only cache that already has the model serves it online too, as huggingface_hub's does).
  if (cachedCommit(repoDir, revision) === commit) return;
  const temp = `${file}.${process.pid}.tmp`;
  await cacheWrite(file, async () => {
    await makeFolders(path.dirname(file));
    await renameIntoPlace(temp, file, () => fs.promises.writeFile(temp, commit));
  });
}

/** Makes `file` by writing `temp` and renaming it over: a reader sees the old entry or the new one, and a failure leaves no `temp`. */
async function renameIntoPlace(temp: string, file: string, write: () => Promise<void>): Promise<void> {
  try {
    await write();
    await fs.promises.rename(temp, file);
  } catch (e) {
    await fs.promises.rm(temp, { force: true });
    throw e;
  }
}

/** Whether the snapshot already holds `file` as a link (or file) that reaches a complete blob. */
export function snapshotHas(snapshotDir: string, file: string, size?: number): boolean {
  try {
    const st = fs.statSync(path.join(snapshotDir, file));
    // A blob of another size than the listing's (cut short, or overwritten) is no copy of the file: fetched again.
    return st.isFile() && (size === undefined || st.size === size);
  } catch {
    return false;
  }
}

/** Makes `snapshots/<commit>/<file>` a relative link to `blobs/<etag>` (replacing a stale entry), as huggingface_hub does. */
export async function linkIntoSnapshot(repoDir: string, commit: string, file: string, etag: string): Promise<void> {
  const link = path.join(snapshotFolder(repoDir, commit), file);
  const target = path.relative(path.dirname(link), blobPath(repoDir, etag));
  // A dot name: a process opening this snapshot meanwhile (another download of the repo) skips it, as it skips hidden files.
  const temp = path.join(path.dirname(link), `.${path.basename(link)}.${process.pid}.link`);
  await cacheWrite(link, async () => {
    await makeFolders(path.dirname(link));
    await fs.promises.rm(temp, { force: true });
    await renameIntoPlace(temp, link, () => fs.promises.symlink(target, temp));
  });
}
