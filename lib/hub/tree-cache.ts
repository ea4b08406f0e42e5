/**
 * huggingface_hub's cached tree listing, `models--ORG--NAME/trees/<commit>.json` (format 1: `{format_version, files: {path:
 * {size, blob_id, lfs_sha256?, lfs_size?}}}`), read as it reads it, and weightmix's copy in the same format beside it: a
 * commit's listing never changes, so it says offline which files a snapshot must hold. A download that broke off leaves a
 * snapshot with some files linked (the largest first: the weights, not the config or tokenizer); without the listing it could
 * be taken for whole.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RepoFile } from './api';

const FORMAT_VERSION = 1;

interface TreeEntry {
  size: number;
  blob_id: string;
  lfs_sha256?: string;
  lfs_size?: number;
}

/**
 * huggingface_hub's listing of a commit, and weightmix's own copy: huggingface_hub takes a listing under its name as the
 * files its snapshot must hold, so offline it would refuse a snapshot that weightmix filled with the merge's files only.
 */
const treeFile = (repoDir: string, commit: string) => path.join(repoDir, 'trees', `${commit}.json`);
const ownTreeFile = (repoDir: string, commit: string) => path.join(repoDir, 'trees', `${commit}.weightmix.json`);

/** A commit's cached listing, and whether weightmix wrote it (a download of everything a merge takes) or huggingface_hub did. */
export interface TreeListing {
  files: RepoFile[];
  own: boolean;
}

/** The listing of `commit` cached under `repoDir` (weightmix's, else huggingface_hub's), or undefined where none is readable. */
export function readTreeCache(repoDir: string, commit: string): TreeListing | undefined {
  const own = readListing(ownTreeFile(repoDir, commit));
  if (own !== undefined) return { files: own, own: true };
  const theirs = readListing(treeFile(repoDir, commit));
  return theirs === undefined ? undefined : { files: theirs, own: false };
}

function readListing(file: string): RepoFile[] | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  const { format_version: version, files } = (doc ?? {}) as { format_version?: unknown; files?: unknown };
  if (version !== FORMAT_VERSION || typeof files !== 'object' || files === null || Array.isArray(files)) return undefined;
  const listing: RepoFile[] = [];
  for (const [file, value] of Object.entries(files as Record<string, unknown>)) {
    const entry = value as Partial<TreeEntry> | null;
    const size = entry?.lfs_size ?? entry?.size;
    if (typeof entry?.blob_id !== 'string' || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
    listing.push({ path: file, size, gitOid: entry.blob_id, ...(typeof entry.lfs_sha256 === 'string' ? { sha256: entry.lfs_sha256 } : {}) });
  }
  return listing;
}

/** Caches `listing` as `commit`'s (weightmix's copy), unless one is there; a cache that cannot take it (read-only, full) is left as it is, as huggingface_hub does. */
export async function writeTreeCache(repoDir: string, commit: string, listing: readonly RepoFile[]): Promise<void> {
  const file = ownTreeFile(repoDir, commit);
  if (fs.existsSync(file) || fs.existsSync(treeFile(repoDir, commit))) return;
  const files: Record<string, TreeEntry> = {};
  for (const f of [...listing].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    files[f.path] = { size: f.size, blob_id: f.gitOid, ...(f.sha256 !== undefined ? { lfs_sha256: f.sha256, lfs_size: f.size } : {}) };
  }
  const temp = `${file}.${process.pid}.tmp`;
  try {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    await fs.promises.writeFile(temp, JSON.stringify({ format_version: FORMAT_VERSION, files }, null, 1));
    await fs.promises.rename(temp, file);
  } catch {
    await fs.promises.rm(temp, { force: true }).catch(() => {});
  }
}
