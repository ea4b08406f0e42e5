/** The write pass's output block size: by where the outputs live when the caller gives none, and smaller as outputs grow. */
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

/** What the output blocks in flight may take: about (threads + 2) blocks per output of a write pass. */
export const BLOCK_MEMORY_BUDGET = 512 << 20;
/** The least a block shrinks to (O_DIRECT-aligned): a 1000-output pass with 16 threads then holds ~1.1 GB of blocks, not 18 GB. */
export const MIN_WRITE_BLOCK = 64 << 10;

/** The write pass's block size: `blockBytes`, halved (to MIN_WRITE_BLOCK at least) until the blocks in flight fit the budget. Output bytes do not depend on it. */
export function writeBlockBytes(blockBytes: number, outputs: number, threads: number): number {
  let b = blockBytes;
  while (b > MIN_WRITE_BLOCK && b % 8192 === 0 && outputs * (threads + 2) * b > BLOCK_MEMORY_BUDGET) b /= 2;
  return b;
}

/** The block size of a write pass into the folders `dirs` (one per output): `explicit`, else the default for where they live, shrunk for their number. */
export async function writePassBlockBytes(explicit: number | undefined, dirs: readonly string[], threads: number): Promise<number> {
  return writeBlockBytes(explicit ?? (await defaultWriteBlockBytes(dirs)), dirs.length, threads);
}
