/**
 * The addon's fast readers of the JSON that opening a model reads (native/json_tables.h): a
 * safetensors header, an index's weight_map, as columns instead of a JSON tree. They vouch only for
 * an escape-free strict subset and return null for anything else, so the JavaScript readers
 * (json-strict.ts and the checks after it) still decide every other input, with their own errors.
 * The format layer cannot load the addon: engine/native.ts hands the readers over when it loads it.
 * The same channel carries the addon's header encoder (safetensors.ts's encodeHeaderColumns for plain names).
 */
import { DTYPE_BITS, DTYPE_NAMES } from './dtypes';

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
  /** The names as the addon gave them: each followed by '\n'. */
  namesText?: string;
  /**
   * The layout as the addon checked it (native/header_layout.h, header-columns.ts's validatedColumns' rules): each tensor's begin,
   * byte length and element count, null where that check fails; absent where it made none (older addons, a tie it leaves to
   * JavaScript's name order).
   */
  laidOut?: HeaderLayoutColumns | null;
}

/** A header's tensors laid out: per tensor, its begin relative to the data section, its bytes and its elements. */
export interface HeaderLayoutColumns {
  begins: Float64Array;
  byteLengths: Float64Array;
  elementCounts: Float64Array;
}

/** An index's weight_map: names in the order written, each one's shard as an index into `files` (first appearance first). */
export interface WeightMapColumns {
  names: string[];
  shards: Uint32Array;
  files: string[];
  /** The names as the addon gave them: each followed by '\n'. */
  namesText?: string;
}

/**
 * Stored tensors as weightMapAgrees compares them with an index: names (unique), name i in `shardNames[fileIndex[i]]`; when at hand,
 * `fileNamesTexts`: the names' texts file by file as the header reader gave them, which joined are the names each followed by '\n'.
 */
export interface StoredNames {
  names: readonly string[];
  fileNamesTexts?: readonly string[];
  fileIndex: Uint32Array;
  shardNames: readonly string[];
}

export interface NativeJsonTables {
  readHeaderTable(json: Uint8Array, dtypeNames: readonly string[]): HeaderTableColumns | null;
  /** Its `namesText` and `names` cross from the addon on first read (the index stays there): a checkpoint whose index agrees with its headers never reads them. */
  readWeightMapTable(json: Uint8Array): WeightMapColumns | null;
  /**
   * Whether an index's columns (readWeightMapTable's) list exactly the stored names, each once, each in its shard: one call, no
   * string per listed name. False for anything else, which the caller then decides with its own checks.
   */
  weightMapAgrees(listed: WeightMapColumns, stored: StoredNames): boolean;
  /**
   * safetensors.ts's encodeHeaderColumns for plain names (nothing to escape, no lone surrogate, no '\n'), dtypes as codes into DTYPE_NAMES and
   * `__metadata__` already encoded; null (declined) for anything else, which the JavaScript encoder then writes or refuses.
   */
  encodeHeader(
    names: readonly string[],
    dtypes: Uint8Array,
    shapes: { shapeStarts: Uint32Array; dims: Float64Array },
    metadataJson: string | null,
    maxHeaderBytes: number,
  ): { bytes: Buffer; starts: Float64Array; dataBytes: number } | null;
  /**
   * engine/model-files.ts's index text for plain names (printable ASCII, nothing to escape, no leading digit, each listed once): `prefix`,
   * the weight_map of every shard's names (sorted, each line ending in its shard's `tails` entry), `suffix`, as bytes; null (declined) for
   * anything else, which model-files.ts then writes itself. Absent with an addon older than it.
   */
  encodeIndex?(shardNames: readonly (readonly string[])[], tails: readonly string[], prefix: string, suffix: string): Buffer | null;
}

/** The addon's own functions: names as one text, each name followed by '\n' (no escape-free JSON string holds one). */
export interface NativeJsonTablesAddon {
  /** With `dtypeBits` (one per dtype name; older addons ignore it), the layout checked too (`laidOut`). */
  readHeaderTable(json: Uint8Array, dtypeNames: readonly string[], dtypeBits?: Uint32Array): (Omit<HeaderTableColumns, 'names'> & { namesText: string }) | null;
  /** `map` is the index kept native (its names table over `json`, which it holds rather than copies: nothing may change those bytes while `map` lives) for weightMapNamesText and weightMapAgrees. */
  readWeightMapTable(json: Uint8Array): { map: NativeWeightMap; shards: Uint32Array; files: string[] } | null;
  weightMapNamesText(map: NativeWeightMap): string;
  /** `namesText` one string, or (with `jsonTextLists`) a list of strings that joined make it: no join of megabytes in JavaScript. */
  weightMapAgrees(map: NativeWeightMap, namesText: string | readonly string[], fileOf: Uint32Array, shardNames: readonly string[]): boolean;
  encodeHeaderColumns(
    namesText: string,
    dtypes: Uint8Array,
    shapeStarts: Uint32Array,
    dims: Float64Array,
    dtypeNames: readonly string[],
    dtypeBits: Uint32Array,
    metadataJson: string | null,
    maxHeaderBytes: number,
    /** The names are a header reader's (namesTextIs), which refuses a key given twice: the encoder need not look for one (older addons ignore it). */
    namesUnique?: boolean,
  ): { bytes: Buffer; starts: Float64Array; dataBytes: number } | null;
  encodeIndexWeightMap?(
    namesText: string | readonly string[],
    shardCounts: Uint32Array,
    tails: readonly string[],
    prefix: string,
    suffix: string,
  ): Buffer | null;
  /** Whether the two functions above take their names text as a list of strings (absent in older addons: one string only). */
  jsonTextLists?: boolean;
}

/** An index read by the addon and kept there (an external value: only the addon reads it). */
export type NativeWeightMap = { readonly nativeWeightMap: unique symbol };

const DTYPE_BIT_COLUMN = Uint32Array.from(DTYPE_NAMES, (d) => DTYPE_BITS[d]);

/** The index each weight_map's columns were read from, kept by the addon (columns made elsewhere have none). */
const nativeMaps = new WeakMap<WeightMapColumns, NativeWeightMap>();

// Name lists whose text (each name followed by '\n') is already at hand, as the header reader gave it: encoders join none of them.
const NAMES_TEXTS = new WeakMap<readonly string[], string>();

/**
 * Records that `names` (never changed afterwards) are the names of `text`, each followed by '\n': one header's names as the addon's reader
 * gave them, which a checkpoint's layout hands to the header and index encoders (18,867 strings a MoE model, joined once each time).
 * Only such texts: the header encoder takes a recorded list's names as each given once, as that reader vouched (it refuses a repeated key).
 */
export function namesTextIs(names: readonly string[], text: string): void {
  NAMES_TEXTS.set(names, text);
}

/** The names each followed by '\n': the text recorded for this list, or their join. */
function namesTextOf(names: readonly string[]): string {
  return NAMES_TEXTS.get(names) ?? joinedNames(names);
}

/** The names each followed by '\n', joined. */
function joinedNames(names: readonly string[]): string {
  return names.length === 0 ? '' : names.join('\n') + '\n';
}

/** The readers over the addon's functions: names split out of its one text (one builtin call, not a Node-API string per name). */
export function jsonTablesOfAddon(addon: NativeJsonTablesAddon): NativeJsonTables {
  const encodeIndexWeightMap = addon.encodeIndexWeightMap;
  // The texts as the addon takes them: the list itself where it can, else joined here.
  const textArgument = (texts: readonly string[]): string | readonly string[] => (addon.jsonTextLists === true ? texts : texts.join(''));
  return {
    ...(encodeIndexWeightMap && {
      encodeIndex(shardNames, tails, prefix, suffix) {
        // Every name's text (each followed by '\n', as the header readers give them), shard by shard: no string per name.
        return encodeIndexWeightMap.call(
          addon,
          textArgument(shardNames.map(namesTextOf)),
          Uint32Array.from(shardNames, (names) => names.length),
          tails,
          prefix,
          suffix,
        );
      },
    }),
    readHeaderTable(json, dtypeNames) {
      // The layout is checked there too when the dtypes are this layer's (their bits known).
      const raw = addon.readHeaderTable(json, dtypeNames, dtypeNames === DTYPE_NAMES ? DTYPE_BIT_COLUMN : undefined);
      if (raw === null) return null;
      // One literal, fields in one order: every header's columns share a shape (a spread of the addon's object did not, and each new
      // shape deoptimized the code that reads them).
      return {
        names: splitNames(raw.namesText),
        dtypes: raw.dtypes,
        shapeStarts: raw.shapeStarts,
        dims: raw.dims,
        offsets: raw.offsets,
        metadata: raw.metadata,
        namesText: raw.namesText,
        laidOut: raw.laidOut,
      };
    },
    readWeightMapTable(json) {
      const raw = addon.readWeightMapTable(json);
      if (raw === null) return null;
      let namesText: string | undefined;
      let names: string[] | undefined;
      const columns: WeightMapColumns = {
        shards: raw.shards,
        files: raw.files,
        // The names cross from the addon only when read: a checkpoint whose index agrees with its headers never reads them.
        get namesText() {
          namesText ??= addon.weightMapNamesText(raw.map);
          return namesText;
        },
        get names() {
          names ??= splitNames(this.namesText!);
          return names;
        },
      };
      nativeMaps.set(columns, raw.map);
      return columns;
    },
    encodeHeader(names, dtypes, shapes, metadataJson, maxHeaderBytes) {
      // The addon declines a name with anything to escape or a lone surrogate, which the JavaScript encoder then writes or refuses (a '\n' in a
      // name makes the count differ: declined too); a test here cost more than the encoding.
      const read = NAMES_TEXTS.get(names);
      const text = read ?? joinedNames(names);
      return addon.encodeHeaderColumns(
        text,
        dtypes,
        shapes.shapeStarts,
        shapes.dims,
        DTYPE_NAMES,
        DTYPE_BIT_COLUMN,
        metadataJson,
        maxHeaderBytes,
        read !== undefined,
      );
    },
    weightMapAgrees(listed, stored) {
      // Only an index this addon read is kept there to check against; for any other, false leaves the decision to the caller's checks.
      const map = nativeMaps.get(listed);
      // A name holding '\n' would split in two: the count then differs, and the answer is false, as it must be (no vouched-for index lists such a name).
      if (map === undefined || stored.names.length === 0) return false;
      const texts = stored.fileNamesTexts ?? [stored.names.join('\n') + '\n'];
      return addon.weightMapAgrees(map, textArgument(texts), stored.fileIndex, stored.shardNames);
    },
  };
}

/** Names each followed by '\n', as a list. */
function splitNames(text: string): string[] {
  const names = text.split('\n');
  names.pop();
  return names;
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
