/** fsync of a folder's entries and of whole trees: what a run makes durable before it publishes by rename (merge outputs, fixture pairs). */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** What a file system that cannot fsync a folder answers (some FUSE and network mounts): nothing more can be done there. */
const FOLDER_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);

/** fsync a folder, so that the renames and creations in it survive a crash (where the file system can). */
export async function syncDir(dir: string): Promise<void> {
  const fd = await fs.promises.open(dir, 'r');
  try {
    await fd.sync().catch((e: NodeJS.ErrnoException) => {
      if (!FOLDER_SYNC_UNSUPPORTED.has(e.code ?? '')) throw e;
    });
  } finally {
    await fd.close();
  }
}

/** fsync every file below `dir`, then each folder. */
export async function syncTree(dir: string): Promise<void> {
  for (const entry of await fs.promises.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await syncTree(p);
    else if (entry.isFile()) {
      const fd = await fs.promises.open(p, 'r');
      try {
        await fd.sync();
      } finally {
        await fd.close();
      }
    }
  }
  await syncDir(dir);
}
