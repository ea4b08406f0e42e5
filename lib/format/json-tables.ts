/**
 * The addon's fast readers of the JSON that opening a model reads (native/json_tables.h): a
 * safetensors header, an index's weight_map, as columns instead of a JSON tree. They vouch only for
 * an escape-free strict subset and return null for anything else, so the JavaScript readers
 * (json-strict.ts and the checks after it) still decide every other input, with their own errors.
 * The format layer cannot load the addon: engine/native.ts hands the readers over when it loads it.
 */

/** A header's tensors in the order written; `dtypes` index the dtype names given. */
export interface HeaderTableColumns {
  names: string[];
  dtypes: Uint8Array;
  /** names.length + 1 starts into `dims`. */
  shapeStarts: Uint32Array;
  dims: Float64Array;
  /** [begin, end) of each tensor, in turn. */
  offsets: Float64Array;
  /** `__metadata__` as key, value, key, value, …; null without one (or when it is null). */
  metadata: string[] | null;
}

/** An index's weight_map: names in the order written, each one's shard as an index into `files` (first appearance first). */
export interface WeightMapColumns {
  names: string[];
  shards: Uint32Array;
  files: string[];
}

export interface NativeJsonTables {
  readHeaderTable(json: Uint8Array, dtypeNames: readonly string[]): HeaderTableColumns | null;
  readWeightMapTable(json: Uint8Array): WeightMapColumns | null;
}

/** The addon's own results: names as one text, each name followed by '\n' (no escape-free JSON string holds one). */
export interface NativeJsonTablesAddon {
  readHeaderTable(json: Uint8Array, dtypeNames: readonly string[]): (Omit<HeaderTableColumns, 'names'> & { namesText: string }) | null;
  readWeightMapTable(json: Uint8Array): (Omit<WeightMapColumns, 'names'> & { namesText: string }) | null;
}

/** The readers over the addon's functions: names split out of its one text (one builtin call, not a Node-API string per name). */
export function jsonTablesOfAddon(addon: NativeJsonTablesAddon): NativeJsonTables {
  return {
    readHeaderTable: (json, dtypeNames) => withNames(addon.readHeaderTable(json, dtypeNames)),
    readWeightMapTable: (json) => withNames(addon.readWeightMapTable(json)),
  };
}

function withNames<T extends { namesText: string }>(raw: T | null): (Omit<T, 'namesText'> & { names: string[] }) | null {
  // An addon built before the names came as one text gives none: not vouched for, the JavaScript readers decide.
  if (raw === null || typeof raw.namesText !== 'string') return null;
  const { namesText, ...columns } = raw;
  const names = namesText === '' ? [] : namesText.split('\n');
  names.pop();
  return { ...columns, names };
}

let readers: NativeJsonTables | undefined;

/** Set (or, with undefined, clear) the readers; the results of every reader of this layer stay the same either way. */
export function useNativeJsonTables(tables: NativeJsonTables | undefined): void {
  readers = tables;
}

/** The readers, when the addon has been loaded. */
export function nativeJsonTables(): NativeJsonTables | undefined {
  return readers;
}
