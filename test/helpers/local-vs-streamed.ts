/** The tensor-local tests' end-to-end check: a recipe merged with its statistics local, streamed and mixed gives the same files. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/model/checkpoint';
import { merge } from '../../lib/recipes/merge-recipe';
import { localStatistics } from '../../lib/recipes/sparsify';

let counter = 0;

/** The recipe's shard files by name, merged into `dir` with `localStatistics.maxTensorBytes` set as given (then restored). */
async function mergedBytes(dir: string, doc: Record<string, unknown>, maxTensorBytes: number, threads: number): Promise<Map<string, Buffer>> {
  const saved = localStatistics.maxTensorBytes;
  localStatistics.maxTensorBytes = maxTensorBytes;
  try {
    const out = path.join(dir, `local-vs-streamed-${process.pid}-${counter++}`);
    await merge(doc, { output: out, threads, blockBytes: 65536 });
    const c = await openCheckpoint(out);
    return new Map(c.shards.map((s) => [s.name, fs.readFileSync(path.join(out, s.name))]));
  } finally {
    localStatistics.maxTensorBytes = saved;
  }
}

/** Merges `doc` with every tensor local (the default budget), none (budget 0) and the small ones (20,000 bytes), and expects the same files. */
export async function expectLocalStreamedMixedAlike(
  dir: string,
  doc: Record<string, unknown>,
  threads: { local: number; streamed: number; mixed: number } = { local: 2, streamed: 2, mixed: 2 },
): Promise<void> {
  const streamed = await mergedBytes(dir, doc, 0, threads.streamed);
  const local = await mergedBytes(dir, doc, localStatistics.maxTensorBytes, threads.local);
  const mixed = await mergedBytes(dir, doc, 20000, threads.mixed); // small tensors local, the rest streamed
  expect([...local.keys()]).toEqual([...streamed.keys()]);
  for (const [name, bytes] of streamed) {
    expect(local.get(name)!.equals(bytes)).toBe(true);
    expect(mixed.get(name)!.equals(bytes)).toBe(true);
  }
}
