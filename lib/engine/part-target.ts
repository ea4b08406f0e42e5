/**
 * The folder the parts of a `--part I/N` job fill together, file by file. Without --force a part adds its files only to a folder
 * that holds nothing but this job's files: shards of this job (the same recipe in their headers, whatever paths the parts read
 * their inputs by or which weightmix wrote them; a restarted part's own also the same tensors), the same index, the same sidecars
 * (config, tokenizer) and a model card (it names the paths, so it may differ); anything else is another model, refused. With
 * --force a part removes, once its files are in place, what no part of this job writes: the old model's leftovers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';

const INDEX = 'model.safetensors.index.json';
const MODEL_CARD = 'README.md';

/** Refuses a target with a file this job does not write, or one that holds another job's or model's contents. */
export function refuseForeignFiles(target: string, tempDir: string, jobShards: ReadonlySet<string>): void {
  if (!fs.existsSync(target)) return;
  const ours = new Set(fs.readdirSync(tempDir));
  const ourShard = [...ours].find((n) => n.endsWith('.safetensors'));
  const ourRecipe = ourShard === undefined ? null : shardHeader(path.join(tempDir, ourShard))?.recipe;
  const refuse = (name: string, why: string) =>
    new WeightmixError('OutputExists', `${path.join(target, name)} ${why} (use --force, or force: true in the API, to replace it)`);
  for (const name of fs.readdirSync(target)) {
    const there = path.join(target, name);
    if (!ours.has(name) && !jobShards.has(name)) {
      throw new WeightmixError(
        'OutputExists',
        `${target} holds ${name}, which this merge does not write: it is another model, not one the parts of this job fill (use --force, or force: true in the API, to replace it)`,
      );
    }
    if (name.endsWith('.safetensors')) {
      const theirs = shardHeader(there);
      if (theirs === null || (ourRecipe !== undefined && ourRecipe !== null && theirs.recipe !== ourRecipe)) throw refuse(name, 'is a shard of another merge');
      const mine = ours.has(name) ? shardHeader(path.join(tempDir, name)) : null;
      if (mine !== null && (theirs.tensors !== mine.tensors || fs.statSync(there).size !== fs.statSync(path.join(tempDir, name)).size)) {
        throw refuse(name, 'already exists and holds something else');
      }
    } else if (ours.has(name) && name !== MODEL_CARD && !sameBytes(there, path.join(tempDir, name))) {
      throw refuse(name, name === INDEX ? 'indexes another layout' : 'already exists and holds something else');
    }
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

/**
 * A shard's header as two texts: its tensors (names, dtypes, shapes, offsets), and its weightmix recipe without what differs between
 * the parts of one job (the input folders' paths, the weightmix version); null where the file is no safetensors file.
 */
function shardHeader(file: string): { tensors: string; recipe: string | null } | null {
  let header: Record<string, unknown>;
  const fd = fs.openSync(file, 'r');
  try {
    const size = Buffer.alloc(8);
    if (fs.readSync(fd, size, 0, 8, 0) !== 8) return null;
    const n = Number(size.readBigUInt64LE());
    if (n > 100 << 20 || n + 8 > fs.fstatSync(fd).size) return null;
    const text = Buffer.alloc(n);
    if (fs.readSync(fd, text, 0, n, 8) !== n) return null;
    header = JSON.parse(text.toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
  const { __metadata__: metadata, ...tensors } = header;
  const recorded = (metadata as Record<string, unknown> | undefined)?.weightmix;
  let recipe: string | null = null;
  if (typeof recorded === 'string') {
    try {
      const { instruct: _i, thinking: _t, weightmix: _v, ...rest } = JSON.parse(recorded) as Record<string, unknown>;
      recipe = JSON.stringify(rest);
    } catch {
      recipe = recorded;
    }
  }
  return { tensors: JSON.stringify(tensors), recipe };
}
