/**
 * A validated safetensors header's tensors as columns (names and typed arrays), in layout order: what
 * opening a model keeps instead of a TensorEntry per tensor. `SafetensorsHeader.tensors` is built from
 * them only when a caller reads it. Columns are vouched for here only when the header is already in
 * layout order and valid; anything else goes through the entry path, which decides with its exact errors.
 */
import { DTYPE_BITS, DTYPE_NAMES, SafetensorsDtype } from './dtypes';
import type { TensorEntry } from './header-entries';
import type { HeaderTableColumns } from './json-tables';

const DTYPE_CODES = new Map(DTYPE_NAMES.map((d, i) => [d, i]));

/** A header's tensors in layout order. */
export interface HeaderColumns {
  names: string[];
  /** Codes into DTYPE_NAMES. */
  dtypes: Uint8Array;
  /** names.length + 1 starts into `dims`. */
  shapeStarts: Uint32Array;
  dims: Float64Array;
  /** Each tensor's begin, relative to the data section. */
  begins: Float64Array;
  byteLengths: Float64Array;
  elementCounts: Float64Array;
  /** The names each followed by '\n', as the addon gave them, when it read the header. */
  namesText?: string;
}

/** The dtype code of a dtype name (DTYPE_NAMES' index). */
export function dtypeCode(dtype: SafetensorsDtype): number {
  return DTYPE_CODES.get(dtype)!;
}

/**
 * The addon's columns, validated as safetensors.ts's validateLayout validates entries (contiguous offsets from 0,
 * sizes that fit, byte lengths that match), or null when they are not in layout order or anything is amiss: then the
 * entry path sorts and decides, with the exact error. Where the addon checked the layout (`laidOut`), its answer stands.
 */
export function validatedColumns(columns: HeaderTableColumns): HeaderColumns | null {
  const { names, dtypes, shapeStarts, dims, offsets, laidOut } = columns;
  // The addon's check of the same rules, where it made one (test/header-layout.test.ts compares the two).
  if (laidOut === null) return null;
  if (laidOut !== undefined) {
    const { begins, byteLengths, elementCounts } = laidOut;
    return { names, dtypes, shapeStarts, dims, begins, byteLengths, elementCounts, namesText: columns.namesText };
  }
  const count = names.length;
  const begins = new Float64Array(count);
  const byteLengths = new Float64Array(count);
  const elementCounts = new Float64Array(count);
  let end = 0;
  for (let i = 0; i < count; i++) {
    const begin = offsets[2 * i];
    const stop = offsets[2 * i + 1];
    // Layout order is (begin, end, name); contiguity makes begin === end of the one before, so only equal pairs tie.
    if (stop < begin || begin !== end) return null;
    if (i > 0 && begin === offsets[2 * i - 2] && stop === offsets[2 * i - 1] && !(names[i - 1] < names[i])) return null;
    end = stop;
    let elements = 1;
    for (let k = shapeStarts[i]; k < shapeStarts[i + 1]; k++) {
      const dim = dims[k];
      if (dim !== 0 && elements > Math.floor(Number.MAX_SAFE_INTEGER / dim)) return null;
      elements *= dim;
    }
    const bytes = exactByteLength(DTYPE_BITS[DTYPE_NAMES[dtypes[i]]], elements);
    if (bytes !== stop - begin) return null;
    begins[i] = begin;
    byteLengths[i] = bytes;
    elementCounts[i] = elements;
  }
  return { names, dtypes, shapeStarts, dims, begins, byteLengths, elementCounts, namesText: columns.namesText };
}

/** Bytes of `elements` elements of `bits` bits, or -1 for a partial byte or past 2^53-1 (byteLengthOf's cases, as a value). */
function exactByteLength(bits: number, elements: number): number {
  const common = bits % 8 === 0 ? 8 : bits % 4 === 0 ? 4 : bits % 2 === 0 ? 2 : 1;
  const elementsPerGroup = 8 / common;
  const bytesPerGroup = bits / common;
  if (elements % elementsPerGroup !== 0) return -1;
  const groups = elements / elementsPerGroup;
  return groups > Math.floor(Number.MAX_SAFE_INTEGER / bytesPerGroup) ? -1 : groups * bytesPerGroup;
}

/** The shape of tensor i, as a new array. */
export function shapeAt(columns: Pick<HeaderColumns, 'shapeStarts' | 'dims'>, i: number): number[] {
  const start = columns.shapeStarts[i];
  const rank = columns.shapeStarts[i + 1] - start;
  // Exact-size arrays: a first push reserves 17 slots.
  return rank === 1
    ? [columns.dims[start]]
    : rank === 2
      ? [columns.dims[start], columns.dims[start + 1]]
      : Array.from(columns.dims.subarray(start, start + rank));
}

/** The entries the object path would have made from the same header. */
export function entriesOf(columns: HeaderColumns): TensorEntry[] {
  const entries: TensorEntry[] = new Array(columns.names.length);
  for (let i = 0; i < entries.length; i++) {
    const begin = columns.begins[i];
    const byteLength = columns.byteLengths[i];
    entries[i] = {
      name: columns.names[i],
      dtype: DTYPE_NAMES[columns.dtypes[i]],
      shape: shapeAt(columns, i),
      dataOffsets: [begin, begin + byteLength],
      byteLength,
      elementCount: columns.elementCounts[i],
    };
  }
  return entries;
}

/** Validated entries (in layout order) as columns. */
export function columnsOfEntries(entries: readonly TensorEntry[]): HeaderColumns {
  const count = entries.length;
  const shapeStarts = new Uint32Array(count + 1);
  for (let i = 0; i < count; i++) shapeStarts[i + 1] = shapeStarts[i] + entries[i].shape.length;
  const dims = new Float64Array(shapeStarts[count]);
  const columns: HeaderColumns = {
    names: entries.map((e) => e.name),
    dtypes: new Uint8Array(count),
    shapeStarts,
    dims,
    begins: new Float64Array(count),
    byteLengths: new Float64Array(count),
    elementCounts: new Float64Array(count),
  };
  for (let i = 0; i < count; i++) {
    const e = entries[i];
    dims.set(e.shape, shapeStarts[i]);
    columns.dtypes[i] = dtypeCode(e.dtype);
    columns.begins[i] = e.dataOffsets[0];
    columns.byteLengths[i] = e.byteLength;
    columns.elementCounts[i] = e.elementCount;
  }
  return columns;
}
