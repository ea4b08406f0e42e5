/** A model folder: its shards, a name → location table, its sidecar files and config. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isUtf8 } from 'node:buffer';
import { usageError, WeightmixError } from '../errors';
import { parseJsonStrict } from '../format/json-strict';
import { nativeJsonTables, WeightMapColumns } from '../format/json-tables';
import { confinedRealPath } from './paths';
import { mapInOrder } from './map-in-order';
import { headerColumns, readSafetensorsHeaderWith, SafetensorsHeader } from '../format/safetensors';
import type { OpenMemo } from './open-memo';
import { addShifted, attachTensorTable, detachTensorTable, indexOfName, locationMap, sumFrom, TensorLocation, TensorTable } from './tensor-table';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
/** Index files are small; a larger one is hostile or not an index. */
const MAX_INDEX_BYTES = 64 << 20;
const MAX_CONFIG_BYTES = 16 << 20;
/** Shard headers read at once: their reads overlap the parsing of those already read, and hostile headers hold at most this many texts in memory. */
const HEADER_READS_AT_ONCE = 4;
/** Weight formats that are never copied as sidecars. */
const WEIGHT_EXTENSIONS = ['.safetensors', '.bin', '.pt', '.pth', '.ckpt', '.gguf', '.h5', '.msgpack', '.onnx', '.npz'];

// Where one tensor is stored: declared beside the table it is read from.
export type { TensorLocation } from './tensor-table';

/** One safetensors file of a model. */
export interface Shard {
  /** File name relative to the model folder. */
  name: string;
  /** Absolute path. */
  path: string;
  /** Its parsed, validated header. */
  header: SafetensorsHeader;
}

/** A model folder, opened and checked: `openCheckpoint`'s result. */
export interface Checkpoint {
  /** The folder (absolute). */
  dir: string;
  /** Its safetensors files, in index order. */
  shards: Shard[];
  /** Every tensor by name. */
  tensors: Map<string, TensorLocation>;
  /** Tensor names in shard order, then data-offset order. */
  names: string[];
  /** Whether the folder has an index (`model.safetensors.index.json`). */
  indexed: boolean;
  /** Non-weight files at the top of the folder (config, tokenizer, templates, …), by name. */
  sidecars: string[];
  /** config.json, parsed, or null without one. */
  config: Record<string, unknown> | null;
  /** Sum of tensor data bytes (what index.json calls total_size). */
  tensorBytes: number;
}

/**
 * Opens a model folder (one `model.safetensors`, or shards and their index) and checks it: every
 * header against its file, the index against the shards, each tensor stored once, no name that
 * escapes the folder. Reads headers only.
 *
 * @example
 * ```ts
 * import { openCheckpoint } from 'weightmix';
 * const model = await openCheckpoint('Qwen3-4B-Instruct-2507');
 * console.log(model.names.length, model.tensors.get('model.norm.weight')?.shape);
 * ```
 * @throws {@link WeightmixError} `Usage`, `ModelNotFound`, `InvalidIndex`, `IndexMismatch`, `DuplicateTensor`,
 * `UnsafePath`, `NotAFile`, `FileNotFound`, `InvalidConfig`, `IoError`, a safetensors code (docs/errors.md).
 */
export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  return openCheckpointWith(dir);
}

/** A folder's files beside any weights: what a tokenizer-only source (a recipe's `tokenizer_source` outside the merge) is. */
export type SidecarFolder = Pick<Checkpoint, 'dir' | 'sidecars' | 'config'>;

/** A folder's sidecars and config.json, its weights (if any) not opened; `ModelNotFound` where it is no folder. */
export async function openSidecarFolder(dir: string): Promise<SidecarFolder> {
  const root = await modelFolder(dir);
  const sidecars = await listSidecars(root, await fs.promises.readdir(root));
  return { dir: root, sidecars, config: await readConfig(root, sidecars) };
}

/** The absolute path of the model folder `dir` names; `ModelNotFound` where there is none. */
async function modelFolder(dir: string): Promise<string> {
  const root = path.resolve(dir);
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(root);
  } catch {
    throw new WeightmixError('ModelNotFound', `model folder not found: ${dir}`);
  }
  if (!stat.isDirectory()) throw new WeightmixError('ModelNotFound', `not a model folder: ${dir}`);
  return root;
}

/** openCheckpoint, sharing what `memo` kept of the models opened before it in the same run (open-memo.ts), and keeping its own there. */
export async function openCheckpointWith(dir: string, memo?: OpenMemo): Promise<Checkpoint> {
  if (typeof dir !== 'string' || dir === '')
    throw usageError(`openCheckpoint(dir): dir must be a model folder path, got ${JSON.stringify(dir) ?? String(dir)}`);
  const root = await modelFolder(dir);
  const entries = await fs.promises.readdir(root);
  const shardNames = await listShards(root, entries, memo);
  const weightMap = shardNames.weightMap;
  const shards = await mapInOrder(shardNames.files, HEADER_READS_AT_ONCE, async (name): Promise<Shard> => {
    const file = confinedRealPath(root, name, weightMap ? `${dir}/${INDEX_FILE}` : dir);
    return { name, path: file, header: await readSafetensorsHeaderWith(file, memo?.headers) };
  });
  const columns = shards.map((s) => headerColumns(s.header));
  const dataStarts = shards.map((s) => s.header.dataStart);
  // A table built before over the same columns had its names checked unique (one header's reader refuses a key given twice; several
  // were checked by an index or by name), so only this model's own index is left to check against it.
  const shared = memo?.sharedTable(
    columns,
    dataStarts,
    shards.map((s) => s.path),
    shards.map((s) => s.name),
  );
  // An index read as columns is checked once the table stands (one pass over it, no second table by name); if that
  // finds anything amiss, or the table cannot be built, the per-tensor checks run from the start for the exact error.
  // Names need no table of their own to be unique when the index check vouches for that, or when there is one header (its reader refuses a key given twice).
  let table = shared ?? (weightMap?.agreesWith ? tensorTableOrUndefined(dir, shards) : undefined);
  const vouched = table !== undefined && (weightMap === null ? shared !== undefined : weightMap.agreesWith?.(table) === true);
  if (!vouched) table = tensorTable(dir, shards, weightMap, weightMap !== null || shards.length > 1);
  if (shared === undefined) memo?.keepTable(columns, dataStarts, table!);
  const sidecars = await listSidecars(root, entries);
  return checkpointOfTable(table!, {
    dir: root,
    shards,
    names: table!.names as string[],
    indexed: weightMap !== null,
    sidecars,
    config: await readConfig(root, sidecars),
    tensorBytes: table!.tensorBytes,
  });
}

/** A checkpoint whose `tensors` Map is built from the table on first read (the planner reads the table); setting `tensors` replaces it. */
function checkpointOfTable(table: TensorTable, fields: Omit<Checkpoint, 'tensors'>): Checkpoint {
  let tensors: Map<string, TensorLocation> | undefined;
  const ckpt: Checkpoint = {
    ...fields,
    get tensors() {
      if (tensors === undefined) {
        tensors = locationMap(table);
        attachTensorTable(tensors, table);
      }
      return tensors;
    },
    set tensors(value: Map<string, TensorLocation>) {
      tensors = value;
      detachTensorTable(ckpt);
    },
  };
  attachTensorTable(ckpt, table);
  return ckpt;
}

/** Every tensor as columns, in shard then data order; with `weightMap`, each checked against the index as it is added. */
function tensorTable(dir: string, shards: Shard[], weightMap: WeightMap | null, unique = true): TensorTable & { tensorBytes: number } {
  const columns = shards.map((s) => headerColumns(s.header));
  const count = columns.reduce((n, c) => n + c.names.length, 0);
  const dims = columns.reduce((n, c) => n + c.dims.length, 0);
  // The addon's texts of the shards' names, when every shard has one (its index check and the encoders take them file by file).
  const texts = columns.every((c) => c.namesText !== undefined) ? columns.map((c) => c.namesText!) : undefined;
  const table = {
    // One builtin concatenation, not a store per tensor.
    names: ([] as string[]).concat(...columns.map((c) => c.names)),
    dtypes: new Uint8Array(count),
    shapeStarts: new Uint32Array(count + 1),
    dims: new Float64Array(dims),
    offsets: new Float64Array(count),
    byteLengths: new Float64Array(count),
    elementCounts: new Float64Array(count),
    fileIndex: new Uint32Array(count),
    files: shards.map((s) => s.path),
    shardNames: shards.map((s) => s.name),
    byName: unique ? new Map<string, number>() : undefined,
    fileNamesTexts: texts,
    // Each shard's columns passed its header's layout check (contiguous from its data start), and fill one run of rows.
    filesContiguous: true,
    tensorBytes: 0,
  };
  let n = 0;
  let d = 0;
  for (let s = 0; s < shards.length; s++) {
    const shard = shards[s];
    const c = columns[s];
    const dataStart = shard.header.dataStart;
    table.dims.set(c.dims, d);
    table.dtypes.set(c.dtypes, n);
    table.byteLengths.set(c.byteLengths, n);
    table.elementCounts.set(c.elementCounts, n);
    table.fileIndex.fill(s, n, n + c.names.length);
    // Column by column in small loops of their own (one per-tensor loop of everything was the MoE open's largest compile).
    addShifted(table.offsets, n, c.begins, 0, dataStart);
    addShifted(table.shapeStarts, n + 1, c.shapeStarts, 1, d);
    table.tensorBytes = sumFrom(table.tensorBytes, c.byteLengths);
    if (table.byName !== undefined || weightMap) checkNames(dir, shards, s, table.byName, weightMap, c.names, n);
    n += c.names.length;
    d += c.dims.length;
  }
  // Every stored tensor is listed under its own shard, so equal counts mean nothing else is listed.
  if (weightMap && weightMap.names.length !== count) {
    const name = weightMap.names.find((name) => indexOfName(table, name) < 0)!;
    throw new WeightmixError('IndexMismatch', `${dir}/${INDEX_FILE}: tensor ${name} is listed in ${weightMap.shardOf(name)} but not stored there`);
  }
  return table;
}

/** Shard s's names (table rows from `first`), each added to `byName` (refused when stored twice) and checked against the index. */
function checkNames(
  dir: string,
  shards: Shard[],
  s: number,
  byName: Map<string, number> | undefined,
  weightMap: WeightMap | null,
  names: readonly string[],
  first: number,
): void {
  const shard = shards[s];
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const size = byName?.size;
    // A name set again leaves the size as it was (one lookup per tensor, not two); the message names where it was first.
    if (byName !== undefined && byName.set(name, first + i).size === size) {
      const firstShard = shards.find((sh) => headerColumns(sh.header).names.includes(name))!;
      throw new WeightmixError('DuplicateTensor', `${dir}: tensor ${name} is stored twice (${firstShard.name} and ${shard.name})`);
    }
    if (weightMap && weightMap.shardOf(name) !== shard.name) {
      throw new WeightmixError(
        'IndexMismatch',
        `${dir}/${INDEX_FILE}: tensor ${name} is in ${shard.name} but the index says ${weightMap.shardOf(name) ?? 'nothing'}`,
      );
    }
  }
}

function tensorTableOrUndefined(dir: string, shards: Shard[]): ReturnType<typeof tensorTable> | undefined {
  try {
    return tensorTable(dir, shards, null, false);
  } catch {
    return undefined;
  }
}

/** Everything a merge reads from the model: its folder, shards and sidecars (an output must replace none of them). */
export function pathsRead(checkpoint: SidecarFolder & Partial<Pick<Checkpoint, 'shards'>>): string[] {
  return [checkpoint.dir, ...(checkpoint.shards ?? []).map((s) => s.path), ...checkpoint.sidecars.map((name) => path.join(checkpoint.dir, name))];
}

/** An index's weight_map: its tensor names in file order and the shard each is listed in. */
interface WeightMap {
  names: string[];
  shardOf(name: string): string | undefined;
  /** Whether the stored tensors are exactly the names listed, each in its listed shard (the columns' check, in one pass). */
  agreesWith?(table: TensorTable): boolean;
}

async function listShards(root: string, entries: string[], memo?: OpenMemo): Promise<{ files: string[]; weightMap: WeightMap | null }> {
  if (entries.includes(INDEX_FILE)) {
    const indexPath = confinedRealPath(root, INDEX_FILE, root);
    const size = (await fs.promises.stat(indexPath)).size;
    if (size > MAX_INDEX_BYTES) throw new WeightmixError('InvalidIndex', `${indexPath}: index file is implausibly large (${size} bytes)`);
    const bytes = await fs.promises.readFile(indexPath);
    // The same bytes as an index read before in this run: its columns, and its verdicts on tables of the same columns.
    const known = memo?.indexColumns(bytes);
    const tables = known || isUtf8(bytes) ? nativeJsonTables() : undefined;
    const columns = known ?? tables?.readWeightMapTable(bytes);
    if (columns) {
      if (!known) memo?.keepIndex(bytes, columns);
      const agrees = (table: TensorTable) => tables!.weightMapAgrees(columns, table);
      if (!memo) return weightMapOfColumns(columns, agrees);
      return weightMapOfColumns(columns, (table) => memo.agreed(columns, table) || (agrees(table) && (memo.noteAgreed(columns, table), true)));
    }
    // Invalid UTF-8 is decoded as a text read decodes it (replacement characters), then judged as JSON.
    const doc = parseJsonStrict(bytes.toString('utf8'), { what: indexPath });
    return readWeightMap(doc, indexPath);
  }
  if (entries.includes(SINGLE_FILE)) return { files: [SINGLE_FILE], weightMap: null };
  const files = entries.filter((e) => e.endsWith('.safetensors')).sort();
  if (files.length === 0) throw new WeightmixError('ModelNotFound', `${root}: no .safetensors files and no ${INDEX_FILE}`);
  return { files, weightMap: null };
}

/** The parsed weight_map object is the table (no copy into a Map: a MoE index lists tens of thousands of tensors). */
function readWeightMap(doc: unknown, file: string): { files: string[]; weightMap: WeightMap } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new WeightmixError('InvalidIndex', `${file}: not a JSON object`);
  const wm = (doc as Record<string, unknown>).weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new WeightmixError('InvalidIndex', `${file}: missing "weight_map" object`);
  const table = wm as Record<string, unknown>;
  const names = Object.keys(table);
  const files = new Set<string>();
  for (const name of names) {
    const shard = table[name];
    if (typeof shard !== 'string') throw new WeightmixError('InvalidIndex', `${file}: weight_map entry for ${name} is not a file name`);
    files.add(shard);
  }
  if (names.length === 0) throw new WeightmixError('InvalidIndex', `${file}: weight_map is empty`);
  // Own keys only: a tensor named "constructor" or "__proto__" must not find Object.prototype's.
  const shardOf = (name: string) => (Object.hasOwn(table, name) ? (table[name] as string) : undefined);
  return { files: [...files], weightMap: { names, shardOf } };
}

/**
 * The same table from the addon's columns (native/json_tables.h), which it gives only for a weight_map that readWeightMap accepts, in the
 * same order; `agrees` is the addon's one-call check of the stored tensors against it (test/checkpoint-columns.test.ts checks it by name).
 */
function weightMapOfColumns(columns: WeightMapColumns, agrees: (table: TensorTable) => boolean): { files: string[]; weightMap: WeightMap } {
  const { shards, files } = columns;
  let byName: Map<string, string> | undefined;
  const shardOf = (name: string) => {
    // Only the per-tensor checks after a disagreement look names up.
    if (byName === undefined) {
      byName = new Map();
      for (let i = 0; i < columns.names.length; i++) byName.set(columns.names[i], files[shards[i]]);
    }
    return byName.get(name);
  };
  return {
    files,
    weightMap: {
      get names() {
        return columns.names;
      },
      shardOf,
      agreesWith: agrees,
    },
  };
}

/** Names a model's sidecar files take (config.json, tokenizer.model, merges.txt, chat_template.jinja, …). */
const SIDECAR_LIKE = /\.(json|txt|model|jinja|tiktoken|py)$/;

async function listSidecars(root: string, entries: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const name of entries.sort()) {
    if (name.startsWith('.') || name === INDEX_FILE || name === 'README.md') continue;
    if (WEIGHT_EXTENSIONS.some((ext) => name.endsWith(ext))) continue;
    // An entry another process renamed away since the listing (a hub download linking into this snapshot) is not ours.
    const st = await fs.promises.lstat(path.join(root, name)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    if (st === null) continue;
    // A model's subfolders (original/, onnx/) are not its sidecars; a folder named as one (config.json/) would be dropped unseen.
    if (st.isDirectory()) {
      if (SIDECAR_LIKE.test(name)) throw new WeightmixError('NotAFile', `${root}: ${name} is a folder, not a file`);
      continue;
    }
    // A pipe or device named like config.json would block or be lost silently: refuse it.
    if (!st.isSymbolicLink() && !st.isFile()) throw new WeightmixError('NotAFile', `${root}: ${name} is not a regular file`);
    out.push(name);
  }
  return out;
}

async function readConfig(root: string, sidecars: string[]): Promise<Record<string, unknown> | null> {
  if (!sidecars.includes('config.json')) return null;
  const file = confinedRealPath(root, 'config.json', root);
  const size = (await fs.promises.stat(file)).size;
  if (size > MAX_CONFIG_BYTES) throw new WeightmixError('InvalidConfig', `${file}: config.json is implausibly large`);
  const doc = parseJsonStrict(await fs.promises.readFile(file, 'utf8'), { what: file });
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new WeightmixError('InvalidConfig', `${file}: not a JSON object`);
  return doc as Record<string, unknown>;
}

/** Number of decoder layers: from config.json, else from the tensor names. */
export function layerCount(ckpt: Checkpoint, layerOf: (name: string) => number | null): number {
  const fromConfig = ckpt.config?.num_hidden_layers;
  if (typeof fromConfig === 'number' && Number.isInteger(fromConfig) && fromConfig > 0) return fromConfig;
  let max = -1;
  for (const name of ckpt.names) max = Math.max(max, layerOf(name) ?? -1);
  return max + 1;
}
