/**
 * What encoding a safetensors header from columns shares with the encoder in safetensors.ts: shapes as columns, `__metadata__`'s
 * JSON, and the addon's encoder (native/header_encoder.h) for the usual header, which the JavaScript encoder backs for anything it declines.
 */
import { DTYPE_BITS, SafetensorsDtype } from './dtypes';
import { dtypeCode } from './header-columns';
import { LONE_SURROGATE } from './header-entries';
import { nativeJsonTables } from './json-tables';
import { showName } from './safetensors-errors';

/** Shapes as columns: `shapeStarts` (one more than there are shapes) index `dims`. */
export interface ShapeColumns {
  shapeStarts: Uint32Array;
  dims: Float64Array;
}

/** Shapes given as arrays, as columns; a shape that is not an array of numbers gets a NaN dimension, which the encoder refuses as before. */
export function shapeColumns(shapes: readonly (readonly number[])[]): ShapeColumns {
  const ranks = shapes.map((shape) => (Array.isArray(shape) ? shape.length : 1));
  const shapeStarts = new Uint32Array(shapes.length + 1);
  for (let i = 0; i < shapes.length; i++) shapeStarts[i + 1] = shapeStarts[i] + ranks[i];
  const dims = new Float64Array(shapeStarts[shapes.length]).fill(NaN);
  shapes.forEach((shape, i) => {
    if (Array.isArray(shape)) shape.forEach((dim: unknown, k) => (dims[shapeStarts[i] + k] = typeof dim === 'number' ? dim : NaN));
  });
  return { shapeStarts, dims };
}

/** The addon's encoding of the usual header (plain names, known dtypes, valid sizes), or null: then the JavaScript encoder writes or refuses it. */
export function nativeEncoding(
  names: readonly string[],
  dtypes: readonly SafetensorsDtype[] | Uint8Array,
  shapes: ShapeColumns,
  metadataJson: string | null,
  maxHeaderBytes: number,
) {
  const tables = nativeJsonTables();
  if (tables === undefined) return null;
  // Codes as they are: the addon declines one past DTYPE_NAMES.
  if (dtypes instanceof Uint8Array) return tables.encodeHeader(names, dtypes, shapes, metadataJson, maxHeaderBytes);
  const codes = new Uint8Array(dtypes.length);
  for (let i = 0; i < dtypes.length; i++) {
    if (!Object.hasOwn(DTYPE_BITS, dtypes[i])) return null;
    codes[i] = dtypeCode(dtypes[i]);
  }
  return tables.encodeHeader(names, codes, shapes, metadataJson, maxHeaderBytes);
}

/** `__metadata__`'s value as the header writes it: keys sorted, each value a well-formed string. */
export function encodeMetadata(where: string, metadata: Record<string, string>): string {
  if (typeof metadata !== 'object' || Array.isArray(metadata)) throw new RangeError(`${where}: metadata must be an object of strings`);
  const keys = Object.keys(metadata).sort();
  const bad = keys.find((k) => typeof metadata[k] !== 'string' || LONE_SURROGATE.test(k) || LONE_SURROGATE.test(metadata[k]));
  if (bad !== undefined) throw new RangeError(`${where}: metadata ${showName(bad)} must be a well-formed string`);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`;
}
