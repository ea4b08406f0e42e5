/**
 * The safetensors format, read and written with the Rust crate's validation rules. Where this module
 * differs from the crate, on purpose:
 * - a header that does not start with '{' is InvalidHeaderStart (the crate has that check disabled);
 * - a header length past the end of the file is HeaderTooSmall (the crate: InvalidHeaderLength);
 * - duplicate JSON keys and extra fields in a tensor entry are refused (serde keeps the last / ignores them);
 * - integers above 2^53 − 1 are InvalidHeaderDeserialization: a double cannot hold them, so they are
 *   refused rather than rounded (the crate, in u64, reports ValidationOverflow later);
 * - element counts above 2^53 − 1 are ValidationOverflow even where the crate's u64 byte size would fit;
 * - a tensor entry written as a JSON array (`["F32", [2], [0, 8]]`, which serde reads as the struct's
 *   fields in order) and a dtype written as an externally tagged unit variant (`{"F32": null}`) are
 *   InvalidHeaderDeserialization: no writer produces them, and each would be a second spelling to check.
 * Every dtype of the crate (0.8: 22, the FNUZ F8 variants included) is read; the engine computes only on
 * F32, F16 and BF16 and copies the bytes of every other dtype.
 */
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import { checkPath, checkTensorList, ioError, isSystemError, SafetensorsError, showName, showShape } from './safetensors-errors';
import { DTYPE_BITS, DTYPE_NAMES, SafetensorsDtype } from './dtypes';
import {
  DeclaredTensor,
  isSize,
  LONE_SURROGATE,
  METADATA_KEY,
  readHeaderEntries,
  readHeaderTable,
  tableMetadata,
  tensorSubject,
  TensorEntry,
} from './header-entries';
import { isPlainJsonString } from './json-string';
import { encodeMetadata, nativeEncoding, shapeColumns, ShapeColumns } from './header-encoding';
import { columnsOfEntries, entriesOf, HeaderColumns, shapeAt, validatedColumns } from './header-columns';
import type { HeaderMemo } from './header-memo';
import { byteLengthOf, elementCountOf } from './tensor-sizes';

// The format's element types and their sizes are part of its surface (format/dtypes.ts declares them).
export type { SafetensorsDtype } from './dtypes';
export { DTYPE_BITS } from './dtypes';
export { SafetensorsError } from './safetensors-errors';
export type { SafetensorsErrorCode } from './safetensors-errors';
export type { TensorEntry } from './header-entries';
export { dtypeByteLength } from './tensor-sizes';

/** A parsed, validated safetensors header. */
export interface SafetensorsHeader {
  /** The file it was read from. */
  file: string;
  /** The JSON header's length in bytes. */
  headerLength: number;
  /** 8 + headerLength: where the data section starts in the file. */
  dataStart: number;
  /** The file's size in bytes. */
  fileSize: number;
  /** Sorted by data offset (ties, which only zero-sized tensors can have, by name). */
  tensors: TensorEntry[];
  /** The same entries by name. */
  byName: Map<string, TensorEntry>;
  /** `__metadata__`, or null without one. */
  metadata: Record<string, string> | null;
}

const PREFIX_BYTES = 8;

/** Bytes read at once from a shard's start: the length prefix and, for most headers (a MoE shard's ~140 KB), the whole header. */
const FIRST_READ_BYTES = 256 * 1024;
// Buffers of FIRST_READ_BYTES kept for later reads (one per header read at once): their pages are touched once per process, not per shard.
const SPARE_FIRST_READS: Buffer[] = [];
const HEADER_READS_KEPT = 4;

/** The crate's MAX_HEADER_SIZE. */
const MAX_HEADER_BYTES = 100_000_000;

/**
 * Validates a header's JSON against the file it came from, with the crate's rules (`read_metadata`
 * and `Metadata::validate`), and returns its tensors sorted by offset. Pure: no I/O.
 */
export function parseSafetensorsHeader(headerJson: Buffer, opts: { file: string; fileSize: number; headerLength: number }): SafetensorsHeader {
  return parseHeaderWith(headerJson, opts);
}

/** parseSafetensorsHeader, taking the columns of a header `memo` kept with the same bytes, and keeping its own there. */
function parseHeaderWith(headerJson: Buffer, opts: { file: string; fileSize: number; headerLength: number }, memo?: HeaderMemo): SafetensorsHeader {
  const { file, fileSize, headerLength } = opts;
  for (const [name, value] of [
    ['fileSize', fileSize],
    ['headerLength', headerLength],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`parseSafetensorsHeader: ${name} must be a non-negative safe integer, got ${value}`);
    }
  }
  checkHeaderLength(file, BigInt(headerLength), fileSize);
  if (headerJson.length !== headerLength) {
    throw new RangeError(`parseSafetensorsHeader: headerJson is ${headerJson.length} bytes but headerLength is ${headerLength}`);
  }

  const dataStart = PREFIX_BYTES + headerLength;
  const known = memo?.find(headerJson, fileSize);
  if (known) return headerOfColumns({ file, headerLength, dataStart, fileSize, metadata: known.metadata }, known.columns);
  const table = readHeaderTable(headerJson, file);
  // The usual header, in layout order and valid, stays columns: no entry object per tensor unless a caller asks.
  const columns = table && validatedColumns(table);
  if (columns) {
    const last = columns.names.length - 1;
    checkDataLength(file, dataStart, last < 0 ? 0 : columns.begins[last] + columns.byteLengths[last], fileSize);
    const metadata = tableMetadata(table);
    memo?.keep(headerJson, fileSize, columns, metadata);
    return headerOfColumns({ file, headerLength, dataStart, fileSize, metadata }, columns);
  }
  const { declared, metadata } = readHeaderEntries(headerJson, file, table);
  // The crate sorts by (begin, end); the name tie-break keeps zero-sized tensors in a stable order. Headers written in
  // data order (the usual) are only checked: a comparator sort of a MoE shard's ~1,200 entries costs more than the walk.
  if (!inLayoutOrder(declared)) declared.sort(layoutOrder);

  const tensors = validateLayout(declared, file);
  checkDataLength(file, dataStart, tensors.length === 0 ? 0 : tensors[tensors.length - 1].dataOffsets[1], fileSize);
  return headerOfColumns({ file, headerLength, dataStart, fileSize, metadata }, columnsOfEntries(tensors), tensors);
}

/** The crate's check that the tensors cover the data section exactly. */
function checkDataLength(file: string, dataStart: number, dataLength: number, fileSize: number): void {
  if (dataStart + dataLength !== fileSize) {
    const actual = fileSize - dataStart;
    throw new SafetensorsError(
      'MetadataIncompleteBuffer',
      `${file}: the tensors cover ${dataLength} bytes of data but the file holds ${actual} after the header (${actual > dataLength ? 'trailing bytes' : 'data is cut short'})`,
    );
  }
}

// Each header's columns, for the readers that walk them (a checkpoint's table) instead of `tensors`.
const HEADER_COLUMNS = new WeakMap<SafetensorsHeader, HeaderColumns>();

/** A header whose `tensors` (and `byName`) are built from the columns on first use; setting `tensors` replaces them. */
function headerOfColumns(fields: Omit<SafetensorsHeader, 'tensors' | 'byName'>, columns: HeaderColumns, entries?: TensorEntry[]): SafetensorsHeader {
  let tensors = entries;
  let byName: Map<string, TensorEntry> | undefined;
  const header: SafetensorsHeader = {
    ...fields,
    get tensors() {
      tensors ??= entriesOf(columns);
      return tensors;
    },
    set tensors(value: TensorEntry[]) {
      tensors = value;
      byName = undefined;
      HEADER_COLUMNS.delete(header);
    },
    // Built on first use: readers that walk `tensors` (a merge) never pay for it.
    get byName() {
      byName ??= new Map(header.tensors.map((t) => [t.name, t]));
      return byName;
    },
  };
  HEADER_COLUMNS.set(header, columns);
  return header;
}

/** A header's tensors as columns, in layout order: those it was read into, or (for a header made or changed elsewhere) its `tensors`'. */
export function headerColumns(header: SafetensorsHeader): HeaderColumns {
  return HEADER_COLUMNS.get(header) ?? columnsOfEntries(header.tensors);
}

/**
 * Reads and validates the header of a safetensors file; never reads the data section.
 * @throws {@link SafetensorsError} with a code named after the Rust crate's errors (`HeaderTooSmall`, `InvalidOffset`, …, `IoError`).
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  return readSafetensorsHeaderWith(path);
}

/** readSafetensorsHeader, sharing the columns of headers `memo` holds with the same bytes (header-memo.ts). */
export async function readSafetensorsHeaderWith(path: string, memo?: HeaderMemo): Promise<SafetensorsHeader> {
  checkPath('readSafetensorsHeader', path);
  const handle = await open(path, 'r').catch((e: unknown) => {
    throw isSystemError(e) ? ioError(path, 'cannot open', e) : e;
  });
  const first = SPARE_FIRST_READS.pop() ?? Buffer.allocUnsafe(FIRST_READ_BYTES);
  try {
    // The size and the file's first bytes in one round trip; both settle before `first` can go back to the spares.
    const [stat, read] = await Promise.allSettled([handle.stat(), handle.read(first, 0, first.length, 0)]);
    if (stat.status === 'rejected') throw stat.reason;
    const fileSize = stat.value.size;
    checkFileHoldsPrefix(path, fileSize);
    if (read.status === 'rejected') throw read.reason;
    const filled = await fill(handle, path, first, read.value.bytesRead, PREFIX_BYTES);
    const headerLength = first.readBigUInt64LE(0);
    // Checked before allocating, so a hostile length cannot make us reserve memory.
    checkHeaderLength(path, headerLength, fileSize);
    const end = PREFIX_BYTES + Number(headerLength);
    // The usual header was read whole by the first read; a longer one gets a buffer of its own. Nothing keeps `first`'s bytes: the
    // readers copy what they return, and a memo copies the bytes it keeps.
    if (end <= first.length) await fill(handle, path, first, filled, end);
    const headerJson = end <= first.length ? first.subarray(PREFIX_BYTES, end) : await readExactly(handle, path, Number(headerLength), PREFIX_BYTES);
    return parseHeaderWith(headerJson, { file: path, fileSize, headerLength: Number(headerLength) }, memo);
  } catch (e) {
    throw isSystemError(e) ? ioError(path, 'cannot read', e) : e;
  } finally {
    if (SPARE_FIRST_READS.length < HEADER_READS_KEPT) SPARE_FIRST_READS.push(first);
    await handle.close();
  }
}

/** A header as `encodeSafetensorsHeader` writes it. */
export interface EncodedSafetensorsHeader {
  /** The 8-byte little-endian length and the JSON, space-padded so that the data starts at a multiple of 8. */
  bytes: Buffer;
  /** Where the data section starts (the length of `bytes`). */
  dataStart: number;
  /** Each tensor's [begin, end) in the data section, in the order given. */
  offsets: [number, number][];
  /** Size of the whole file: header plus data. */
  totalSize: number;
}

/**
 * Lays the tensors out contiguously in the order given and encodes the header: `__metadata__`
 * first (keys sorted), then the tensors in layout order. The same input always gives the same bytes.
 * @throws {@link WeightmixError} `Usage` where `tensors` is not an array of `{name, dtype, shape}` objects; {@link SafetensorsError}
 * `TensorInvalidInfo` for a malformed entry (a name given twice, an unknown dtype, a bad dimension, metadata not of strings).
 */
export function encodeSafetensorsHeader(
  tensors: readonly { name: string; dtype: SafetensorsDtype; shape: readonly number[] }[],
  metadata?: Record<string, string> | null,
): EncodedSafetensorsHeader {
  checkTensorList('encodeSafetensorsHeader', tensors);
  return asInvalidInfo(() => encodeHeader('encodeSafetensorsHeader', tensors, metadata));
}

/** A caller's malformed entry (a name given twice, an unknown dtype, a negative dimension, metadata not of strings) as the documented SafetensorsError, not the planner's RangeError. */
function asInvalidInfo<T>(encode: () => T): T {
  try {
    return encode();
  } catch (e) {
    throw e instanceof RangeError ? new SafetensorsError('TensorInvalidInfo', e.message) : e;
  }
}

/**
 * Writes a whole safetensors file (for fixtures and tests): the header, then each tensor's data in order.
 * @throws {@link WeightmixError} `Usage` where `tensors` is not an array of `{name, dtype, shape, data}` objects; {@link SafetensorsError}
 * `TensorInvalidInfo` or `MisalignedSlice` for a malformed entry; file-system errors as they come.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: readonly { name: string; dtype: SafetensorsDtype; shape: readonly number[]; data: Buffer }[],
  metadata?: Record<string, string> | null,
): Promise<void> {
  checkPath('writeSafetensorsFile', path);
  checkTensorList('writeSafetensorsFile', tensors, true);
  const header = asInvalidInfo(() => encodeHeader(path, tensors, metadata));
  tensors.forEach((t, i) => {
    const [begin, end] = header.offsets[i];
    if (t.data.length !== end - begin) {
      throw new SafetensorsError(
        'TensorInvalidInfo',
        `${path}: tensor ${showName(t.name)}: data is ${t.data.length} bytes but ${t.dtype} ${showShape(t.shape)} needs ${end - begin}`,
      );
    }
  });
  await writeFile(path, [header.bytes, ...tensors.map((t) => t.data)]).catch((e: unknown) => {
    throw isSystemError(e) ? ioError(path, 'cannot write', e) : e;
  });
}

function encodeHeader(
  where: string,
  tensors: readonly { name: string; dtype: SafetensorsDtype; shape: readonly number[] }[],
  metadata: Record<string, string> | null | undefined,
): EncodedSafetensorsHeader {
  const columns = encodeHeaderColumns(
    where,
    tensors.map((t) => t.name),
    tensors.map((t) => t.dtype),
    shapeColumns(tensors.map((t) => t.shape)),
    metadata,
  );
  const { starts, dataBytes } = columns;
  // Contiguous: each tensor ends where the next begins, the last at the end of the data section.
  const offsets = Array.from(starts, (begin, i): [number, number] => [begin, i + 1 < starts.length ? starts[i + 1] : dataBytes]);
  return { bytes: columns.bytes, dataStart: columns.dataStart, offsets, totalSize: columns.dataStart + dataBytes };
}

/** A header as `encodeHeaderColumns` writes it. */
export interface EncodedHeaderColumns {
  /** The 8-byte little-endian length and the JSON, space-padded so that the data starts at a multiple of 8. */
  bytes: Buffer;
  /** Where the data section starts (the length of `bytes`). */
  dataStart: number;
  /** Each tensor's begin in the data section, in the order given. */
  starts: Float64Array;
  /** Bytes of the data section. */
  dataBytes: number;
}

/**
 * `encodeSafetensorsHeader` of tensors given as columns (names, dtypes, shapes by index), with the same
 * checks and bytes: the planner encodes every output shard's header without an object per tensor.
 */
export function encodeHeaderColumns(
  where: string,
  names: readonly string[],
  dtypesGiven: readonly SafetensorsDtype[] | Uint8Array,
  shapes: ShapeColumns,
  metadata: Record<string, string> | null | undefined,
): EncodedHeaderColumns {
  const { shapeStarts, dims } = shapes;
  const metadataJson = metadata != null ? encodeMetadata(where, metadata) : null;
  const encoded = nativeEncoding(names, dtypesGiven, shapes, metadataJson, MAX_HEADER_BYTES);
  if (encoded) return { bytes: encoded.bytes, dataStart: encoded.bytes.length, starts: encoded.starts, dataBytes: encoded.dataBytes };
  // Codes (DTYPE_NAMES' indices, the planner's) are checked below as the names they stand for.
  const dtypes = dtypesGiven instanceof Uint8Array ? Array.from(dtypesGiven, (c) => DTYPE_NAMES[c]) : dtypesGiven;
  let json = '{';
  if (metadataJson !== null) json += `${JSON.stringify(METADATA_KEY)}:${metadataJson}`;
  const seen = new Set<string>();
  // One string per member, joined once: a string grown member by member is a rope that the byte count and the write flatten.
  const members: string[] = new Array(names.length);
  const starts = new Float64Array(names.length);
  let end = 0;
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const dtype = dtypes[i];
    const first = shapeStarts[i];
    const rank = shapeStarts[i + 1] - first;
    const given = seen.size;
    seen.add(name);
    // A name with nothing to escape and no surrogate (the usual) is quoted as it is; any other goes through the checks and JSON.stringify.
    const plain = isPlainJsonString(name);
    if (name === METADATA_KEY || seen.size === given || (!plain && LONE_SURROGATE.test(name))) {
      const problem = seen.size === given ? 'given twice' : name === METADATA_KEY ? 'reserved' : 'not well-formed Unicode';
      throw new RangeError(`${where}: tensor name ${showName(name)} is ${problem}`);
    }
    if (!Object.hasOwn(DTYPE_BITS, dtype)) throw new RangeError(`${where}: tensor ${showName(name)}: unknown dtype ${JSON.stringify(dtype)}`);
    for (let k = first; k < first + rank; k++) {
      if (!isSize(dims[k])) throw new RangeError(`${where}: tensor ${showName(name)}: shape must be an array of non-negative safe integers`);
    }
    let elements = 1;
    for (let k = first; k < first + rank; k++) {
      // Past 2^53-1: elementCountOf throws with the message.
      if (dims[k] !== 0 && elements > Math.floor(Number.MAX_SAFE_INTEGER / dims[k])) elementCountOf(shapeAt(shapes, i), where, name);
      elements *= dims[k];
    }
    const begin = end;
    end = begin + byteLengthOf(dtype, elements, where, name);
    if (!Number.isSafeInteger(end))
      throw new SafetensorsError('ValidationOverflow', `${where}: the data section passes 2^53-1 bytes at tensor ${showName(name)}`);
    starts[i] = begin;
    const dimsText = rank === 1 ? `${dims[first]}` : rank === 2 ? `${dims[first]},${dims[first + 1]}` : dims.subarray(first, first + rank).join(',');
    members[i] = `${plain ? `"${name}"` : JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${dimsText}],"data_offsets":[${begin},${end}]}`;
  }
  if (names.length > 0) json += (json.length > 1 ? ',' : '') + members.join(',');
  json += '}';
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  // Space padding keeps (8 + header length) a multiple of 8, so every tensor's data can be aligned.
  const headerLength = Math.ceil(jsonBytes / PREFIX_BYTES) * PREFIX_BYTES;
  if (headerLength > MAX_HEADER_BYTES) {
    throw new SafetensorsError('HeaderTooLarge', `${where}: the header would be ${headerLength} bytes, over the limit of ${MAX_HEADER_BYTES}`);
  }
  const bytes = Buffer.alloc(PREFIX_BYTES + headerLength, 0x20);
  bytes.writeBigUInt64LE(BigInt(headerLength), 0);
  bytes.write(json, PREFIX_BYTES, 'utf8');
  return { bytes, dataStart: bytes.length, starts, dataBytes: end };
}

function checkFileHoldsPrefix(file: string, fileSize: number): void {
  if (fileSize < PREFIX_BYTES) {
    throw new SafetensorsError('HeaderTooSmall', `${file}: the file is ${fileSize} bytes, too short for the 8-byte header length`);
  }
}

/** The checks on the 8-byte length prefix, shared by the reader (before it allocates) and the pure parser. */
function checkHeaderLength(file: string, headerLength: bigint, fileSize: number): void {
  checkFileHoldsPrefix(file, fileSize);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError('HeaderTooLarge', `${file}: the header length ${headerLength} is over the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  if (BigInt(PREFIX_BYTES) + headerLength > BigInt(fileSize)) {
    throw new SafetensorsError('HeaderTooSmall', `${file}: the header length ${headerLength} runs past the end of the ${fileSize}-byte file`);
  }
}

function layoutOrder(a: DeclaredTensor, b: DeclaredTensor): number {
  return a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function inLayoutOrder(declared: readonly DeclaredTensor[]): boolean {
  for (let i = 1; i < declared.length; i++) if (layoutOrder(declared[i - 1], declared[i]) > 0) return false;
  return true;
}

/** The crate's `Metadata::validate`: offsets contiguous from 0, sizes that fit, and byte lengths that match; fills in each entry's sizes. */
function validateLayout(declared: DeclaredTensor[], file: string): TensorEntry[] {
  let end = 0;
  for (let i = 0; i < declared.length; i++) {
    const entry = declared[i];
    const { dtype, shape, dataOffsets } = entry;
    const begin = dataOffsets[0];
    const stop = dataOffsets[1];
    if (stop < begin || begin !== end) throw layoutError(file, entry, end);
    end = stop;
    const elementCount = elementCountOf(shape, file, entry.name);
    const byteLength = byteLengthOf(dtype, elementCount, file, entry.name);
    if (stop - begin !== byteLength) {
      throw new SafetensorsError(
        'TensorInvalidInfo',
        `${file}: ${tensorSubject(entry.name)}: data_offsets [${begin}, ${stop}] hold ${stop - begin} bytes but ${dtype} ${showShape(shape)} needs ${byteLength}`,
      );
    }
    entry.elementCount = elementCount;
    entry.byteLength = byteLength;
  }
  return declared;
}

/** The InvalidOffset error of an entry that does not start where the data before it ends at `end`. */
function layoutError(file: string, entry: DeclaredTensor, end: number): SafetensorsError {
  const [begin, stop] = entry.dataOffsets;
  const where = `${file}: ${tensorSubject(entry.name)}: data_offsets [${begin}, ${stop}]`;
  if (stop < begin) return new SafetensorsError('InvalidOffset', `${where} end before they begin`);
  if (begin > end) return new SafetensorsError('InvalidOffset', `${where} leave a hole: the data before it ends at ${end}`);
  return new SafetensorsError('InvalidOffset', `${where} overlap the data before it, which ends at ${end}`);
}

async function readExactly(handle: FileHandle, path: string, length: number, position: number): Promise<Buffer> {
  // Not zeroed first: fill writes every byte or throws (a header is up to 100 MB; a MoE model's are megabytes in all).
  const buffer = Buffer.allocUnsafe(length);
  await fill(handle, path, buffer, 0, length, position);
  return buffer;
}

/** Reads into buffer[filled, upTo) what the file holds at `position` + that range (or throws HeaderTooSmall at the file's end); how far the buffer is filled. */
async function fill(handle: FileHandle, path: string, buffer: Buffer, filled: number, upTo: number, position = 0): Promise<number> {
  while (filled < upTo) {
    const { bytesRead } = await handle.read(buffer, filled, upTo - filled, position + filled);
    // The size was checked against fstat, so a short read means the file shrank meanwhile.
    if (bytesRead === 0) throw new SafetensorsError('HeaderTooSmall', `${path}: the file ended while its header was being read`);
    filled += bytesRead;
  }
  return filled;
}
