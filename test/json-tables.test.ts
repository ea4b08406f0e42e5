/**
 * The addon's fast readers of headers and indexes (native/json_tables.h, lib/format/json-tables.ts)
 * against the JavaScript readers they stand in for: on the corpus, on random header and index texts
 * (whitespace, field order, names that need escapes, numbers at 2^53, duplicates) and their near
 * misses, every input gives the same tensors, metadata and weight_map, or the same error, with the
 * readers and without them; and they do vouch for the usual text, or they would speed up nothing.
 * WEIGHTMIX_FUZZ_RUNS sets the runs per property (default 300), WEIGHTMIX_FUZZ_SEED replays one.
 */
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadNative } from '../lib/engine/native';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { parseJsonStrict } from '../lib/format/json-strict';
import { jsonTablesOfAddon, NativeJsonTables, NativeJsonTablesAddon, nativeJsonTables, useNativeJsonTables } from '../lib/format/json-tables';
import { DTYPE_BITS, encodeSafetensorsHeader, parseSafetensorsHeader, SafetensorsDtype } from '../lib/format/safetensors';
import { openCheckpoint } from '../lib/model/checkpoint';

const numRuns = Number(process.env.WEIGHTMIX_FUZZ_RUNS ?? 300);
const seed = process.env.WEIGHTMIX_FUZZ_SEED !== undefined ? Number(process.env.WEIGHTMIX_FUZZ_SEED) : Date.now() % 2 ** 31;
const params = { numRuns, seed };
const CORPUS = path.join(__dirname, 'corpus', 'safetensors');
const DTYPES = Object.keys(DTYPE_BITS) as SafetensorsDtype[];

let tables: NativeJsonTables;
beforeAll(() => {
  console.log(`json tables: seed ${seed}, ${numRuns} runs per property (replay: WEIGHTMIX_FUZZ_SEED=${seed})`);
  loadNative();
  tables = nativeJsonTables()!;
});
afterAll(() => useNativeJsonTables(tables));

/** What a call gives: its value, or its error's class, code and message. */
function outcome<T>(run: () => T): { value: T } | { error: { type: string; code: unknown; message: string } } {
  try {
    return { value: run() };
  } catch (e) {
    const err = e as Error & { code?: unknown };
    return { error: { type: err.constructor.name, code: err.code, message: err.message } };
  }
}

function withReaders<T>(on: boolean, run: () => T): T {
  useNativeJsonTables(on ? tables : undefined);
  try {
    return run();
  } finally {
    useNativeJsonTables(tables);
  }
}

/** A header's JSON as its reader sees it, with the readers and without: metadata compared with its prototype and key order. */
function headerBothWays(json: Buffer, fileSize: number) {
  const read = () => {
    const h = parseSafetensorsHeader(json, { file: 'f', fileSize, headerLength: json.length });
    const meta = h.metadata;
    return { tensors: h.tensors, metadata: meta && { proto: Object.getPrototypeOf(meta), entries: Object.entries(meta) }, dataStart: h.dataStart };
  };
  return { fast: outcome(() => withReaders(true, read)), slow: outcome(() => withReaders(false, read)) };
}

test('loading the addon hands its readers to the format layer', () => {
  expect(typeof tables?.readHeaderTable).toBe('function');
  expect(typeof tables?.readWeightMapTable).toBe('function');
});

test('every file of the safetensors corpus reads the same with the readers and without', () => {
  const files = fs.readdirSync(CORPUS);
  expect(files.length).toBeGreaterThan(50);
  for (const file of files) {
    const bytes = fs.readFileSync(path.join(CORPUS, file));
    if (bytes.length < 8) continue;
    const length = bytes.readBigUInt64LE(0);
    if (8n + length > BigInt(bytes.length)) continue;
    const { fast, slow } = headerBothWays(bytes.subarray(8, 8 + Number(length)), bytes.length);
    expect({ file, ...fast }).toEqual({ file, ...slow });
  }
});

// ---- random header texts ---------------------------------------------------------------------

const nameArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.stringMatching(/^[a-z0-9._]{1,24}$/),
  fc.constantFrom('__proto__', 'constructor', '0', '17', '4294967295', 'é€😀', 'model.layers.0.mlp.experts.3.up_proj.weight'),
);
const spaceArb = fc.constantFrom('', '', '', ' ', '\n', '\t', '\r\n  ');

type Spec = { tensors: { name: string; dtype: SafetensorsDtype; shape: number[] }[]; metadata: Record<string, string> | null };

const specArb: fc.Arbitrary<Spec> = fc.record({
  tensors: fc.uniqueArray(
    fc.record({ name: nameArb.filter((n) => n !== '__metadata__'), dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.nat({ max: 5 }), { maxLength: 3 }) }),
    { selector: (t) => t.name, maxLength: 8 },
  ),
  metadata: fc.option(fc.dictionary(nameArb, nameArb, { maxKeys: 3 }), { nil: null }),
});

/** JSON text of a header laid out by encodeSafetensorsHeader, re-spelled: spaces between tokens, fields in a random order, escapes where the writer would not use them. */
function spell(spec: Spec, spaces: string[], order: number[], escapeAll: boolean): string {
  let k = 0;
  const sp = () => spaces[k++ % spaces.length];
  const str = (s: string) => (escapeAll ? `"${[...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(s));
  const valid = spec.tensors.filter((t) => (t.shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[t.dtype]) % 8 === 0);
  const { offsets } = encodeSafetensorsHeader(valid, null);
  const members = valid.map((t, i) => {
    const fields = [
      `${sp()}"dtype"${sp()}:${sp()}${str(t.dtype)}`,
      `${sp()}"shape"${sp()}:${sp()}[${t.shape.map((d) => `${sp()}${d}${sp()}`).join(',')}]`,
      `${sp()}"data_offsets"${sp()}:${sp()}[${sp()}${offsets[i][0]},${sp()}${offsets[i][1]}${sp()}]`,
    ];
    const shuffled = [0, 1, 2].sort((a, b) => order[(i + a) % order.length] - order[(i + b) % order.length] || a - b).map((f) => fields[f]);
    return `${sp()}${str(t.name)}${sp()}:${sp()}{${shuffled.join(',')}${sp()}}`;
  });
  if (spec.metadata !== null) {
    const entries = Object.entries(spec.metadata).map(([key, v]) => `${sp()}${str(key)}${sp()}:${sp()}${str(v)}`);
    members.splice(order[0] % (members.length + 1), 0, `${sp()}"__metadata__"${sp()}:${sp()}{${entries.join(',')}${sp()}}`);
  }
  return `{${members.join(',')}${sp()}}${sp()}`;
}

const NEAR_MISSES = [
  '9007199254740991',
  '9007199254740992',
  '12345678901234567',
  '00',
  '01',
  '-0',
  '-1',
  '1.0',
  '1e2',
  '"X"',
  '"BF16"',
  'null',
  '{}',
  '[]',
  ',',
  ':',
  '"',
  '\\',
  '\\u00',
  '\u0001',
  '"dtype":"F32",',
  '"__metadata__":null,',
  '"__metadata__":{"a":1},',
  '{',
  '}',
  '[',
  ']',
  ' ',
  '\u000b',
  '\u00a0',
];

const headerTextArb = fc
  .tuple(specArb, fc.array(spaceArb, { minLength: 1, maxLength: 16 }), fc.array(fc.nat({ max: 9 }), { minLength: 1, maxLength: 8 }), fc.boolean())
  .map(([spec, spaces, order, escapeAll]) => ({ spec, text: spell(spec, spaces, order, escapeAll && spec.tensors.length < 3) }));

const editsArb = fc.array(fc.record({ at: fc.nat(), token: fc.constantFrom(...NEAR_MISSES), replace: fc.nat({ max: 4 }) }), { maxLength: 3 });

function edit(text: string, edits: { at: number; token: string; replace: number }[]): string {
  for (const e of edits) {
    const at = text.length === 0 ? 0 : e.at % text.length;
    text = text.slice(0, at) + e.token + text.slice(at + e.replace);
  }
  return text;
}

/** File size of a header whose data section holds exactly what its tensors declare (else the trailing-bytes error would hide the rest). */
function fileSizeFor(json: Buffer, spec: Spec): number {
  const valid = spec.tensors.filter((t) => (t.shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[t.dtype]) % 8 === 0);
  return 8 + json.length + encodeSafetensorsHeader(valid, null).totalSize - encodeSafetensorsHeader([], null).totalSize;
}

test('random header texts and their near misses read the same with the readers and without', () => {
  let vouched = 0;
  let cases = 0;
  fc.assert(
    fc.property(headerTextArb, editsArb, ({ spec, text }, edits) => {
      const json = Buffer.from(edit(text, edits), 'utf8');
      const { fast, slow } = headerBothWays(json, fileSizeFor(json, spec));
      expect(fast).toEqual(slow);
      cases++;
      if (tables.readHeaderTable(json, DTYPES) !== null) vouched++;
    }),
    params,
  );
  // Unedited escape-free texts are most of the cases: the readers must vouch for a good share.
  expect(vouched).toBeGreaterThan(cases / 10);
});

test('the header reader vouches for the usual header and declines each rule it leaves to the JavaScript reader', () => {
  const ok = (s: string) => tables.readHeaderTable(Buffer.from(s), DTYPES);
  const base = '{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}';
  expect(ok(base)).toEqual({
    names: ['a'],
    dtypes: Uint8Array.of(DTYPES.indexOf('BF16')),
    shapeStarts: Uint32Array.of(0, 2),
    dims: Float64Array.of(2, 2),
    offsets: Float64Array.of(0, 8),
    metadata: ['format', 'pt'],
    namesText: 'a\n',
  });
  expect(ok(' {"a" : {"shape":[], "data_offsets":[0,1],"dtype":"U8"}, "__metadata__":null}\n   ')?.metadata).toBeNull();
  expect(ok('{}')).toMatchObject({ names: [], metadata: null });
  expect(ok('{"a":{"dtype":"F32","shape":[9007199254740991],"data_offsets":[0,1]}}')?.dims).toEqual(Float64Array.of(2 ** 53 - 1));
  for (const declined of [
    '{"a":{"dtype":"F32","shape":[9007199254740992],"data_offsets":[0,4]}}',
    '{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}',
    '{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}',
    '{"a":{"dtype":"F32","shape":[-0],"data_offsets":[0,4]}}',
    '{"\\u0061":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    '{"a\tb":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
    '{"a":{"dtype":"F32","dtype":"F32","shape":[1]}}',
    '{"a":{"dtype":"F32","shape":[1]}}',
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}',
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}',
    '{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}',
    '{"a":["F32",[1],[0,4]]}',
    '{"__metadata__":{"n":1}}',
    '{"__metadata__":{"k":"a","k":"b"}}',
    '{"__metadata__":[]}',
    '{"__metadata__":null,"__metadata__":null}',
    '{} x',
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},}',
    '\ufeff{}',
  ]) {
    expect({ declined, table: ok(declined) }).toEqual({ declined, table: null });
  }
});

// ---- indexes ---------------------------------------------------------------------------------

/** readWeightMap's table from the strict JSON reader: names in key order, files in first appearance, or null where it refuses. */
function weightMapReference(text: string): { names: string[]; files: string[]; shardOf: string[] } | null {
  let doc: unknown;
  try {
    doc = parseJsonStrict(text, { what: 'index' });
  } catch {
    return null;
  }
  const wm = typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Record<string, unknown>).weight_map : undefined;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) return null;
  const names = Object.keys(wm);
  const values = Object.values(wm);
  if (names.length === 0 || values.some((v) => typeof v !== 'string')) return null;
  return { names, files: [...new Set(values as string[])], shardOf: values as string[] };
}

// Mostly what indexes hold (sizes, plain strings, small objects), sometimes any JSON (floats, negatives, escapes).
const otherValueArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.dictionary(fc.stringMatching(/^[a-z_]{1,8}$/), fc.oneof(fc.nat(), fc.stringMatching(/^[a-z .]{0,8}$/), fc.boolean(), fc.constant(null)), {
      maxKeys: 3,
    }),
  },
  fc.jsonValue({ maxDepth: 3 }),
);
const indexTextArb = fc
  .tuple(
    fc.array(
      fc.tuple(
        fc.oneof({ weight: 3, arbitrary: fc.stringMatching(/^[a-z0-9._]{1,24}$/) }, nameArb),
        fc.constantFrom('a.safetensors', 'b.safetensors', 'c d.safetensors'),
      ),
      {
        minLength: 1,
        maxLength: 8,
      },
    ),
    fc.dictionary(fc.constantFrom('metadata', 'x', 'weight_map_', 'total'), otherValueArb, { maxKeys: 2 }),
    fc.array(spaceArb, { minLength: 1, maxLength: 8 }),
    fc.nat(),
  )
  .map(([entries, others, spaces, at]) => {
    let k = 0;
    const sp = () => spaces[k++ % spaces.length];
    const wm = `{${entries.map(([n, f]) => `${sp()}${JSON.stringify(n)}${sp()}:${sp()}${JSON.stringify(f)}`).join(',')}${sp()}}`;
    const members = Object.entries(others).map(([key, v]) => `${sp()}${JSON.stringify(key)}:${sp()}${JSON.stringify(v, null, k % 2 === 0 ? 1 : undefined)}`);
    members.splice(at % (members.length + 1), 0, `${sp()}"weight_map"${sp()}:${wm}`);
    return `${sp()}{${members.join(',')}}${sp()}`;
  });

test('random index texts and their near misses give the weight_map the JavaScript reader gives, or nothing', () => {
  let vouched = 0;
  let cases = 0;
  fc.assert(
    fc.property(indexTextArb, editsArb, (text, edits) => {
      // The file's bytes are the input (an edit can leave half a surrogate pair, which UTF-8 cannot hold).
      const bytes = Buffer.from(edit(text, edits), 'utf8');
      const columns = tables.readWeightMapTable(bytes);
      const reference = weightMapReference(bytes.toString('utf8'));
      cases++;
      if (columns === null) return;
      vouched++;
      expect(reference).not.toBeNull();
      expect({ names: columns.names, files: columns.files, shardOf: [...columns.shards].map((s) => columns.files[s]) }).toEqual(reference);
    }),
    params,
  );
  expect(vouched).toBeGreaterThan(cases / 10);
});

test('the index reader declines what it leaves to the JavaScript reader', () => {
  const read = (s: string) => tables.readWeightMapTable(Buffer.from(s));
  expect(read('{"metadata":{"total_size":12},"weight_map":{"b":"2.st","a":"1.st","c":"2.st"}}')).toEqual({
    names: ['b', 'a', 'c'],
    shards: Uint32Array.of(0, 1, 0),
    files: ['2.st', '1.st'],
    namesText: 'b\na\nc\n',
  });
  for (const declined of [
    '{"weight_map":{"7":"1.st","a":"1.st"}}',
    '{"weight_map":{}}',
    '{"weight_map":{"a":"1.st","a":"2.st"}}',
    '{"weight_map":{"a":1}}',
    '{"weight_map":{"a":"1.st"},"weight_map":{"a":"1.st"}}',
    '{"metadata":{"total_size":1.5},"weight_map":{"a":"1.st"}}',
    '{"metadata":{"k":1,"k":2},"weight_map":{"a":"1.st"}}',
    `{"deep":${'['.repeat(40)}${']'.repeat(40)},"weight_map":{"a":"1.st"}}`,
    '{"metadata":{}}',
    '[]',
  ]) {
    expect({ declined, table: read(declined) }).toEqual({ declined, table: null });
  }
});

test('a sharded model opens to the same checkpoint, or fails with the same error, with the readers and without', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weightmix-json-tables-'));
  try {
    await makeCheckpointPair({ dir, shape: 'qwen3-30b-a3b', scale: 64, shards: [3, 3], seed: 5 });
    const model = path.join(dir, 'thinking');
    const indexPath = path.join(model, 'model.safetensors.index.json');
    const index = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    const open = async (on: boolean) => {
      useNativeJsonTables(on ? tables : undefined);
      try {
        return await openCheckpoint(model).then(
          (value) => ({ value }),
          (e: Error & { code?: string }) => ({ error: { code: e.code, message: e.message } }),
        );
      } finally {
        useNativeJsonTables(tables);
      }
    };
    const [fast, slow] = [await open(true), await open(false)];
    expect('value' in fast && fast.value.tensors.size).toBeGreaterThan(1000);
    expect(fast).toEqual(slow);
    // Indexes that disagree with the shards: the readers' one-pass check must find it and leave the exact error to the per-tensor checks.
    const names = Object.keys(index.weight_map);
    const files = [...new Set(Object.values(index.weight_map))];
    const edits: [string, (wm: Record<string, string>) => void][] = [
      ['a tensor listed in another shard', (wm) => (wm[names[700]] = files.find((f) => f !== wm[names[700]])!)],
      ['a tensor not listed', (wm) => delete wm[names[5]]],
      ['a name listed that is not stored', (wm) => (wm['model.layers.0.extra.weight'] = files[0])],
      ['two tensors swapped between shards', (wm) => ([wm[names[1]], wm[names[names.length - 1]]] = [wm[names[names.length - 1]], wm[names[1]]])],
    ];
    for (const [what, change] of edits) {
      const wm = { ...index.weight_map };
      change(wm);
      fs.writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: wm }, null, 2));
      const [f, s] = [await open(true), await open(false)];
      expect({ what, ...f }).toEqual({ what, ...s });
      expect({ what, code: 'error' in s ? s.error.code : undefined }).toEqual({ what, code: 'IndexMismatch' });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test('the addon takes a names text as one string or as the list that joined makes it, with the same answers', () => {
  const addon = loadNative() as unknown as NativeJsonTablesAddon;
  expect(addon.jsonTextLists).toBe(true);
  const lists = jsonTablesOfAddon(addon);
  const joined = jsonTablesOfAddon({ ...addon, jsonTextLists: false });
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 40 }), (shardOf, edit) => {
      // Tensors t0..tn in three shards, stored shard by shard; the index lists them, one of them perhaps under another shard.
      const names = shardOf.map((_, i) => `model.layers.${i}.weight`);
      const files = ['a.safetensors', 'b.safetensors', 'c.safetensors'];
      const listedShard = shardOf.map((f, i) => (i === edit ? (f + 1) % 3 : f));
      const index = Buffer.from(JSON.stringify({ weight_map: Object.fromEntries(names.map((n, i) => [n, files[listedShard[i]]])) }));
      const stored = [0, 1, 2].flatMap((f) => names.filter((_, i) => shardOf[i] === f));
      const fileIndex = Uint32Array.from([0, 1, 2].flatMap((f) => shardOf.filter((s) => s === f)));
      const fileNamesTexts = [0, 1, 2].map((f) =>
        names
          .filter((_, i) => shardOf[i] === f)
          .map((n) => `${n}\n`)
          .join(''),
      );
      const columns = [lists, joined].map((t) => t.readWeightMapTable(index)!);
      const agrees = [lists, joined].map((t, k) => t.weightMapAgrees(columns[k], { names: stored, fileNamesTexts, fileIndex, shardNames: files }));
      expect(agrees[0]).toBe(agrees[1]);
      expect(agrees[0]).toBe(edit >= names.length);
      const shardNames = [0, 1, 2].map((f) => names.filter((_, i) => shardOf[i] === f));
      const tails = files.map((f) => `: "${f}"`);
      const encoded = [lists, joined].map((t) => t.encodeIndex!(shardNames, tails, '{\n  "weight_map": ', '\n}\n'));
      expect(encoded[0]).not.toBeNull();
      expect(encoded[0]!.equals(encoded[1]!)).toBe(true);
    }),
    params,
  );
});
