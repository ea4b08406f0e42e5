/**
 * A safetensors header's JSON → its tensor entries and metadata as declared: field types checked,
 * sizes and layout not yet (safetensors.ts checks those, in layout order, as the crate does). The
 * addon's reader (json-tables.ts) gives the same entries for the usual escape-free header without a
 * JSON tree; anything it does not vouch for is read here as strict JSON, with this file's errors.
 */
import { isUtf8 } from 'node:buffer';
import { WeightmixError } from '../errors';
import { describeJson, SafetensorsError, shapeError, showName } from './safetensors-errors';
import { DTYPE_BITS, DTYPE_NAMES, SafetensorsDtype } from './dtypes';
import { parseJsonStrict } from './json-strict';
import { HeaderTableColumns, nativeJsonTables } from './json-tables';

/** One tensor of a safetensors header. */
export interface TensorEntry {
  /** The tensor's name. */
  name: string;
  /** Its dtype. */
  dtype: SafetensorsDtype;
  /** Its shape. */
  shape: number[];
  /** [begin, end) relative to `dataStart`. */
  dataOffsets: [number, number];
  /** Bytes of data. */
  byteLength: number;
  /** Elements (the product of the shape). */
  elementCount: number;
}

const ENTRY_FIELDS = ['dtype', 'shape', 'data_offsets'] as const;
export const METADATA_KEY = '__metadata__';
// A \u escape can spell half a surrogate pair, which no UTF-8 text can hold; serde_json rejects it.
export const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The entries and metadata of a header's JSON (the bytes after the length prefix), in the order written. */
export function readHeaderEntries(
  headerJson: Buffer,
  file: string,
  table: HeaderTableColumns | null = readHeaderTable(headerJson, file),
): { declared: DeclaredTensor[]; metadata: Record<string, string> | null } {
  return table ? fromColumns(table) : readDeclared(headerJson, file);
}

/** The text checks, then the addon's columns of the header, or null where the addon is not loaded or does not vouch for the text. */
export function readHeaderTable(headerJson: Buffer, file: string): HeaderTableColumns | null {
  checkHeaderText(headerJson, file);
  return nativeJsonTables()?.readHeaderTable(headerJson, DTYPE_NAMES) ?? null;
}

/** UTF-8 check, then '{' check: each failure with its own crate error. */
function checkHeaderText(headerJson: Buffer, file: string): void {
  if (!isUtf8(headerJson)) throw new SafetensorsError('InvalidHeader', `${file}: the header is not valid UTF-8`);
  if (headerJson[0] !== 0x7b) {
    const found = headerJson.length === 0 ? 'it is empty' : `it starts with byte 0x${headerJson[0].toString(16).padStart(2, '0')}`;
    throw new SafetensorsError('InvalidHeaderStart', `${file}: the header must start with '{' but ${found}`);
  }
}

/** The tensor entries and metadata of a header's JSON, read as a JSON tree (anything the addon's reader did not vouch for). */
function readDeclared(headerJson: Buffer, file: string): { declared: DeclaredTensor[]; metadata: Record<string, string> | null } {
  const root = decodeHeaderJson(headerJson, file);
  let metadata: Record<string, string> | null = null;
  const declared: DeclaredTensor[] = [];
  // UTF-8 cannot encode a lone surrogate, so only a \u escape can spell one: most headers have none.
  const mayHoldLoneSurrogates = headerJson.includes('\\u');
  for (const key of Object.keys(root)) {
    if (mayHoldLoneSurrogates && LONE_SURROGATE.test(key)) throw shapeError(file, `tensor name ${showName(key)} holds a lone surrogate`);
    if (key === METADATA_KEY) metadata = readMetadata(root[key], file);
    else declared.push(readTensorEntry(key, root[key], file));
  }
  return { declared, metadata };
}

/** The same entries and metadata from the addon's columns (native/json_tables.h), which it gives only for entries that pass readTensorEntry's checks. */
function fromColumns(columns: HeaderTableColumns): { declared: DeclaredTensor[]; metadata: Record<string, string> | null } {
  const { names, dtypes, shapeStarts, dims, offsets } = columns;
  const declared: DeclaredTensor[] = new Array(names.length);
  for (let i = 0; i < names.length; i++) {
    const start = shapeStarts[i];
    const rank = shapeStarts[i + 1] - start;
    // Exact-size arrays: a first push reserves 17 slots, and there are tens of thousands of shapes.
    const shape = rank === 1 ? [dims[start]] : rank === 2 ? [dims[start], dims[start + 1]] : Array.from(dims.subarray(start, start + rank));
    declared[i] = { name: names[i], dtype: DTYPE_NAMES[dtypes[i]], shape, dataOffsets: [offsets[2 * i], offsets[2 * i + 1]], byteLength: 0, elementCount: 0 };
  }
  return { declared, metadata: tableMetadata(columns) };
}

/** `__metadata__` of the addon's columns, as readMetadata builds it. */
export function tableMetadata(columns: HeaderTableColumns): Record<string, string> | null {
  if (columns.metadata === null) return null;
  // A null prototype: keys from the file stay plain data.
  const metadata = Object.create(null) as Record<string, string>;
  for (let k = 0; k < columns.metadata.length; k += 2) metadata[columns.metadata[k]] = columns.metadata[k + 1];
  return metadata;
}

/** Strict JSON, whose root must be an object (checkHeaderText has run). */
function decodeHeaderJson(headerJson: Buffer, file: string): Record<string, unknown> {
  let root: unknown;
  try {
    // Only unsigned integers may appear in a header: shapes and offsets (serde rejects 2.0 and -0 too).
    root = parseJsonStrict(headerJson.toString('utf8'), { what: `${file}: header`, unsignedIntegersOnly: true });
  } catch (e) {
    if (e instanceof WeightmixError && e.code === 'InvalidJson') {
      throw new SafetensorsError('InvalidHeaderDeserialization', e.message, { cause: e });
    }
    throw e;
  }
  if (!isPlainObject(root)) throw shapeError(file, 'the header must be a JSON object');
  return root;
}

function readMetadata(value: unknown, file: string): Record<string, string> | null {
  // serde reads `"__metadata__": null` as no metadata.
  if (value === null) return null;
  if (!isPlainObject(value)) throw shapeError(file, `${METADATA_KEY} must be an object of strings, not ${describeJson(value)}`);
  // A null prototype, so that keys from the file such as "__proto__" or "constructor" stay plain data.
  const metadata: Record<string, string> = Object.create(null);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw shapeError(file, `${METADATA_KEY} ${showName(key)} must be a string, not ${describeJson(v)}`);
    if (LONE_SURROGATE.test(key) || LONE_SURROGATE.test(v)) throw shapeError(file, `${METADATA_KEY} ${showName(key)} holds a lone surrogate`);
    metadata[key] = v;
  }
  return metadata;
}

/** A tensor entry whose fields have the right types; its sizes are not checked yet (byteLength and elementCount are 0 until validateLayout). */
export type DeclaredTensor = TensorEntry;

/** Checks the fields of one tensor entry; sizes are checked later, in layout order, as the crate does. */
function readTensorEntry(name: string, value: unknown, file: string): DeclaredTensor {
  // No closure for the message's subject: a MoE header has tens of thousands of entries.
  const tensor = tensorSubject;
  if (!isPlainObject(value))
    throw shapeError(file, `${tensor(name)}: the entry must be an object with dtype, shape and data_offsets, not ${describeJson(value)}`);
  const fields = Object.keys(value);
  // The usual entry has exactly the three fields; only an odd one pays for finding which is off.
  if (fields.length !== 3 || !Object.hasOwn(value, 'dtype') || !Object.hasOwn(value, 'shape') || !Object.hasOwn(value, 'data_offsets')) {
    const extra = fields.find((k) => !(ENTRY_FIELDS as readonly string[]).includes(k));
    if (extra !== undefined) throw shapeError(file, `${tensor(name)}: unexpected field ${showName(extra)}`);
    const missing = ENTRY_FIELDS.find((k) => !Object.hasOwn(value, k));
    if (missing !== undefined) throw shapeError(file, `${tensor(name)}: missing field "${missing}"`);
  }

  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') throw shapeError(file, `${tensor(name)}: dtype must be a string, not ${describeJson(dtype)}`);
  if (!Object.hasOwn(DTYPE_BITS, dtype)) throw shapeError(file, `${tensor(name)}: unknown dtype ${showName(dtype)}`);
  if (!Array.isArray(shape) || !allSizes(shape)) {
    throw shapeError(file, `${tensor(name)}: shape must be an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isSize(offsets[0]) || !isSize(offsets[1])) {
    throw shapeError(file, `${tensor(name)}: data_offsets must be [begin, end], two non-negative integers`);
  }
  // The parsed arrays are ours (JSON.parse made them for this call): kept, not copied.
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], dataOffsets: offsets as [number, number], byteLength: 0, elementCount: 0 };
}

export function tensorSubject(name: string): string {
  return `tensor ${showName(name)}`;
}

export function allSizes(values: readonly unknown[]): boolean {
  for (let i = 0; i < values.length; i++) if (!isSize(values[i])) return false;
  return true;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isSize(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 && !Object.is(value, -0);
}
