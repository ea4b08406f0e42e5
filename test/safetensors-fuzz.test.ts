/**
 * Property-based fuzzing of the format layer. Runs per property: WEIGHTMIX_FUZZ_RUNS (default 300);
 * replay a run with WEIGHTMIX_FUZZ_SEED=<seed printed below>. A failing case found here belongs in
 * test/corpus/ as a regression file.
 */
import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeightmixError } from '../lib/errors';
import { parseJsonStrict } from '../lib/format/json-strict';
import {
  DTYPE_BITS,
  encodeSafetensorsHeader,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  SafetensorsDtype,
  SafetensorsError,
  SafetensorsHeader,
} from '../lib/format/safetensors';
import { dir, useTempDir } from './helpers/temp-dir';

const numRuns = Number(process.env.WEIGHTMIX_FUZZ_RUNS ?? 300);
const seed = process.env.WEIGHTMIX_FUZZ_SEED !== undefined ? Number(process.env.WEIGHTMIX_FUZZ_SEED) : Date.now() % 2 ** 31;
const params = { numRuns, seed };

beforeAll(() => {
  console.log(`safetensors fuzz: seed ${seed}, ${numRuns} runs per property (replay: WEIGHTMIX_FUZZ_SEED=${seed})`);
});
useTempDir('weightmix-fuzz-');

// ---- arbitraries -------------------------------------------------------------------------------

const DTYPES = Object.keys(DTYPE_BITS) as SafetensorsDtype[];

const nameArb = fc.oneof(
  fc.string({ unit: 'binary-ascii', maxLength: 10 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.constantFrom('__proto__', 'constructor', 'toString', '0', '17', 'model.layers.0.mlp.up_proj.weight'),
);

type TensorSpec = { name: string; dtype: SafetensorsDtype; shape: number[] };

const tensorArb: fc.Arbitrary<TensorSpec> = fc
  .record({
    name: nameArb.filter((n) => n !== '__metadata__'),
    dtype: fc.constantFrom(...DTYPES),
    shape: fc.array(fc.nat({ max: 6 }), { maxLength: 4 }),
  })
  .filter((t) => (t.shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[t.dtype]) % 8 === 0);

const metadataArb = fc.option(fc.dictionary(nameArb, nameArb, { maxKeys: 4 }), { nil: null });

const headerSpecArb = fc.record({
  tensors: fc.uniqueArray(tensorArb, { selector: (t) => t.name, maxLength: 8 }),
  metadata: metadataArb,
});

/** A valid file for a random header: encoded header plus `data` bytes counting up. */
const validFileArb = headerSpecArb.map(({ tensors, metadata }) => {
  const { bytes, totalSize } = encodeSafetensorsHeader(tensors, metadata);
  const data = Buffer.from(Array.from({ length: totalSize - bytes.length }, (_, i) => i & 0xff));
  return Buffer.concat([bytes, data]);
});

/** Tokens that turn a header into a near miss: big integers, signs, fractions, wrong types, broken syntax. */
const JSON_TOKENS = [
  '9007199254740993',
  '18446744073709551615',
  '-1',
  '-0',
  '1.0',
  '1e3',
  '0',
  '7',
  '"F4"',
  '"F6_E3M2"',
  '"X"',
  '{}',
  '[]',
  'null',
  'true',
  '"__metadata__"',
  '"dtype"',
  '"shape"',
  '"data_offsets"',
  ',',
  ':',
  '"',
  '{',
  '}',
  '[',
  ']',
  '\\',
  '\\u',
  '\\ud800',
  ' ',
  '\n',
  '\0',
  '\u00e9',
  '\ufeff',
];

/** A new number for a size field: a small step from the old one, or a value at an edge. */
type SizeEdit = { delta: number } | { set: number };

type Mutation =
  | { kind: 'field'; field: 'begin' | 'end' | 'shift' | 'dim' | 'addDim' | 'dtype' | 'drop'; tensor: number; index: number; edit: SizeEdit }
  | { kind: 'fitData' }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'prefix'; value: bigint }
  | { kind: 'token'; at: number; token: string; replace: number };

const sizeEditArb: fc.Arbitrary<SizeEdit> = fc.oneof(
  fc.integer({ min: -16, max: 16 }).map((delta) => ({ delta })),
  fc.constantFrom(0, 1, 3, 2 ** 32, 2 ** 40, 2 ** 51, 2 ** 53 - 1).map((set) => ({ set })),
);

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  // Edits of the decoded header reach the layout checks (offsets, sizes, dtypes) that byte noise rarely gets to.
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('field' as const),
      field: fc.constantFrom(...(['begin', 'end', 'shift', 'dim', 'addDim', 'dtype', 'drop'] as const)),
      tensor: fc.nat(),
      index: fc.nat(),
      edit: sizeEditArb,
    }),
  },
  fc.record({ kind: fc.constant('fitData' as const) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.oneof(fc.nat({ max: 127 }), fc.nat({ max: 255 })) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({
    kind: fc.constant('prefix' as const),
    value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 512n })),
  }),
  fc.record({ kind: fc.constant('token' as const), at: fc.nat(), token: fc.constantFrom(...JSON_TOKENS), replace: fc.nat({ max: 3 }) }),
);

/** The file's header text and data, when its length prefix is true. */
function splitFile(bytes: Buffer): { header: Buffer; data: Buffer } | null {
  if (bytes.length < 8) return null;
  const headerLength = bytes.readBigUInt64LE(0);
  if (8n + headerLength > BigInt(bytes.length)) return null;
  return { header: bytes.subarray(8, 8 + Number(headerLength)), data: bytes.subarray(8 + Number(headerLength)) };
}

function joinFile(header: Buffer, data: Buffer): Buffer {
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([prefix, header, data]);
}

function applySizeEdit(old: unknown, edit: SizeEdit): number {
  return 'set' in edit ? edit.set : (typeof old === 'number' ? old : 0) + edit.delta;
}

/** Applies a field edit to the decoded header; null when the header is no longer JSON with a tensor entry. */
function editHeader(header: Buffer, m: Extract<Mutation, { kind: 'field' }>): Buffer | null {
  let root: Record<string, Record<string, unknown>>;
  try {
    root = JSON.parse(header.toString('utf8'));
  } catch {
    return null;
  }
  const names = typeof root === 'object' && root !== null ? Object.keys(root).filter((k) => k !== '__metadata__') : [];
  const name = names[m.tensor % Math.max(names.length, 1)];
  const entry = name === undefined ? undefined : root[name];
  if (typeof entry !== 'object' || entry === null) return null;
  const { shape, data_offsets: offsets } = entry as { shape: unknown[]; data_offsets: unknown[] };
  switch (m.field) {
    case 'begin':
    case 'end':
      if (Array.isArray(offsets)) offsets[m.field === 'begin' ? 0 : 1] = applySizeEdit(offsets[m.field === 'begin' ? 0 : 1], m.edit);
      break;
    case 'shift': {
      // Moves the tensor onto another one's start, keeping its size, so only the layout checks can catch it.
      const others = names.filter((n) => n !== name);
      const target = others.length === 0 ? undefined : root[others[m.index % others.length]];
      const start = Array.isArray(target?.data_offsets) ? target.data_offsets[0] : undefined;
      if (!Array.isArray(offsets) || typeof start !== 'number' || typeof offsets[0] !== 'number' || typeof offsets[1] !== 'number') break;
      offsets[1] = start + offsets[1] - offsets[0];
      offsets[0] = start;
      break;
    }
    case 'dim':
      if (Array.isArray(shape) && shape.length > 0) shape[m.index % shape.length] = applySizeEdit(shape[m.index % shape.length], m.edit);
      break;
    case 'addDim':
      if (Array.isArray(shape)) shape.splice(m.index % (shape.length + 1), 0, applySizeEdit(1, m.edit));
      break;
    case 'dtype':
      entry.dtype = [...DTYPES, 'X'][m.index % (DTYPES.length + 1)];
      break;
    case 'drop':
      delete root[name];
      break;
  }
  return Buffer.from(JSON.stringify(root), 'utf8');
}

/** Resizes the data section to the largest end offset in the header, so that the file size cannot hide layout errors. */
function fitData(bytes: Buffer): Buffer {
  const parts = splitFile(bytes);
  if (parts === null) return bytes;
  let root: Record<string, { data_offsets?: unknown }>;
  try {
    root = JSON.parse(parts.header.toString('utf8'));
  } catch {
    return bytes;
  }
  if (typeof root !== 'object' || root === null) return bytes;
  const ends = Object.values(root).map((e) => (Array.isArray(e?.data_offsets) ? e.data_offsets[1] : 0));
  const end = Math.max(0, ...ends.map((x) => (typeof x === 'number' ? x : 0)));
  if (end > 1 << 16) return bytes;
  const data = Buffer.alloc(end);
  parts.data.copy(data, 0, 0, Math.min(end, parts.data.length));
  return joinFile(parts.header, data);
}

function mutate(file: Buffer, mutations: Mutation[]): Buffer {
  let bytes: Buffer = Buffer.from(file);
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : 'at' in m ? m.at % bytes.length : 0;
    switch (m.kind) {
      case 'field': {
        const parts = splitFile(bytes);
        const header = parts && editHeader(parts.header, m);
        if (parts && header) bytes = joinFile(header, parts.data);
        // A moved tensor changes where the data ends; fitting the file keeps MetadataIncompleteBuffer from masking the rest.
        if (m.field === 'shift') bytes = fitData(bytes);
        break;
      }
      case 'fitData':
        bytes = fitData(bytes);
        break;
      case 'set':
        if (bytes.length > 0) bytes[at] = m.byte;
        break;
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.length)]);
        break;
      case 'prefix':
        if (bytes.length >= 8) bytes.writeBigUInt64LE(m.value, 0);
        break;
      case 'token': {
        // Edit the header text and keep the length prefix true, so the edit reaches the JSON checks.
        const parts = splitFile(bytes);
        if (parts === null) break;
        const pos = parts.header.length === 0 ? 0 : m.at % parts.header.length;
        const edited = Buffer.concat([parts.header.subarray(0, pos), Buffer.from(m.token, 'utf8'), parts.header.subarray(pos + m.replace)]);
        bytes = joinFile(edited, parts.data);
        break;
      }
    }
  }
  return bytes;
}

// ---- checks -----------------------------------------------------------------------------------

/** Every invariant a parsed header promises, checked with bigint arithmetic independent of the parser; returns the broken ones. */
function brokenInvariants(h: SafetensorsHeader, fileSize: number): string[] {
  const broken: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) broken.push(what);
  };
  check(h.fileSize === fileSize, 'fileSize is the file size');
  check(h.dataStart === 8 + h.headerLength, 'dataStart = 8 + headerLength');
  let end = 0;
  h.tensors.forEach((t, i) => {
    const name = JSON.stringify(t.name);
    check(Object.hasOwn(DTYPE_BITS, t.dtype), `${name}: known dtype`);
    check(t.dataOffsets[0] === end, `${name}: starts where the previous tensor ends`);
    const prev = h.tensors[i - 1];
    // Contiguity orders everything else; zero-sized tensors sharing an offset are ordered by name.
    if (prev !== undefined && prev.dataOffsets[0] === t.dataOffsets[0] && prev.dataOffsets[1] === t.dataOffsets[1]) {
      check(prev.name < t.name, `${name}: zero-sized tensors at one offset sorted by name`);
    }
    const elements = t.shape.reduce((a, d) => a * BigInt(d), 1n);
    check(BigInt(t.elementCount) === elements, `${name}: elementCount is the shape product`);
    check(BigInt(t.byteLength) * 8n === elements * BigInt(DTYPE_BITS[t.dtype]), `${name}: byteLength is elements × bits / 8`);
    check(t.dataOffsets[1] - t.dataOffsets[0] === t.byteLength, `${name}: offsets span byteLength`);
    check(h.byName.get(t.name) === t, `${name}: byName finds it`);
    end = t.dataOffsets[1];
  });
  check(h.byName.size === h.tensors.length, 'names are unique');
  check(h.dataStart + end === fileSize, 'the data ends at the end of the file');
  check(h.metadata === null || Object.values(h.metadata).every((v) => typeof v === 'string'), 'metadata values are strings');
  const reencoded = encodeSafetensorsHeader(h.tensors, h.metadata).offsets;
  check(
    reencoded.every(([b, e], i) => b === h.tensors[i].dataOffsets[0] && e === h.tensors[i].dataOffsets[1]),
    're-encoding reproduces the offsets',
  );
  return broken;
}

let fileCounter = 0;
/** Reads `bytes` as a file: a valid header with all invariants, or a one-line SafetensorsError, nothing else. */
async function expectParsedOrRejected(bytes: Buffer): Promise<void> {
  const path = join(dir, `case${fileCounter++ % 4}.safetensors`);
  writeFileSync(path, bytes);
  let header: SafetensorsHeader;
  try {
    header = await readSafetensorsHeader(path);
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e;
    expect(e.message.startsWith(`${path}: `)).toBe(true);
    expect(e.message).not.toMatch(/[\r\n]/);
    return;
  }
  expect(brokenInvariants(header, bytes.length)).toEqual([]);
}

// ---- properties -------------------------------------------------------------------------------

describe('safetensors header fuzzing', () => {
  test('random headers round-trip through encode and parse', () => {
    fc.assert(
      fc.property(headerSpecArb, ({ tensors, metadata }) => {
        const { bytes, dataStart, offsets, totalSize } = encodeSafetensorsHeader(tensors, metadata);
        expect(dataStart % 8).toBe(0);
        const header = parseSafetensorsHeader(bytes.subarray(8), { file: 'mem', fileSize: totalSize, headerLength: bytes.length - 8 });
        expect(brokenInvariants(header, totalSize)).toEqual([]);
        // Layout order is the order given, except that zero-sized tensors sharing an offset sort by name.
        const expected = tensors
          .map((t, i) => ({ ...t, dataOffsets: offsets[i] }))
          .sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1] || (a.name < b.name ? -1 : 1));
        expect(header.tensors.map(({ name, dtype, shape, dataOffsets }) => ({ name, dtype, shape, dataOffsets }))).toEqual(expected);
        expect(header.metadata).toEqual(metadata);
      }),
      params,
    );
  });

  test('arbitrary bytes are parsed with every invariant or rejected with a SafetensorsError', async () => {
    const arbitraryFile = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
      // A true length prefix over random bytes gets past the prefix checks.
      fc.tuple(fc.uint8Array({ maxLength: 64 }), fc.nat({ max: 16 })).map(([header, data]) => joinFile(Buffer.from(header), Buffer.alloc(data))),
    );
    await fc.assert(fc.asyncProperty(arbitraryFile, expectParsedOrRejected), params);
  });

  test('mutated valid files are parsed with every invariant or rejected with a SafetensorsError', async () => {
    await fc.assert(
      fc.asyncProperty(validFileArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (file, mutations) =>
        expectParsedOrRejected(mutate(file, mutations)),
      ),
      params,
    );
  });
});

// ---- strict JSON --------------------------------------------------------------------------------

/** What parseJsonStrict rejects on purpose where JSON.parse accepts. */
const STRICTER_THAN_JSON_PARSE = /integer .* is beyond|duplicate key|nesting deeper than/;

/** parseJsonStrict never throws anything but an InvalidJson WeightmixError, and agrees with JSON.parse otherwise. */
function expectAgreesWithJsonParse(text: string): void {
  let ours: { value: unknown } | { error: WeightmixError };
  try {
    ours = { value: parseJsonStrict(text, { what: 'fuzz' }) };
  } catch (e) {
    if (!(e instanceof WeightmixError)) throw e;
    expect(e.code).toBe('InvalidJson');
    expect(e.message).toMatch(/^fuzz: invalid JSON at byte \d+: [^\r\n]+$/);
    ours = { error: e };
  }
  let theirs: { value: unknown } | { error: unknown };
  try {
    theirs = { value: JSON.parse(text) };
  } catch (e) {
    theirs = { error: e };
  }
  if ('value' in ours) {
    expect(theirs).toStrictEqual({ value: ours.value });
  } else if ('value' in theirs) {
    expect(ours.error.message).toMatch(STRICTER_THAN_JSON_PARSE);
  }
}

/** Whether JSON.stringify writes some number of `v` as an integer literal beyond 2^53-1. */
function hasUnsafeIntegerLiteral(v: unknown): boolean {
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) > Number.MAX_SAFE_INTEGER && Math.abs(v) < 1e21;
  if (Array.isArray(v)) return v.some(hasUnsafeIntegerLiteral);
  if (typeof v === 'object' && v !== null) return Object.values(v).some(hasUnsafeIntegerLiteral);
  return false;
}

const JSONISH_CHARS = [...'{}[]",:\\ \t\n0123456789-+.eEtrufalsn', 'u', 'ud800', '\u00e9', '\0'];

describe('parseJsonStrict fuzzing', () => {
  test('arbitrary strings: only InvalidJson errors, and the same values as JSON.parse', () => {
    const text = fc.oneof(
      fc.string({ unit: fc.constantFrom(...JSONISH_CHARS), maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 20 }),
      fc
        .tuple(fc.json({ maxDepth: 4 }), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 2 }), fc.constantFrom(...JSON_TOKENS, ...JSONISH_CHARS)), { maxLength: 3 }))
        .map(([json, edits]) => edits.reduce((s, [at, cut, token]) => s.slice(0, at % (s.length + 1)) + token + s.slice((at % (s.length + 1)) + cut), json)),
    );
    fc.assert(fc.property(text, expectAgreesWithJsonParse), params);
  });

  test('valid JSON without unsafe integers parses exactly as JSON.parse does', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.constantFrom(undefined, 0, 2, '\t'), (value, indent) => {
        fc.pre(!hasUnsafeIntegerLiteral(value));
        const text = JSON.stringify(value, null, indent);
        expect(parseJsonStrict(text, { what: 'fuzz' })).toStrictEqual(JSON.parse(text));
      }),
      params,
    );
  });
});
