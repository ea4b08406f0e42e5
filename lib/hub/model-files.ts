/** Which files of a hub repo a merge needs: the safetensors weights, their index, config and tokenizer files. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { parseJsonStrict } from '../format/json-strict';
import { checkRelativeName } from '../model/paths';
import { isTokenizerSidecar } from '../model/tokenizer-sidecars';
import type { RepoFile } from './api';
import { snapshotHas } from './cache';
import type { TreeListing } from './tree-cache';

export const HUB_INDEX_FILE = 'model.safetensors.index.json';

const CONFIG_FILES = ['config.json', 'generation_config.json'];

/** What a purpose needs: everything for a merge, the tokenizer files (and config) for token counting, a PEFT LoRA adapter's two files. */
export type HubPurpose = 'model' | 'tokenizer' | 'adapter';
const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];

/**
 * Top-level files only (never `original/`, never *.bin, *.pth, *.gguf or ONNX). The weights are
 * `model.safetensors`, or the index and — once it is read — the shards it names (`shards`).
 */
export function neededFiles(files: RepoFile[], purpose: HubPurpose, shards?: ReadonlySet<string>): RepoFile[] {
  const top = files.filter((f) => !f.path.includes('/'));
  const names = new Set(top.map((f) => f.path));
  const wanted = (name: string) => {
    if (purpose === 'adapter') return ADAPTER_FILES.includes(name);
    // The tokenizer (a merged model carries it over, `score --tokenizer` reads it) and the config.
    if (isTokenizerSidecar(name) || name === 'config.json') return true;
    if (purpose === 'tokenizer') return false;
    if (CONFIG_FILES.includes(name)) return true;
    if (names.has(HUB_INDEX_FILE)) return name === HUB_INDEX_FILE || (shards?.has(name) ?? false);
    if (names.has('model.safetensors')) return name === 'model.safetensors';
    return name.endsWith('.safetensors');
  };
  return top.filter((f) => wanted(f.path));
}

/** Whether `repo` (a listing) holds the weights a purpose reads: some safetensors or their index; null when it does, else what it holds instead. */
export function missingWeights(files: RepoFile[], purpose: HubPurpose): string | null {
  const top = files.filter((f) => !f.path.includes('/')).map((f) => f.path);
  if (purpose === 'tokenizer') return null;
  const weights = purpose === 'adapter' ? ['adapter_model.safetensors'] : top.filter((n) => n.endsWith('.safetensors') || n === HUB_INDEX_FILE);
  if (purpose === 'adapter' ? top.includes(weights[0]) : weights.length > 0) return null;
  const other = top.filter((n) => /\.(bin|pt|pth|ckpt|gguf|onnx|h5|msgpack)$/.test(n));
  return other.length > 0 ? `only ${other.slice(0, 3).join(', ')}${other.length > 3 ? ', …' : ''}, which weightmix does not read` : 'no weights';
}

/** A shard of a numbered series, `model-00001-of-00002.safetensors`: the series is complete only with every number. */
const SERIES = /^(.*)-(\d+)-of-(\d+)\.safetensors$/;

/**
 * What a cached snapshot lacks for `purpose` (a download that broke off has linked some files only); undefined when nothing
 * is seen missing. With the commit's `listing` (tree-cache.ts): weightmix's, every file its download takes, at its listed size;
 * huggingface_hub's (a download that may have chosen its files: `allow_patterns`), the weights, their index and config.json.
 * Without one, judged from what the snapshot holds: the shards its index names, the rest of a numbered series, any weights at
 * all (config and tokenizer files cannot be judged then).
 */
export function missingFromSnapshot(dir: string, purpose: HubPurpose, listing?: TreeListing): string | undefined {
  const has = (name: string, size?: number) => snapshotHas(dir, name, size);
  if (listing !== undefined) {
    const shards = has(HUB_INDEX_FILE) ? indexShards(path.join(dir, HUB_INDEX_FILE)) : undefined;
    if (shards === null) return `a readable ${HUB_INDEX_FILE}`;
    const needed = neededFiles(listing.files, purpose, shards);
    const required = listing.own ? needed : needed.filter((f) => f.path === 'config.json' || f.path === HUB_INDEX_FILE || f.path.endsWith('.safetensors'));
    return listMissing(required.filter((f) => !has(f.path, f.size)).map((f) => f.path));
  }
  if (purpose === 'tokenizer') return undefined;
  if (purpose === 'adapter') return ADAPTER_FILES.filter((f) => !has(f)).join(', ') || undefined;
  if (has(HUB_INDEX_FILE)) {
    const shards = indexShards(path.join(dir, HUB_INDEX_FILE));
    if (shards === null) return `a readable ${HUB_INDEX_FILE}`;
    return listMissing([...shards].filter((s) => !has(s)));
  }
  const weights = fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors') && has(n));
  if (weights.length === 0) return 'the safetensors weights';
  // Each series (prefix, digits, count) by the shards present: its missing ones are counted, and the first few named, without
  // a step per shard of its count (a name's count may be 999999999).
  const series = new Map<string, { prefix: string; width: number; of: string; present: Set<number> }>();
  for (const name of weights) {
    const m = SERIES.exec(name);
    if (!m) continue;
    const key = `${m[1]}\u0000${m[2].length}\u0000${m[3]}`;
    if (!series.has(key)) series.set(key, { prefix: m[1], width: m[2].length, of: m[3], present: new Set() });
    series.get(key)!.present.add(Number(m[2]));
  }
  const named: string[] = [];
  let missing = 0;
  for (const { prefix, width, of, present } of series.values()) {
    const count = Number(of);
    const inRange = [...present].filter((i) => i >= 1 && i <= count).length;
    missing += count - inRange;
    for (let i = 1; i <= count && named.length < 3 && i <= inRange + 3; i++) {
      if (!present.has(i)) named.push(`${prefix}-${String(i).padStart(width, '0')}-of-${of}.safetensors`);
    }
  }
  return listMissing(named, missing);
}

/** The shard files an index names: strict JSON, each a relative file name, else the one-line error. */
export function readIndexShards(file: string): Set<string> {
  const doc = parseJsonStrict(fs.readFileSync(file, 'utf8'), { what: file }) as { weight_map?: Record<string, unknown> };
  const shards = new Set<string>();
  for (const shard of Object.values(doc?.weight_map ?? {})) {
    if (typeof shard !== 'string') throw new WeightmixError('InvalidIndex', `${file}: a weight_map entry is not a file name`);
    checkRelativeName(shard, file);
    shards.add(shard);
  }
  return shards;
}

/** The shard files an index names, or null where it is not a valid index (readIndexShards): the snapshot then lacks a readable one. */
function indexShards(file: string): Set<string> | null {
  try {
    return readIndexShards(file);
  } catch {
    return null;
  }
}

/** The first missing names (at most 3 shown) and how many are missing in all. */
function listMissing(names: string[], total = names.length): string | undefined {
  if (total === 0) return undefined;
  const shown = names.sort().slice(0, 3).join(', ');
  return total > 3 ? `${shown} and ${total - 3} more` : shown;
}
