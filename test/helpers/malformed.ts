/**
 * Hostile and edge-case safetensors files, built byte by byte, for format and CLI tests.
 * Run `npx tsx test/helpers/malformed.ts` to rewrite the committed copies under test/corpus/safetensors/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SafetensorsErrorCode } from '../../lib/format/safetensors';

export interface MalformedCase {
  /** Short kebab-case description, unique among the cases. */
  name: string;
  bytes: Buffer;
  /** The SafetensorsError code that reading this file must raise. */
  code: SafetensorsErrorCode;
}

export interface AcceptedCase {
  name: string;
  bytes: Buffer;
}

/** Where the committed copies live; a file's name is `<code>--<name>.safetensors`, or `ok--<name>.safetensors`. */
export const SAFETENSORS_CORPUS_DIR = join(__dirname, '..', 'corpus', 'safetensors');

/**
 * A file from raw parts: the 8-byte little-endian length (the header's true length unless
 * `declaredLength` says otherwise), the header, then `data` (a number means that many zero bytes).
 */
export function safetensorsBytes(header: string | Buffer, data: Buffer | number = 0, declaredLength?: bigint): Buffer {
  const headerBytes = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declaredLength ?? BigInt(headerBytes.length));
  return Buffer.concat([prefix, headerBytes, typeof data === 'number' ? Buffer.alloc(data) : data]);
}

/** One tensor entry's JSON; `fields` adds or overrides raw JSON members (values are JSON text). */
function entry(dtype: string, shape: string, offsets: string, fields: Record<string, string> = {}): string {
  const members = { dtype: JSON.stringify(dtype), shape, data_offsets: offsets, ...fields };
  return `{${Object.entries(members)
    .map(([k, v]) => `${JSON.stringify(k)}:${v}`)
    .join(',')}}`;
}

/** An entry with one field left out. */
function entryWithout(field: string): string {
  const all: Record<string, string> = { dtype: '"F32"', shape: '[1]', data_offsets: '[0,4]' };
  delete all[field];
  return `{${Object.entries(all)
    .map(([k, v]) => `"${k}":${v}`)
    .join(',')}}`;
}

/** The header of the Rust crate's own test file: one I32 [2, 2] tensor, 16 bytes of data. */
const CRATE_TEST_HEADER = `{"test":${entry('I32', '[2,2]', '[0,16]')}}`;

/** Every malformed case, each rejected with the code named; includes every malformed input of the Rust crate's tests. */
export function malformedCases(): MalformedCase[] {
  const cases: MalformedCase[] = [
    // The 8-byte length prefix.
    { code: 'HeaderTooSmall', name: 'empty-file', bytes: Buffer.alloc(0) },
    { code: 'HeaderTooSmall', name: 'seven-bytes', bytes: Buffer.from([2, 0, 0, 0, 0, 0, 0]) },
    { code: 'HeaderTooSmall', name: 'length-without-header', bytes: safetensorsBytes('', 0, 60n) },
    { code: 'HeaderTooSmall', name: 'length-one-past-file', bytes: safetensorsBytes('{}', 0, 3n) },
    { code: 'HeaderTooLarge', name: 'huge-length', bytes: safetensorsBytes(CRATE_TEST_HEADER, 16, 0xffffff000000003cn) },
    { code: 'HeaderTooLarge', name: 'u64-max-length', bytes: safetensorsBytes('{}', 0, 0xffffffffffffffffn) },
    { code: 'HeaderTooLarge', name: 'length-just-over-2p53', bytes: safetensorsBytes('{}', 0, 2n ** 53n + 1n) },
    { code: 'HeaderTooLarge', name: 'length-just-over-limit', bytes: safetensorsBytes('{}', 0, 100_000_001n) },

    // Header text.
    { code: 'InvalidHeader', name: 'non-utf8', bytes: safetensorsBytes(Buffer.from([0xff])) },
    { code: 'InvalidHeader', name: 'utf8-encoded-surrogate', bytes: safetensorsBytes(Buffer.from('{"\xed\xa0\x80":1}', 'latin1')) },
    { code: 'InvalidHeader', name: 'overlong-utf8', bytes: safetensorsBytes(Buffer.from('{"\xc0\xaf":1}', 'latin1')) },
    { code: 'InvalidHeader', name: 'cut-multibyte-character', bytes: safetensorsBytes(Buffer.from('{"\xc3', 'latin1')) },
    { code: 'InvalidHeaderStart', name: 'leading-whitespace', bytes: safetensorsBytes('\t\n{}\r ') },
    { code: 'InvalidHeaderStart', name: 'empty-header', bytes: safetensorsBytes('') },
    { code: 'InvalidHeaderStart', name: 'array-root', bytes: safetensorsBytes('[]') },
    { code: 'InvalidHeaderStart', name: 'byte-order-mark', bytes: safetensorsBytes('\ufeff{}') },

    // JSON syntax and strictness.
    { code: 'InvalidHeaderDeserialization', name: 'unterminated-object', bytes: safetensorsBytes('{') },
    { code: 'InvalidHeaderDeserialization', name: 'trailing-garbage', bytes: safetensorsBytes('{}x') },
    { code: 'InvalidHeaderDeserialization', name: 'two-objects', bytes: safetensorsBytes('{}{}') },
    { code: 'InvalidHeaderDeserialization', name: 'trailing-nul-padding', bytes: safetensorsBytes('{}\0\0') },
    { code: 'InvalidHeaderDeserialization', name: 'raw-newline-in-name', bytes: safetensorsBytes('{"a\nb":1}') },
    { code: 'InvalidHeaderDeserialization', name: 'single-quotes', bytes: safetensorsBytes("{'a':1}") },
    {
      code: 'InvalidHeaderDeserialization',
      name: 'duplicate-tensor-name',
      bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '[0,4]')},"a":${entry('F32', '[1]', '[4,8]')}}`, 8),
    },
    {
      code: 'InvalidHeaderDeserialization',
      name: 'duplicate-tensor-name-escaped',
      bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '[0,4]')},"\\u0061":${entry('F32', '[1]', '[4,8]')}}`, 8),
    },
    {
      code: 'InvalidHeaderDeserialization',
      name: 'duplicate-entry-field',
      bytes: safetensorsBytes(`{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4),
    },
    { code: 'InvalidHeaderDeserialization', name: 'duplicate-metadata-key', bytes: safetensorsBytes('{"__metadata__":{"k":"a","k":"b"}}') },
    { code: 'InvalidHeaderDeserialization', name: 'too-deep', bytes: safetensorsBytes(`{"__metadata__":{"k":${'['.repeat(100)}${']'.repeat(100)}}}`) },
    {
      code: 'InvalidHeaderDeserialization',
      name: 'offset-over-2p53',
      bytes: safetensorsBytes(`{"a":${entry('U8', '[9007199254740993]', '[0,9007199254740993]')}}`),
    },
    {
      code: 'InvalidHeaderDeserialization',
      name: 'offset-2p53-would-round',
      bytes: safetensorsBytes(`{"a":${entry('U8', '[4]', '[9007199254740992,9007199254740996]')}}`, 4),
    },
    // The crate reports these two as ValidationOverflow; their sizes do not fit a double, so we reject the JSON.
    {
      code: 'InvalidHeaderDeserialization',
      name: 'shape-u64-max-minus-1',
      bytes: safetensorsBytes(`{"test":${entry('I32', '[2,18446744073709551614]', '[0,16]')}}`, 16),
    },
    {
      code: 'InvalidHeaderDeserialization',
      name: 'shape-i64-max',
      bytes: safetensorsBytes(`{"test":${entry('I32', '[2,9223372036854775807]', '[0,16]')}}`, 16),
    },
    { code: 'InvalidHeaderDeserialization', name: 'lone-surrogate-name', bytes: safetensorsBytes(`{"\\ud800":${entry('F32', '[1]', '[0,4]')}}`, 4) },

    // Header shape.
    { code: 'InvalidHeaderDeserialization', name: 'shape-negative', bytes: safetensorsBytes(`{"a":${entry('F32', '[-1]', '[0,4]')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'shape-negative-zero', bytes: safetensorsBytes(`{"a":${entry('F32', '[-0]', '[0,0]')}}`) },
    { code: 'InvalidHeaderDeserialization', name: 'shape-fraction', bytes: safetensorsBytes(`{"a":${entry('F32', '[1.0]', '[0,4]')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'shape-exponent', bytes: safetensorsBytes(`{"a":${entry('U8', '[1e1]', '[0,10]')}}`, 10) },
    { code: 'InvalidHeaderDeserialization', name: 'shape-not-array', bytes: safetensorsBytes(`{"a":${entry('F32', '1', '[0,4]')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'shape-string-dims', bytes: safetensorsBytes(`{"a":${entry('F32', '["1"]', '[0,4]')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'offsets-three', bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '[0,4,4]')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'offsets-one', bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '[4]')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'offsets-object', bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '{"begin":0,"end":4}')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'offsets-null', bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', 'null')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'unknown-dtype', bytes: safetensorsBytes(`{"a":${entry('F128', '[1]', '[0,16]')}}`, 16) },
    { code: 'InvalidHeaderDeserialization', name: 'lowercase-dtype', bytes: safetensorsBytes(`{"a":${entry('f32', '[1]', '[0,4]')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'dtype-prototype-key', bytes: safetensorsBytes(`{"a":${entry('constructor', '[1]', '[0,4]')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'dtype-number', bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '[0,4]', { dtype: '4' })}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'missing-dtype', bytes: safetensorsBytes(`{"a":${entryWithout('dtype')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'missing-shape', bytes: safetensorsBytes(`{"a":${entryWithout('shape')}}`, 4) },
    { code: 'InvalidHeaderDeserialization', name: 'missing-data-offsets', bytes: safetensorsBytes(`{"a":${entryWithout('data_offsets')}}`, 4) },
    {
      code: 'InvalidHeaderDeserialization',
      name: 'extra-entry-field',
      bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '[0,4]', { offsets: '[0,4]' })}}`, 4),
    },
    { code: 'InvalidHeaderDeserialization', name: 'entry-is-array', bytes: safetensorsBytes('{"a":["F32",[1],[0,4]]}', 4) },
    { code: 'InvalidHeaderDeserialization', name: 'entry-is-null', bytes: safetensorsBytes('{"a":null}') },
    { code: 'InvalidHeaderDeserialization', name: 'metadata-number-value', bytes: safetensorsBytes('{"__metadata__":{"format":1}}') },
    { code: 'InvalidHeaderDeserialization', name: 'metadata-null-value', bytes: safetensorsBytes('{"__metadata__":{"format":null}}') },
    { code: 'InvalidHeaderDeserialization', name: 'metadata-nested-object', bytes: safetensorsBytes('{"__metadata__":{"format":{"pt":"1"}}}') },
    { code: 'InvalidHeaderDeserialization', name: 'metadata-array', bytes: safetensorsBytes('{"__metadata__":["pt"]}') },
    { code: 'InvalidHeaderDeserialization', name: 'metadata-string', bytes: safetensorsBytes('{"__metadata__":"pt"}') },
    { code: 'InvalidHeaderDeserialization', name: 'metadata-lone-surrogate', bytes: safetensorsBytes('{"__metadata__":{"k":"\\udc00"}}') },

    // Layout of the data section (Metadata::validate).
    {
      code: 'InvalidOffset',
      name: 'json-attack-ten-tensors-same-offsets',
      bytes: safetensorsBytes(`{${Array.from({ length: 10 }, (_, i) => `"weight_${i}":${entry('F32', '[2,2]', '[0,16]')}`).join(',')}}`, 16),
    },
    { code: 'InvalidOffset', name: 'hole-at-start', bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '[4,8]')}}`, 8) },
    {
      code: 'InvalidOffset',
      name: 'hole-between',
      bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '[0,4]')},"b":${entry('F32', '[1]', '[8,12]')}}`, 12),
    },
    {
      code: 'InvalidOffset',
      name: 'overlap',
      bytes: safetensorsBytes(`{"a":${entry('F32', '[2]', '[0,8]')},"b":${entry('F32', '[1]', '[4,8]')}}`, 8),
    },
    {
      code: 'InvalidOffset',
      name: 'begin-after-end',
      bytes: safetensorsBytes(`{"a":${entry('F32', '[1]', '[0,4]')},"b":${entry('F32', '[1]', '[8,4]')}}`, 8),
    },
    { code: 'TensorInvalidInfo', name: 'byte-size-mismatch', bytes: safetensorsBytes(`{"test":${entry('I32', '[2,2]', '[0, 4]')}}`) },
    { code: 'TensorInvalidInfo', name: 'scalar-too-small', bytes: safetensorsBytes(`{"s":${entry('F64', '[]', '[0,4]')}}`, 4) },
    { code: 'TensorInvalidInfo', name: 'zero-sized-with-bytes', bytes: safetensorsBytes(`{"z":${entry('F32', '[3,0]', '[0,4]')}}`, 4) },
    {
      code: 'ValidationOverflow',
      name: 'shape-2p40-squared',
      bytes: safetensorsBytes(`{"a":${entry('U8', '[1099511627776,1099511627776]', '[0,16]')}}`, 16),
    },
    {
      code: 'ValidationOverflow',
      name: 'overflow-before-zero-dim',
      bytes: safetensorsBytes(`{"a":${entry('U8', '[1099511627776,1099511627776,0]', '[0,0]')}}`),
    },
    // 3 × 2^52 F4 elements would fit in 3 × 2^51 bytes, but the element count itself passes 2^53 (the crate, in u64, would not overflow).
    { code: 'ValidationOverflow', name: 'f4-elements-over-2p53', bytes: safetensorsBytes(`{"a":${entry('F4', '[3,4503599627370496]', '[0,16]')}}`, 16) },
    { code: 'ValidationOverflow', name: 'bytes-over-2p53', bytes: safetensorsBytes(`{"a":${entry('F64', '[2251799813685248]', '[0,16]')}}`, 16) },
    { code: 'MisalignedSlice', name: 'f4-odd-count', bytes: safetensorsBytes(`{"a":${entry('F4', '[1,3]', '[0,2]')}}`, 2) },
    { code: 'MisalignedSlice', name: 'f6-three-elements', bytes: safetensorsBytes(`{"a":${entry('F6_E2M3', '[3]', '[0,3]')}}`, 3) },
    {
      code: 'MetadataIncompleteBuffer',
      name: 'polyglot-trailing-bytes',
      bytes: safetensorsBytes(CRATE_TEST_HEADER, Buffer.concat([Buffer.alloc(16), Buffer.from('extra_bogus_data_for_polyglot_file')])),
    },
    { code: 'MetadataIncompleteBuffer', name: 'data-two-bytes-short', bytes: safetensorsBytes(CRATE_TEST_HEADER, 14) },
    { code: 'MetadataIncompleteBuffer', name: 'no-tensors-one-data-byte', bytes: safetensorsBytes('{}', 1) },
    { code: 'MetadataIncompleteBuffer', name: 'header-only', bytes: safetensorsBytes(CRATE_TEST_HEADER) },
  ];
  return cases;
}

/** Unusual but valid files that must be accepted, including the valid inputs of the Rust crate's tests. */
export function acceptedCases(): AcceptedCase[] {
  return [
    { name: 'one-i32-tensor', bytes: safetensorsBytes(CRATE_TEST_HEADER, 16) },
    { name: 'empty-header-object', bytes: safetensorsBytes('{}') },
    { name: 'whitespace-padded-header', bytes: safetensorsBytes('{}\r \t\n') },
    { name: 'scalar', bytes: safetensorsBytes(`{"test":${entry('I32', '[]', '[0,4]')}}`, 4) },
    { name: 'zero-sized-tensor', bytes: safetensorsBytes(`{"test":${entry('I32', '[2,0]', '[0, 0]')}}`) },
    {
      name: 'zero-sized-tensors-sharing-an-offset',
      bytes: safetensorsBytes(`{"b":${entry('U8', '[0]', '[4,4]')},"a":${entry('F32', '[1]', '[0,4]')},"c":${entry('U8', '[0]', '[4,4]')}}`, 4),
    },
    { name: 'metadata-null', bytes: safetensorsBytes(`{"__metadata__":null,"a":${entry('F32', '[1]', '[0,4]')}}`, 4) },
    { name: 'metadata-prototype-keys', bytes: safetensorsBytes('{"__metadata__":{"__proto__":"x","constructor":"y"}}') },
    { name: 'tensor-named-proto', bytes: safetensorsBytes(`{"__proto__":${entry('F32', '[1]', '[0,4]')}}`, 4) },
    { name: 'f4-pair', bytes: safetensorsBytes(`{"attn.0":${entry('F4', '[1,2]', '[0,1]')}}`, 1) },
    { name: 'offsets-out-of-name-order', bytes: safetensorsBytes(`{"b":${entry('F32', '[1]', '[0,4]')},"a":${entry('F32', '[1]', '[4,8]')}}`, 8) },
    { name: 'escaped-unicode-name', bytes: safetensorsBytes(`{"\\u00e9\\ud83d\\ude00":${entry('F32', '[1]', '[0,4]')}}`, 4) },
  ];
}

/** Rewrites the committed corpus copies of every case. */
export function writeSafetensorsCorpus(dir: string = SAFETENSORS_CORPUS_DIR): void {
  mkdirSync(dir, { recursive: true });
  for (const c of malformedCases()) writeFileSync(join(dir, `${c.code}--${c.name}.safetensors`), c.bytes);
  for (const c of acceptedCases()) writeFileSync(join(dir, `ok--${c.name}.safetensors`), c.bytes);
}

if (require.main === module) writeSafetensorsCorpus();
