/**
 * A checkpoint's tensors as columns (names and typed arrays, in `names` order): what the planner, the
 * compatibility check and the layout read, instead of a TensorLocation and a Map entry per tensor.
 * `Checkpoint.tensors` is built from the table only when a caller reads it; a checkpoint made by
 * hand (a view with its own `tensors` Map) gets a table built from that Map.
 */
import { DTYPE_NAMES, SafetensorsDtype } from '../format/dtypes';
import { dtypeCode, shapeAt } from '../format/header-columns';

/** Where one tensor is stored. */
export interface TensorLocation {
  /** The tensor's name. */
  name: string;
  /** Its dtype. */
  dtype: SafetensorsDtype;
  /** Its shape. */
  shape: number[];
  /** Shard file name relative to the model folder. */
  shard: string;
  /** Absolute path of the shard. */
  file: string;
  /** Absolute byte offset of the tensor's data in the shard. */
  offset: number;
  /** Bytes of data. */
  byteLength: number;
  /** Elements (the product of the shape). */
  elementCount: number;
}

export interface TensorTable {
  /** Tensor names, the checkpoint's `names` order. */
  names: readonly string[];
  /** Codes into DTYPE_NAMES. */
  dtypes: Uint8Array;
  /** names.length + 1 starts into `dims`. */
  shapeStarts: Uint32Array;
  dims: Float64Array;
  /** Absolute byte offsets in the tensor's file. */
  offsets: Float64Array;
  byteLengths: Float64Array;
  elementCounts: Float64Array;
  /** Per tensor, an index into `files` and `shardNames`. */
  fileIndex: Uint32Array;
  /** Absolute paths of the files the tensors are stored in. */
  files: readonly string[];
  /** The shard name (relative to the model folder) of each of `files`. */
  shardNames: readonly string[];
  /**
   * Per file (`files[f]`'s tensors, which are then one run of the table, in its order), the names each followed by '\n' as the addon's
   * header readers gave them, when at hand: its index check and the encoders take them so.
   */
  fileNamesTexts?: readonly string[];
  /**
   * True where each file's tensors lie one after the other in table order, as a table read from validated headers has them (their
   * layout check requires each begin to be the end before it): the planner then need not check a run of them tensor by tensor.
   */
  filesContiguous?: boolean;
  /** name → index, built on first lookup that the position hint does not answer. */
  byName?: Map<string, number>;
}

/** The dtype of tensor i. */
export function dtypeAt(table: TensorTable, i: number): SafetensorsDtype {
  return DTYPE_NAMES[table.dtypes[i]];
}

export function tensorShapeAt(table: TensorTable, i: number): number[] {
  return shapeAt(table, i);
}

/** Whether two tables list the same names in the same order, known from their header readers' texts (false where either lacks them). */
export function sameNameOrder(a: TensorTable, b: TensorTable): boolean {
  return a.fileNamesTexts !== undefined && b.fileNamesTexts !== undefined && sameJoined(a.fileNamesTexts, b.fileNamesTexts);
}

/**
 * Whether two lists of strings make the same text joined, without joining them (a MoE model's names are ~1.2 MB of text): the same
 * strings in turn at once, else slice by slice where their boundaries differ (two models sharded differently).
 */
export function sameJoined(a: readonly string[], b: readonly string[]): boolean {
  if (a.length === b.length && a.every((text, i) => text === b[i])) return true;
  let i = 0;
  let j = 0;
  let at = 0; // into a[i]
  let bt = 0; // into b[j]
  for (;;) {
    while (i < a.length && at === a[i].length) [i, at] = [i + 1, 0];
    while (j < b.length && bt === b[j].length) [j, bt] = [j + 1, 0];
    if (i === a.length || j === b.length) return i === a.length && j === b.length;
    const n = Math.min(a[i].length - at, b[j].length - bt);
    if (a[i].slice(at, at + n) !== b[j].slice(bt, bt + n)) return false;
    at += n;
    bt += n;
  }
}

/**
 * out[at + i] = shift + values[from + i] for every i (out may be values itself, at = from: each value shifted in place). A loop of
 * its own, as sumFrom: V8 optimizes it alone, not the planner or reader function that calls it once per shard (a loop in such a body
 * had V8 compile the whole body, ~25-80 ms of compiler time in an 18,867-tensor MoE plan).
 */
export function addShifted(out: Float64Array | Uint32Array, at: number, values: Float64Array | Uint32Array, from: number, shift: number): void {
  for (let i = from; i < values.length; i++) out[at + i - from] = shift + values[i];
}

/** `total` plus each value, in order. */
export function sumFrom(total: number, values: Float64Array): number {
  for (let i = 0; i < values.length; i++) total += values[i];
  return total;
}

/** Whether two column views hold the same bytes (one builtin compare, no step per value). */
export function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return (
    a.byteLength === b.byteLength &&
    Buffer.compare(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) === 0
  );
}

/** Whether tensors i of `a` and j of `b` have the same shape. */
export function sameShapeAt(a: TensorTable, i: number, b: TensorTable, j: number): boolean {
  const sa = a.shapeStarts[i];
  const sb = b.shapeStarts[j];
  const rank = a.shapeStarts[i + 1] - sa;
  if (b.shapeStarts[j + 1] - sb !== rank) return false;
  for (let k = 0; k < rank; k++) if (a.dims[sa + k] !== b.dims[sb + k]) return false;
  return true;
}

/** The index of `name`, or -1; `hint` is where it probably is (the same position in a model of the same layout). */
export function indexOfName(table: TensorTable, name: string, hint = -1): number {
  if (hint >= 0 && hint < table.names.length && table.names[hint] === name) return hint;
  if (table.byName === undefined) {
    const byName = new Map<string, number>();
    for (let i = 0; i < table.names.length; i++) byName.set(table.names[i], i);
    table.byName = byName;
  }
  return table.byName.get(name) ?? -1;
}

/** Tensor i as the public TensorLocation. */
export function locationAt(table: TensorTable, i: number): TensorLocation {
  const file = table.fileIndex[i];
  return {
    name: table.names[i],
    dtype: DTYPE_NAMES[table.dtypes[i]],
    shape: shapeAt(table, i),
    shard: table.shardNames[file],
    file: table.files[file],
    offset: table.offsets[i],
    byteLength: table.byteLengths[i],
    elementCount: table.elementCounts[i],
  };
}

/** Every tensor by name, in table order. */
export function locationMap(table: TensorTable): Map<string, TensorLocation> {
  const map = new Map<string, TensorLocation>();
  for (let i = 0; i < table.names.length; i++) map.set(table.names[i], locationAt(table, i));
  return map;
}

// The table each opened checkpoint was read into, and the Map built from it (a spread copy such as `{ ...ckpt, hub }` keeps the Map).
const TABLES = new WeakMap<object, TensorTable>();

/** Records `table` as the columns of `owner` (a checkpoint, or the tensors Map built from the table). */
export function attachTensorTable(owner: object, table: TensorTable): void {
  TABLES.set(owner, table);
}

/** Forgets the table of `owner` (its tensors were replaced). */
export function detachTensorTable(owner: object): void {
  TABLES.delete(owner);
}

/** The checkpoint's tensors as columns: the table it was opened into, or one built from its `tensors` Map and `names`. */
export function tensorTableOf(ckpt: { names: readonly string[]; tensors: Map<string, TensorLocation> }): TensorTable {
  const own = TABLES.get(ckpt);
  if (own !== undefined && own.names === ckpt.names) return own;
  const tensors = ckpt.tensors;
  const ofMap = TABLES.get(tensors);
  if (ofMap !== undefined && ofMap.names === ckpt.names && tensors.size === ckpt.names.length) return ofMap;
  return tableOfLocations(ckpt.names.map((name): [string, TensorLocation | undefined] => [name, tensors.get(name)]));
}

/** A table of the named locations given (a name without a location is left out: looking it up fails as the Map's lookup would). */
export function tableOfLocations(entries: readonly [string, TensorLocation | undefined][]): TensorTable {
  const present = entries.filter((e): e is [string, TensorLocation] => e[1] !== undefined);
  const count = present.length;
  const shapeStarts = new Uint32Array(count + 1);
  for (let i = 0; i < count; i++) shapeStarts[i + 1] = shapeStarts[i] + present[i][1].shape.length;
  const table: TensorTable = {
    names: present.map((e) => e[0]),
    dtypes: new Uint8Array(count),
    shapeStarts,
    dims: new Float64Array(shapeStarts[count]),
    offsets: new Float64Array(count),
    byteLengths: new Float64Array(count),
    elementCounts: new Float64Array(count),
    fileIndex: new Uint32Array(count),
    files: [],
    shardNames: [],
  };
  const fileIndex = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const l = present[i][1];
    table.dims.set(l.shape, shapeStarts[i]);
    table.dtypes[i] = dtypeCode(l.dtype);
    table.offsets[i] = l.offset;
    table.byteLengths[i] = l.byteLength;
    table.elementCounts[i] = l.elementCount;
    const key = `${l.file}\0${l.shard}`;
    let f = fileIndex.get(key);
    if (f === undefined) {
      fileIndex.set(key, (f = table.files.length));
      (table.files as string[]).push(l.file);
      (table.shardNames as string[]).push(l.shard);
    }
    table.fileIndex[i] = f;
  }
  return table;
}
