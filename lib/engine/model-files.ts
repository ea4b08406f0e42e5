/** The non-tensor files of an output model: index, sidecars, config dtype and the model card. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { INDEX_FILE, SidecarFolder } from '../model/checkpoint';
import { confinedRealPath } from '../model/paths';
import type { PlannedModel } from './plan';
import { FloatDtype, TORCH_DTYPE_NAMES } from '../format/dtypes';
import { jsonStrings } from '../format/json-string';
import { nativeJsonTables } from '../format/json-tables';

/** index.json rebuilt from what was planned and written: total_size is the tensor bytes, as HF writes it. */
export async function writeIndex(model: PlannedModel): Promise<void> {
  await preparedIndex(model)();
}

/**
 * writeIndex in two steps: the bytes made now, the file written by the function returned (a failure to make them is thrown there,
 * not here). A run makes them while the engine writes the shards, since a MoE index sorts 18,867 names, and writes them once the
 * shards' space is reserved (engine/alongside.ts), which on tmpfs comes near the end of the run.
 */
export function preparedIndex(model: PlannedModel): () => Promise<void> {
  if (!model.indexed) return async () => {};
  let bytes: Buffer | string;
  try {
    bytes = indexFile(model);
  } catch (error) {
    return async () => {
      throw error;
    };
  }
  return () => fs.promises.writeFile(path.join(model.dir, INDEX_FILE), bytes);
}

/** indexText's bytes: written by the addon when it vouches for every name (no string, Map entry or sort compare per tensor in JavaScript), else indexText. */
export function indexFile(model: Pick<PlannedModel, 'shards' | 'tensorBytes'>): Buffer | string {
  const { prefix, suffix } = indexFrame(model.tensorBytes);
  const tails = model.shards.map((shard) => shardTail(shard.name));
  const encoded = nativeJsonTables()?.encodeIndex?.(
    model.shards.map((shard) => shard.names),
    tails,
    prefix,
    suffix,
  );
  return encoded ?? indexText(model);
}

/** The index's text around its weight_map object. */
function indexFrame(tensorBytes: number): { prefix: string; suffix: string } {
  return { prefix: `{\n  "metadata": {\n    "total_size": ${JSON.stringify(tensorBytes)}\n  },\n  "weight_map": `, suffix: '\n}\n' };
}

/** What follows a name on its weight_map line: the shard's name as JSON. */
function shardTail(shard: string): string {
  return `: ${JSON.stringify(shard)}`;
}

/**
 * The index's text: what `JSON.stringify(doc, null, 2)` gives for a weight_map object whose keys were set in sorted
 * order (array-index names first, ascending, as an object enumerates them), written from the shards' name columns.
 */
export function indexText(model: Pick<PlannedModel, 'shards' | 'tensorBytes'>): string {
  // Each name → its line's tail (the shard's name as JSON, made once per shard).
  const shardOf = new Map<string, string>();
  for (const shard of model.shards) {
    const tail = shardTail(shard.name);
    for (const name of shard.names) shardOf.set(name, tail);
  }
  // The default sort (UTF-16 code units, as Object.keys(…).sort() did), no comparator to call per pair.
  const names = [...shardOf.keys()].sort();
  const indices = names.filter(isArrayIndex).sort((x, y) => Number(x) - Number(y));
  const ordered = indices.length === 0 ? names : [...indices, ...names.filter((n) => !isArrayIndex(n))];
  // One string per line, joined once (no rope grown line by line); a name with nothing to escape is quoted as it is.
  const quoted = jsonStrings(ordered);
  const lines = ordered.map((name, i) => `    ${quoted[i]}${shardOf.get(name)}`);
  const weightMap = lines.length === 0 ? '{}' : `{\n${lines.join(',\n')}\n  }`;
  const { prefix, suffix } = indexFrame(model.tensorBytes);
  return prefix + weightMap + suffix;
}

/** A name an object keeps among its integer indices (a canonical uint32 below 2^32 − 1). */
function isArrayIndex(name: string): boolean {
  const first = name.charCodeAt(0);
  return first >= 48 && first <= 57 && /^(0|[1-9][0-9]{0,9})$/.test(name) && Number(name) < 2 ** 32 - 1;
}

/** Copies the sidecar files (config, tokenizer, templates, …) of `from`, those `only` accepts; rewrites config's dtype when it changed. */
export async function copySidecars(
  from: SidecarFolder,
  dir: string,
  dtype: FloatDtype | undefined,
  only: (name: string) => boolean = () => true,
): Promise<string[]> {
  const copied: string[] = [];
  for (const name of from.sidecars) {
    if (!only(name)) continue;
    const src = confinedRealPath(from.dir, name, from.dir);
    const dst = path.join(dir, name);
    if (name === 'config.json' && dtype && from.config) {
      const config = { ...from.config };
      if ('dtype' in config) config.dtype = TORCH_DTYPE_NAMES[dtype];
      else config.torch_dtype = TORCH_DTYPE_NAMES[dtype];
      await fs.promises.writeFile(dst, JSON.stringify(config, null, 2) + '\n');
    } else {
      await fs.promises.copyFile(src, dst);
    }
    copied.push(name);
  }
  return copied;
}

/** Where a hub-sourced input came from (lib/hub's HubSource; declared here so that engine/ needs nothing above it). */
export interface SourceCommit {
  repo: string;
  revision: string;
  commit: string;
}

export interface ModelCard {
  title: string;
  /** `hub`: the source came from the hub; the card names its repo and commit. */
  sources: { role: string; dir: string; hub?: SourceCommit }[];
  lines: string[];
  recipe: Record<string, unknown>;
}

export async function writeModelCard(dir: string, card: ModelCard): Promise<void> {
  const front = [
    '---',
    'library_name: transformers',
    'tags:',
    '- merge',
    '- weightmix',
    'base_model:',
    ...card.sources.map((s) => `- ${s.hub?.repo ?? s.dir}`),
    '---',
  ];
  const body = [
    `# ${card.title}`,
    '',
    'Merged with [weightmix](https://www.npmjs.com/package/weightmix).',
    '',
    ...card.sources.map((s) => `- ${s.role}: ${describeSource(s)}`),
    ...card.lines.map((l) => `- ${l}`),
    '',
    '## Recipe',
    '',
    '```json',
    JSON.stringify(card.recipe, null, 2),
    '```',
    '',
  ];
  await fs.promises.writeFile(path.join(dir, 'README.md'), [...front, ...body].join('\n'));
}

/** "`ORG/NAME` at commit SHA (revision main)" for a hub source, the folder otherwise. */
function describeSource(s: { dir: string; hub?: SourceCommit }): string {
  return s.hub ? `\`${s.hub.repo}\` at commit \`${s.hub.commit}\` (revision \`${s.hub.revision}\`)` : `\`${s.dir}\``;
}

/** A source's short name: `ORG/NAME` for a hub model, the folder's name otherwise. */
export function modelName(model: { dir: string; hub?: SourceCommit }): string {
  return model.hub?.repo ?? path.basename(model.dir);
}
