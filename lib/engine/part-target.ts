/**
 * The folder the parts of a `--part I/N` job fill together, file by file. Without --force a part adds its files only to a folder
 * that holds nothing but this job's files: shards of this job (the same recipe in their headers, whatever paths the parts read
 * their inputs by or which weightmix wrote them; a restarted part's own also the same tensors), the same index, the same sidecars
 * (config, tokenizer) and a model card (it names the paths, so it may differ); anything else is another model, refused. With
 * --force a part removes, once its files are in place, what no part of this job writes: the old model's leftovers.
 *
 * Until every shard of the job is in place (present, and recording this job's recipe) the folder holds PARTS_FILE, the job's
 * part count and recipe: a part of another count would assign the shards otherwise, and some would never be written, so it is
 * refused (with --force too, where the recipe is the same: a new recipe with --force starts a new job); so is, without --force,
 * a part of the same count and another recipe (another job's). The part that finds the job complete after publishing removes
 * the file: the folder is then what a whole run writes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { readSafetensorsHeader, SafetensorsError } from '../format/safetensors';
import { INDEX_FILE } from '../model/checkpoint';

const MODEL_CARD = 'README.md';

/** The job's part count, in the folder while its shards are incomplete. */
export const PARTS_FILE = '.weightmix-parts.json';

/** A part of a job: which of how many, and the job's recipe as its shards record it (`__metadata__.weightmix`). */
export interface JobPart {
  index: number;
  count: number;
  recipe: string;
}

/** PARTS_FILE's text for `part`'s job: its part count and recipe (as jobRecipe gives it). */
export function partsFileText(part: JobPart): string {
  return `${JSON.stringify({ parts: part.count, recipe: jobRecipe(part.recipe) })}\n`;
}

/**
 * What a folder's PARTS_FILE records: null where it has none (or is no folder), undefined fields where the file is unreadable.
 */
export function recordedParts(dir: string): { parts?: unknown; recipe?: unknown } | null {
  try {
    const recorded: unknown = JSON.parse(fs.readFileSync(path.join(dir, PARTS_FILE), 'utf8'));
    return typeof recorded === 'object' && recorded !== null ? recorded : {};
  } catch (e) {
    return ['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '') ? null : {};
  }
}

/**
 * Refuses a target that another --part job is filling (its PARTS_FILE says so): one of another part count without --force
 * whatever its recipe (another model's folder is refused anyway), with --force only where the recipe is this job's (another
 * recipe: a new job); one of the same count but another recipe without --force (with it: a new job).
 */
export function refuseOtherPartJob(target: string, part: JobPart, force: boolean): void {
  // No job in progress there (or no folder: what holds the place is the other checks' to name).
  const recorded = recordedParts(target);
  if (recorded === null) return;
  const sameJob = recorded.recipe === jobRecipe(part.recipe);
  if (force && !sameJob) return; // with --force another recipe's part starts a new job, whatever the count
  if (recorded.parts === part.count) {
    if (sameJob) return;
    // Another job's parts of the same count: refused here, before the merge, not by the foreign files found when publishing.
    throw new WeightmixError(
      'OutputExists',
      `${target} is being filled by another job of ${part.count} parts (its ${PARTS_FILE} records ${typeof recorded.recipe === 'string' ? 'another recipe' : 'no recipe'}), and this is part ${part.index}/${part.count} of a new one: finish that job, or use --force (force: true in the API) to replace the model`,
    );
  }
  const what = typeof recorded.parts === 'number' ? `a job of ${recorded.parts} parts` : `a --part job (${PARTS_FILE} unreadable)`;
  // --force helps only a part of another recipe (a new job, returned above); this job's own parts of another count are refused with it too.
  const restart = sameJob
    ? `or remove ${path.join(target, PARTS_FILE)} to start the job again with ${part.count}`
    : 'or use --force (force: true in the API) to replace the model';
  throw new WeightmixError(
    'OutputExists',
    `${target} is being filled by ${what}, and this is part ${part.index}/${part.count}: parts of another count assign the shards otherwise and would leave some unwritten; run every part with the same count, ${restart}`,
  );
}

/** After a part published its files: the job's PARTS_FILE removed once every shard of the job is in place and records this job's recipe. */
export async function removePartsFileWhenComplete(target: string, jobShards: ReadonlySet<string>, part: JobPart): Promise<void> {
  const present = new Set(await fs.promises.readdir(target));
  if (![...jobShards].every((name) => present.has(name))) return;
  // A --force job keeps an old model's shards of the same names until its parts replace them: those are not this job's.
  const recipe = jobRecipe(part.recipe);
  for (const name of jobShards) {
    const header = await shardHeader(path.join(target, name)).catch(() => null);
    if (header?.recipe !== recipe) return;
  }
  await fs.promises.rm(path.join(target, PARTS_FILE), { force: true });
}

/** Whether a shard's recorded recipe (`__metadata__.weightmix`) is the job's that PARTS_FILE records (its `recipe`). */
export function recordsJobRecipe(recorded: unknown, recipe: unknown): boolean {
  return typeof recorded === 'string' && typeof recipe === 'string' && jobRecipe(recorded) === recipe;
}

/** Refuses a target with a file this job does not write, or one that holds another job's or model's contents. */
export async function refuseForeignFiles(target: string, tempDir: string, jobShards: ReadonlySet<string>): Promise<void> {
  if (!fs.existsSync(target)) return;
  const ours = new Set(fs.readdirSync(tempDir));
  // Each of our shards' headers read once: the first names the recipe, and a shard of ours the target also holds is compared.
  const ourHeaders = new Map<string, ShardHeader>();
  const ourHeader = async (name: string) => {
    if (!ourHeaders.has(name)) ourHeaders.set(name, await shardHeader(path.join(tempDir, name)));
    return ourHeaders.get(name)!;
  };
  const ourShard = [...ours].find((n) => n.endsWith('.safetensors'));
  const ourRecipe = ourShard === undefined ? null : (await ourHeader(ourShard)).recipe;
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
      const theirs = await shardHeader(there).catch((e: unknown) => {
        // A file that is no valid safetensors file (a truncated shard of an earlier run, another tool's) is named as such.
        if (!(e instanceof SafetensorsError) || e.code === 'IoError') throw e;
        throw refuse(name, `is not a valid safetensors file (${e.message.replace(`${there}: `, '')})`);
      });
      if (ourRecipe !== null && theirs.recipe !== ourRecipe) throw refuse(name, 'is a shard of another merge');
      const mine = ours.has(name) ? await ourHeader(name) : null;
      if (mine !== null && (theirs.tensors !== mine.tensors || fs.statSync(there).size !== fs.statSync(path.join(tempDir, name)).size)) {
        throw refuse(name, 'already exists and holds something else');
      }
    } else if (ours.has(name) && name !== MODEL_CARD && !sameBytes(there, path.join(tempDir, name))) {
      throw refuse(name, name === INDEX_FILE ? 'indexes another layout' : 'already exists and holds something else');
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

interface ShardHeader {
  tensors: string;
  recipe: string | null;
}

/**
 * A shard's header as two texts: its tensors (names, dtypes, shapes, offsets), and its weightmix recipe without what differs between
 * the parts of one job (the input folders' paths, the weightmix version). Throws what readSafetensorsHeader throws.
 */
async function shardHeader(file: string): Promise<ShardHeader> {
  const header = await readSafetensorsHeader(file);
  const recorded = header.metadata?.weightmix;
  const recipe = typeof recorded === 'string' ? jobRecipe(recorded) : null;
  const tensors = header.tensors.map((t) => [t.name, t.dtype, t.shape, t.dataOffsets]);
  return { tensors: JSON.stringify(tensors), recipe };
}

/** A recorded recipe without what differs between the parts of one job: the input folders' paths, the weightmix version. */
function jobRecipe(recorded: string): string {
  try {
    const { instruct: _i, thinking: _t, weightmix: _v, ...rest } = JSON.parse(recorded) as Record<string, unknown>;
    return JSON.stringify(rest);
  } catch {
    return recorded;
  }
}
