/** fsync of a folder's entries and of whole trees: what a run makes durable before it publishes by rename (merge outputs, fixture pairs). */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** What a file system that cannot fsync a folder answers (some FUSE and network mounts): nothing more can be done there. */
const FOLDER_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);

/** fsync of one file or folder; `unsupportedOk`: a file system's refusal to sync it (FOLDER_SYNC_UNSUPPORTED) is no error. */
async function syncPath(p: string, unsupportedOk: boolean): Promise<void> {
  const fd = await fs.promises.open(p, 'r');
  try {
    await fd.sync().catch((e: NodeJS.ErrnoException) => {
      if (!unsupportedOk || !FOLDER_SYNC_UNSUPPORTED.has(e.code ?? '')) throw e;
    });
  } finally {
    await fd.close();
  }
}

/** fsync a folder, so that the renames and creations in it survive a crash (where the file system can). */
export async function syncDir(dir: string): Promise<void> {
  await syncPath(dir, true);
}

/** fsync every file below `dir`, then each folder. */
export async function syncTree(dir: string): Promise<void> {
  for (const entry of await fs.promises.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await syncTree(p);
    else if (entry.isFile()) await syncPath(p, false);
  }
  await syncDir(dir);
}
