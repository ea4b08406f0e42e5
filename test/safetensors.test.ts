import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DTYPE_BITS,
  dtypeByteLength,
  encodeSafetensorsHeader,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  SafetensorsDtype,
  SafetensorsError,
  SafetensorsHeader,
  writeSafetensorsFile,
} from '../lib/format/safetensors';
import { WeightmixError } from '../lib/errors';
import { acceptedCases, malformedCases, SAFETENSORS_CORPUS_DIR, safetensorsBytes } from './helpers/malformed';
import { dir, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-safetensors-');

let fileCounter = 0;
/** Writes `bytes` to a fresh file and reads its header back. */
async function readBytes(bytes: Buffer): Promise<SafetensorsHeader> {
  const path = join(dir, `f${fileCounter++}.safetensors`);
  writeFileSync(path, bytes);
  return readSafetensorsHeader(path);
}

async function rejection(promise: Promise<unknown>): Promise<SafetensorsError> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof SafetensorsError) return e;
    throw e;
  }
  throw new Error('expected a SafetensorsError');
}

/** Bytes of the Rust crate's doc and test vectors, written as the crate writes them. */
const crateBytes = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('dtypes', () => {
  test('DTYPE_BITS is the Rust crate Dtype::bitsize table, all 22 dtypes (0.8 added the FNUZ F8 variants)', () => {
    expect(DTYPE_BITS).toEqual({
      BOOL: 8,
      F4: 4,
      F6_E2M3: 6,
      F6_E3M2: 6,
      U8: 8,
      I8: 8,
      F8_E5M2: 8,
      F8_E4M3: 8,
      F8_E8M0: 8,
      F8_E4M3FNUZ: 8,
      F8_E5M2FNUZ: 8,
      I16: 16,
      U16: 16,
      F16: 16,
      BF16: 16,
      I32: 32,
      U32: 32,
      F32: 32,
      C64: 64,
      F64: 64,
      I64: 64,
      U64: 64,
    });
    expect(Object.isFrozen(DTYPE_BITS)).toBe(true);
  });

  test('F8_E4M3FNUZ and F8_E5M2FNUZ (PyTorch writes them; the crate reads them since 0.8) are read with one byte per element', async () => {
    const header = await readBytes(
      safetensorsBytes('{"a":{"dtype":"F8_E4M3FNUZ","shape":[2,3],"data_offsets":[0,6]},"b":{"dtype":"F8_E5M2FNUZ","shape":[4],"data_offsets":[6,10]}}', 10),
    );
    expect(header.tensors.map((t) => [t.name, t.dtype, t.byteLength, t.elementCount])).toEqual([
      ['a', 'F8_E4M3FNUZ', 6, 6],
      ['b', 'F8_E5M2FNUZ', 4, 4],
    ]);
  });

  test('the deviations the header comment lists: an array-form tensor entry and a {"F32": null} dtype are refused in one line', async () => {
    const array = await rejection(readBytes(safetensorsBytes('{"a":["F32",[2],[0,8]]}', 8)));
    expect(array.code).toBe('InvalidHeaderDeserialization');
    const tagged = await rejection(readBytes(safetensorsBytes('{"a":{"dtype":{"F32":null},"shape":[2],"data_offsets":[0,8]}}', 8)));
    expect(tagged.code).toBe('InvalidHeaderDeserialization');
    for (const e of [array, tagged]) expect(e.message).not.toMatch(/\n/);
  });

  test.each([
    ['F32', 6, 24],
    ['U8', 0, 0],
    ['BOOL', 3, 3],
    ['C64', 2, 16],
    ['F4', 2, 1],
    ['F4', 4096, 2048],
    ['F6_E2M3', 4, 3],
    ['F6_E3M2', 400, 300],
    ['U8', Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    ['F4', Number.MAX_SAFE_INTEGER - 1, (Number.MAX_SAFE_INTEGER - 1) / 2],
    ['I64', 2 ** 50 - 1, 2 ** 53 - 8],
    ['F6_E2M3', Number.MAX_SAFE_INTEGER - 3, 6755399441055741],
  ] as [SafetensorsDtype, number, number][])('dtypeByteLength(%s, %d) is %d, as exact bigint arithmetic says', (dtype, count, bytes) => {
    expect(BigInt(count) * BigInt(DTYPE_BITS[dtype])).toBe(BigInt(bytes) * 8n);
    expect(dtypeByteLength(dtype, count)).toBe(bytes);
  });

  test.each([
    ['F4', 3, 'MisalignedSlice'],
    ['F6_E2M3', 2, 'MisalignedSlice'],
    ['F6_E3M2', 6, 'MisalignedSlice'],
    ['F64', 2 ** 50, 'ValidationOverflow'],
    ['U16', 2 ** 52, 'ValidationOverflow'],
  ] as [SafetensorsDtype, number, string][])('dtypeByteLength(%s, %d) throws %s', (dtype, count, code) => {
    expect(() => dtypeByteLength(dtype, count)).toThrow(expect.objectContaining({ code }));
  });

  test('dtypeByteLength rejects unknown dtypes and bad counts as programming errors', () => {
    expect(() => dtypeByteLength('F128' as SafetensorsDtype, 1)).toThrow(RangeError);
    expect(() => dtypeByteLength('F32', -1)).toThrow(RangeError);
    expect(() => dtypeByteLength('F32', 1.5)).toThrow(RangeError);
    expect(() => dtypeByteLength('F32', 2 ** 53)).toThrow(RangeError);
  });
});

describe('encodeSafetensorsHeader', () => {
  const f32Data = Buffer.from(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);

  test('one F32 tensor gives the Rust crate test_serialization bytes', () => {
    const { bytes, dataStart, offsets, totalSize } = encodeSafetensorsHeader([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3] }]);
    const expected = Buffer.from([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97,
      112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125,
      0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    expect(Buffer.concat([bytes, f32Data])).toEqual(expected);
    expect(dataStart).toBe(72);
    expect(offsets).toEqual([[0, 24]]);
    expect(totalSize).toBe(96);
  });

  test('a shorter name is padded with spaces as in the crate test_serialization_forced_alignement', () => {
    const { bytes } = encodeSafetensorsHeader([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3] }]);
    expect(bytes.readBigUInt64LE(0)).toBe(72n);
    expect(bytes.subarray(8).toString('latin1')).toBe('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ');
  });

  test('an F4 pair gives the crate test_serialization_fp4 bytes', () => {
    const { bytes, totalSize } = encodeSafetensorsHeader([{ name: 'attn.0', dtype: 'F4', shape: [1, 2] }]);
    expect(Buffer.concat([bytes, Buffer.from([0])])).toEqual(crateBytes('@\0\0\0\0\0\0\0{"attn.0":{"dtype":"F4","shape":[1,2],"data_offsets":[0,1]}}    \0'));
    expect(totalSize).toBe(73);
  });

  test('no tensors, with and without metadata, gives the crate test_empty bytes', () => {
    expect(encodeSafetensorsHeader([]).bytes).toEqual(crateBytes('\x08\0\0\0\0\0\0\0{}      '));
    expect(encodeSafetensorsHeader([], { framework: 'pt' }).bytes).toEqual(crateBytes('(\0\0\0\0\0\0\0{"__metadata__":{"framework":"pt"}}     '));
  });

  test('(8 + header length) is a multiple of 8 for every name length, and the padding is spaces', () => {
    for (let n = 0; n < 24; n++) {
      const { bytes, dataStart } = encodeSafetensorsHeader([{ name: 'x'.repeat(n), dtype: 'U8', shape: [1] }]);
      const headerLength = Number(bytes.readBigUInt64LE(0));
      expect(bytes.length).toBe(8 + headerLength);
      expect(dataStart % 8).toBe(0);
      const json = bytes.subarray(8).toString('utf8');
      expect(json.trimEnd()).toMatch(/}$/);
      expect(json.length - json.trimEnd().length).toBeLessThan(8);
      expect(/^ *$/.test(json.slice(json.trimEnd().length))).toBe(true);
    }
  });

  test('tensors are laid out contiguously in the order given, metadata first with sorted keys', () => {
    const { bytes, offsets } = encodeSafetensorsHeader(
      [
        { name: 'z', dtype: 'BF16', shape: [3] },
        { name: 'a', dtype: 'U8', shape: [] },
        { name: 'm', dtype: 'F64', shape: [2, 0] },
        { name: 'q', dtype: 'F6_E3M2', shape: [4] },
      ],
      { b: '2', a: '1' },
    );
    expect(offsets).toEqual([
      [0, 6],
      [6, 7],
      [7, 7],
      [7, 10],
    ]);
    expect(bytes.subarray(8).toString('utf8').trimEnd()).toBe(
      '{"__metadata__":{"a":"1","b":"2"},' +
        '"z":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},' +
        '"a":{"dtype":"U8","shape":[],"data_offsets":[6,7]},' +
        '"m":{"dtype":"F64","shape":[2,0],"data_offsets":[7,7]},' +
        '"q":{"dtype":"F6_E3M2","shape":[4],"data_offsets":[7,10]}}',
    );
  });

  test('equal inputs give byte-identical headers, whatever the metadata insertion order', () => {
    const tensors = [
      { name: 'w', dtype: 'F16' as const, shape: [4, 4] },
      { name: 'b', dtype: 'F16' as const, shape: [4] },
    ];
    const first = encodeSafetensorsHeader(tensors, { x: '1', y: '2', é: '3' });
    const second = encodeSafetensorsHeader(
      tensors.map((t) => ({ ...t, shape: [...t.shape] })),
      { é: '3', y: '2', x: '1' },
    );
    expect(second.bytes.equals(first.bytes)).toBe(true);
    expect(second).toEqual(first);
  });

  test('names that JSON must escape round-trip through encode and parse', async () => {
    const names = ['a"b', 'back\\slash', 'new\nline', 'tab\t', '\u0000nul', 'é😀', '__proto__', 'constructor', ''];
    const { bytes, totalSize } = encodeSafetensorsHeader(names.map((name) => ({ name, dtype: 'U8', shape: [1] })));
    const header = await readBytes(Buffer.concat([bytes, Buffer.alloc(totalSize - bytes.length)]));
    expect(header.tensors.map((t) => t.name)).toEqual(names);
  });

  test('a malformed entry is TensorInvalidInfo (as the TSDoc says; it was a RangeError); sizes that cannot exist are their own SafetensorsErrors', () => {
    const t = (name: string, dtype: string, shape: number[]) => ({ name, dtype: dtype as SafetensorsDtype, shape });
    const invalid = (message: RegExp) => expect.objectContaining({ code: 'TensorInvalidInfo', message: expect.stringMatching(message) });
    expect(() => encodeSafetensorsHeader([t('a', 'F32', [1]), t('a', 'F32', [1])])).toThrow(invalid(/given twice/));
    expect(() => encodeSafetensorsHeader([t('__metadata__', 'F32', [1])])).toThrow(invalid(/reserved/));
    expect(() => encodeSafetensorsHeader([t('\ud800', 'F32', [1])])).toThrow(invalid(/well-formed/));
    expect(() => encodeSafetensorsHeader([t('a', 'F128', [1])])).toThrow(invalid(/unknown dtype/));
    expect(() => encodeSafetensorsHeader([t('a', 'F32', [-1])])).toThrow(invalid(/shape/));
    expect(() => encodeSafetensorsHeader([t('a', 'F32', [1.5])])).toThrow(invalid(/shape/));
    expect(() => encodeSafetensorsHeader([], { k: 1 as unknown as string })).toThrow(invalid(/metadata/));
    expect(() => encodeSafetensorsHeader([t('a', 'F4', [3])])).toThrow(expect.objectContaining({ code: 'MisalignedSlice' }));
    expect(() => encodeSafetensorsHeader([t('a', 'U8', [2 ** 40, 2 ** 40])])).toThrow(expect.objectContaining({ code: 'ValidationOverflow' }));
    expect(() => encodeSafetensorsHeader([t('a', 'U8', [2 ** 52]), t('b', 'U8', [2 ** 52])])).toThrow(expect.objectContaining({ code: 'ValidationOverflow' }));
    expect(() => encodeSafetensorsHeader([], { big: 'x'.repeat(100_000_000) })).toThrow(expect.objectContaining({ code: 'HeaderTooLarge' }));
  });
});

describe('parsing valid files', () => {
  test('the crate doc example parses to one I32 [2, 2] tensor', async () => {
    const header = await readBytes(crateBytes('<\0\0\0\0\0\0\0{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}' + '\0'.repeat(16)));
    expect(header).toMatchObject({ headerLength: 60, dataStart: 68, fileSize: 84, metadata: null });
    expect(header.tensors).toEqual([{ name: 'test', dtype: 'I32', shape: [2, 2], dataOffsets: [0, 16], byteLength: 16, elementCount: 4 }]);
    expect(header.byName.get('test')).toBe(header.tensors[0]);
  });

  test('scalars (empty shape) and zero-sized tensors are accepted', async () => {
    const scalar = await readBytes(crateBytes('8\0\0\0\0\0\0\0{"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}\0\0\0\0'));
    expect(scalar.tensors[0]).toMatchObject({ shape: [], elementCount: 1, byteLength: 4 });
    const empty = await readBytes(crateBytes('<\0\0\0\0\0\0\0{"test":{"dtype":"I32","shape":[2,0],"data_offsets":[0, 0]}}'));
    expect(empty.tensors[0]).toMatchObject({ shape: [2, 0], elementCount: 0, byteLength: 0, dataOffsets: [0, 0] });
  });

  test('tensors come back sorted by offset whatever their order in the JSON', async () => {
    const header = await readBytes(
      safetensorsBytes(
        '{"c":{"dtype":"U8","shape":[0],"data_offsets":[6,6]},"b":{"dtype":"F16","shape":[1],"data_offsets":[4,6]},' +
          '"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"0":{"dtype":"U8","shape":[0],"data_offsets":[6,6]}}',
        6,
      ),
    );
    expect(header.tensors.map((t) => t.name)).toEqual(['a', 'b', '0', 'c']);
    expect(header.metadata).toEqual({ format: 'pt' });
  });

  test('metadata keys from the file stay plain data', async () => {
    const header = await readBytes(safetensorsBytes('{"__metadata__":{"__proto__":"x","constructor":"y"}}'));
    expect(Object.getPrototypeOf(header.metadata)).toBeNull();
    expect(Object.entries(header.metadata!)).toEqual([
      ['__proto__', 'x'],
      ['constructor', 'y'],
    ]);
  });

  test.each(Object.keys(DTYPE_BITS) as SafetensorsDtype[])('a %s tensor round-trips through writeSafetensorsFile and readSafetensorsHeader', async (dtype) => {
    const shape = [3, 8];
    const byteLength = (3 * 8 * DTYPE_BITS[dtype]) / 8;
    const data = Buffer.from(Array.from({ length: byteLength }, (_, i) => i & 0xff));
    const path = join(dir, `dtype-${dtype}.safetensors`);
    await writeSafetensorsFile(
      path,
      [
        { name: `t.${dtype}`, dtype, shape, data },
        { name: 'tail', dtype: 'U8', shape: [1], data: Buffer.from([7]) },
      ],
      {
        dtype,
      },
    );
    const header = await readSafetensorsHeader(path);
    expect(header.metadata).toEqual({ dtype });
    expect(header.tensors[0]).toEqual({ name: `t.${dtype}`, dtype, shape, dataOffsets: [0, byteLength], byteLength, elementCount: 24 });
    const file = readFileSync(path);
    expect(file.subarray(header.dataStart, header.dataStart + byteLength)).toEqual(data);
    expect(file.length).toBe(header.fileSize);
  });

  test('only the header is read: a file with 3 GiB of sparse data parses at once', async () => {
    const path = join(dir, 'sparse.safetensors');
    const size = 3 * 2 ** 30;
    const { bytes, totalSize } = encodeSafetensorsHeader([{ name: 'huge', dtype: 'F32', shape: [size / 4] }]);
    writeFileSync(path, bytes);
    truncateSync(path, totalSize);
    const header = await readSafetensorsHeader(path);
    expect(header.tensors[0].byteLength).toBe(size);
    expect(header.fileSize).toBe(totalSize);
  });

  test('a header read around the first read of 256 KiB (whole in it, ending at its last byte, longer) is the header parsed from its bytes', async () => {
    const first = 256 * 1024;
    // 8 + n bytes of prefix and header against the first read's size; then 4 bytes of data.
    for (const n of [first - 9, first - 8, first - 7, first, 3 * first + 5]) {
      const tensor = '"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}';
      const frame = `{"__metadata__":{"pad":""},${tensor}}`;
      const json = Buffer.from(frame.replace('"pad":""', `"pad":"${'p'.repeat(n - frame.length)}"`));
      expect(json.length).toBe(n);
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(n));
      const path = join(dir, `around-${n}.safetensors`);
      writeFileSync(path, Buffer.concat([prefix, json, Buffer.from([1, 2, 3, 4])]));
      const read = await readSafetensorsHeader(path);
      const parsed = parseSafetensorsHeader(json, { file: path, fileSize: 8 + n + 4, headerLength: n });
      expect({ ...read, tensors: read.tensors, metadata: read.metadata }).toEqual({ ...parsed, tensors: parsed.tensors, metadata: parsed.metadata });
      expect(read.metadata!.pad.length).toBe(n - frame.length);
      // Cut inside its header: refused as too small, whichever read the cut falls in.
      truncateSync(path, 8 + n - 1);
      await expect(readSafetensorsHeader(path)).rejects.toMatchObject({ code: 'HeaderTooSmall' });
    }
  });

  test('parseSafetensorsHeader is pure: it takes the JSON bytes and the sizes', () => {
    const json = Buffer.from('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}');
    const header = parseSafetensorsHeader(json, { file: 'mem', fileSize: 8 + json.length + 2, headerLength: json.length });
    expect(header.dataStart).toBe(8 + json.length);
    expect(() => parseSafetensorsHeader(json, { file: 'mem', fileSize: 8 + json.length + 3, headerLength: json.length })).toThrow(
      expect.objectContaining({ code: 'MetadataIncompleteBuffer' }),
    );
    expect(() => parseSafetensorsHeader(json, { file: 'mem', fileSize: 100, headerLength: json.length + 1 })).toThrow(RangeError);
  });
});

describe('rejecting malformed files (every case of test/helpers/malformed.ts runs from the corpus below)', () => {
  test.each([
    ['overlap', 'tensor "b"'],
    ['hole-between', 'tensor "b"'],
    ['begin-after-end', 'tensor "b"'],
    ['byte-size-mismatch', 'tensor "test"'],
    ['shape-2p40-squared', 'tensor "a"'],
    ['f4-odd-count', 'tensor "a"'],
    ['unknown-dtype', 'tensor "a"'],
    ['extra-entry-field', 'tensor "a"'],
  ])('the %s message names the tensor', async (name, tensor) => {
    const c = malformedCases().find((m) => m.name === name)!;
    expect((await rejection(readBytes(c.bytes))).message).toContain(tensor);
  });

  test('integers beyond 2^53 in offsets are rejected, never rounded to a valid layout', async () => {
    // 2^53 + 1 would round to 2^53 and 2^53 + 3 to 2^53 + 4, which would make [begin, end] look 4 bytes long.
    const e = await rejection(readBytes(safetensorsBytes('{"a":{"dtype":"F32","shape":[1],"data_offsets":[9007199254740993,9007199254740995]}}', 4)));
    expect(e.code).toBe('InvalidHeaderDeserialization');
    expect(e.message).toContain('9007199254740993');
  });

  test('a missing file and a directory are IoErrors', async () => {
    expect((await rejection(readSafetensorsHeader(join(dir, 'missing.safetensors')))).code).toBe('IoError');
    expect((await rejection(readSafetensorsHeader(dir))).code).toBe('IoError');
  });

  test('writeSafetensorsFile checks each data length against dtype and shape', async () => {
    const e = await rejection(writeSafetensorsFile(join(dir, 'bad.safetensors'), [{ name: 'w', dtype: 'F32', shape: [2], data: Buffer.alloc(4) }]));
    expect(e.code).toBe('TensorInvalidInfo');
    expect(e.message).toContain('tensor "w": data is 4 bytes but F32 [2] needs 8');
  });
});

describe('the committed corpus', () => {
  const files = readdirSync(SAFETENSORS_CORPUS_DIR)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();

  test('holds every malformed and accepted case of test/helpers/malformed.ts byte for byte (rewrite: npx tsx test/helpers/malformed.ts)', () => {
    const expected = [
      ...malformedCases().map((c) => [`${c.code}--${c.name}.safetensors`, c.bytes] as const),
      ...acceptedCases().map((c) => [`ok--${c.name}.safetensors`, c.bytes] as const),
    ];
    for (const [file, bytes] of expected) {
      expect([file, readFileSync(join(SAFETENSORS_CORPUS_DIR, file)).equals(bytes)]).toEqual([file, true]);
    }
  });

  test.each(files)('%s gives the outcome its name says', async (file) => {
    const path = join(SAFETENSORS_CORPUS_DIR, file);
    const outcome = file.slice(0, file.indexOf('--'));
    if (outcome === 'ok') {
      const header = await readSafetensorsHeader(path);
      expect(header.fileSize).toBe(header.dataStart + (header.tensors.at(-1)?.dataOffsets[1] ?? 0));
    } else {
      const e = await rejection(readSafetensorsHeader(path));
      expect(e.code).toBe(outcome);
      expect(e).toBeInstanceOf(WeightmixError);
      expect(e.message.startsWith(`${path}: `)).toBe(true);
      expect(e.message).not.toMatch(/[\r\n]/);
    }
  });
});
