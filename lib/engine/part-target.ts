/**
 * The folder the parts of a `--part I/N` job fill together, file by file. Without --force a part adds its files only to a folder
 * that holds nothing but this job's files: its own shards and sidecars from a run of the same job (a restarted part: the same
 * header, size and bytes), other parts' shards, and sidecars equal to its own; anything else is another model, refused. With
 * --force a part removes, once its files are in place, what no part of this job writes: the old model's leftovers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';

/** Refuses a target with a file this job does not write, or one this part writes that holds something else. */
export function refuseForeignFiles(target: string, tempDir: string, jobShards: ReadonlySet<string>): void {
  if (!fs.existsSync(target)) return;
  const ours = new Set(fs.readdirSync(tempDir));
  for (const name of fs.readdirSync(target)) {
    const there = path.join(target, name);
    if (!ours.has(name) && !jobShards.has(name)) {
      throw new WeightmixError(
        'OutputExists',
        `${target} holds ${name}, which this merge does not write: it is another model, not one the parts of this job fill (use --force, or force: true in the API, to replace it)`,
      );
    }
    if (!ours.has(name)) continue; // another part's shard
    const same = name.endsWith('.safetensors') ? sameShard(there, path.join(tempDir, name)) : sameBytes(there, path.join(tempDir, name));
    if (!same)
      throw new WeightmixError('OutputExists', `${there} already exists and holds something else (use --force, or force: true in the API, to replace it)`);
  }
}

/** After a --force part published its files: removes what no part of this job writes (an old model's shards and files). */
export async function removeForeignFiles(target: string, published: readonly string[], jobShards: ReadonlySet<string>): Promise<void> {
  const job = new Set([...published, ...jobShards]);
  for (const name of await fs.promises.readdir(target)) {
    if (!job.has(name)) await fs.promises.rm(path.join(target, name), { recursive: true, force: true });
  }
}

function sameBytes(a: string, b: string): boolean {
  const st = fs.statSync(a);
  return st.isFile() && st.size === fs.statSync(b).size && fs.readFileSync(a).equals(fs.readFileSync(b));
}

/** The same shard of the same job: the same size and header (names, shapes, offsets and the recipe in its metadata). */
function sameShard(a: string, b: string): boolean {
  const st = fs.statSync(a);
  if (!st.isFile() || st.size !== fs.statSync(b).size) return false;
  const head = (file: string) => {
    const fd = fs.openSync(file, 'r');
    try {
      const size = Buffer.alloc(8);
      if (fs.readSync(fd, size, 0, 8, 0) !== 8) return null;
      const n = Number(size.readBigUInt64LE());
      if (n > 100 << 20 || n + 8 > st.size) return null;
      const header = Buffer.alloc(n);
      return fs.readSync(fd, header, 0, n, 8) === n ? header : null;
    } finally {
      fs.closeSync(fd);
    }
  };
  const [x, y] = [head(a), head(b)];
  return x !== null && y !== null && x.equals(y);
}
