/** The write pass's output block size when the caller gives none: it depends on where the outputs live. */
import * as fs from 'node:fs';
import { DEFAULT_BLOCK_BYTES } from '../options';

/** Blocks for outputs in memory: pread → kernel → write of a 1 MiB block stays in the CPU cache; 8 MiB does not (BENCHMARKS.md, issue 17 items 2–3). */
export const MEMORY_BLOCK_BYTES = 1 << 20;
// statfs(2) f_type of the file systems whose files are memory pages.
const MEMORY_FILE_SYSTEMS = new Set([0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */]);

/**
 * `DEFAULT_BLOCK_BYTES` (8 MiB: large O_DIRECT writes for a disk), or `MEMORY_BLOCK_BYTES` when
 * every folder in `dirs` (existing ones: the outputs' temporary folders) is on tmpfs or ramfs.
 */
export async function defaultWriteBlockBytes(dirs: readonly string[]): Promise<number> {
  if (dirs.length === 0) return DEFAULT_BLOCK_BYTES;
  for (const dir of dirs) {
    const type = await fs.promises.statfs(dir).then(
      (s) => s.type,
      () => undefined,
    );
    if (type === undefined || !MEMORY_FILE_SYSTEMS.has(type)) return DEFAULT_BLOCK_BYTES;
  }
  return MEMORY_BLOCK_BYTES;
}
