/**
 * The output header encoders and the index check over columns (lib/format/safetensors.ts, header-encoding.ts,
 * native/header_encoder.*, native/json_tables.*): on random headers and indexes, near misses included, the addon
 * writes, refuses and decides as the JavaScript encoder, JSON.stringify and a check by name do. WEIGHTMIX_SEED=<seed>
 * replays them.
 */
import { preloadNative } from '../lib/engine/native';
import { namesTextIs, nativeJsonTables, useNativeJsonTables } from '../lib/format/json-tables';
import { DTYPE_NAMES, SafetensorsDtype } from '../lib/format/dtypes';
import { encodeHeaderColumns, encodeSafetensorsHeader, parseSafetensorsHeader } from '../lib/format/safetensors';
import { shapeColumns } from '../lib/format/header-encoding';
import { rng } from './helpers/models';
import { RandomTensor, randomTensors } from './helpers/random-tensors';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log('header encoder columns: seed', seed, '(replay: WEIGHTMIX_SEED=' + seed + ')');

beforeAll(() => preloadNative());

test('the header encoder writes what JSON.stringify writes for the object form, on random headers', () => {
  const next = rng(seed + 3);
  for (let round = 0; round < 300; round++) {
    const tensors = randomTensors(next, true);
    const metadata = next() < 0.5 ? null : { format: 'pt', 'k"\\\n': 'v\u{1f600}\t', é: '' };
    const encoded = encodeSafetensorsHeader(tensors, metadata);
    // The reference: JSON.stringify of each member, `__metadata__` first (keys sorted), tensors in the order given (joined
    // by hand: an object would enumerate integer-like names such as "17" first).
    const members = tensors.map((t, i) => `${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: encoded.offsets[i] })}`);
    if (metadata)
      members.unshift(
        `"__metadata__":${JSON.stringify(
          Object.fromEntries(
            Object.keys(metadata)
              .sort()
              .map((k) => [k, metadata[k as keyof typeof metadata]]),
          ),
        )}`,
      );
    const json = Buffer.from(`{${members.join(',')}}`);
    const length = Number(encoded.bytes.readBigUInt64LE(0));
    expect(length % 8).toBe(0);
    expect(encoded.bytes.subarray(8, 8 + json.length)).toEqual(json);
    expect(encoded.bytes.subarray(8 + json.length).every((x) => x === 0x20)).toBe(true);
    expect(encoded.bytes.length).toBe(8 + Math.ceil(json.length / 8) * 8);
    // And it parses back into the same tensors.
    const parsed = parseSafetensorsHeader(encoded.bytes.subarray(8), { file: 'mem', headerLength: length, fileSize: encoded.totalSize });
    expect(parsed.tensors.map((t) => t.name).sort()).toEqual(tensors.map((t) => t.name).sort());
  }
});

test("the addon's index check (weightMapAgrees) decides as a check by name does, on random indexes and tables", () => {
  const next = rng(seed + 4);
  const int = (n: number) => Math.floor(next() * n);
  const tables = nativeJsonTables()!;
  let agreed = 0;
  for (let round = 0; round < 500; round++) {
    const names = [...new Set(Array.from({ length: int(12) }, () => `model.layers.${int(20)}.w`))];
    const files = ['a.safetensors', 'b.safetensors', 'c.safetensors'];
    const listed = names.map((name) => [name, files[int(3)]] as [string, string]);
    // The stored tensors: the listed ones in another order, then at random one dropped, added, doubled or moved to another shard.
    const stored = [...listed].sort(() => next() - 0.5);
    const edit = int(6);
    if (edit === 0 && stored.length > 0) stored.splice(int(stored.length), 1);
    if (edit === 1) stored.push([`extra.${int(3)}`, files[int(3)]]);
    if (edit === 2 && stored.length > 1) stored[int(stored.length)] = [...stored[0]];
    if (edit === 3 && stored.length > 0) stored[0] = [stored[0][0], files[(files.indexOf(stored[0][1]) + 1) % 3]];
    const json = Buffer.from(JSON.stringify({ weight_map: Object.fromEntries(listed) }));
    const shardNames = [...new Set(stored.map((s) => s[1]))];
    const fileOf = Uint32Array.from(stored, (s) => shardNames.indexOf(s[1]));
    // The reference: each listed name stored exactly once, in its shard, and nothing else stored.
    const count = new Map<string, number>();
    for (const [name] of stored) count.set(name, (count.get(name) ?? 0) + 1);
    const expected =
      names.length > 0 &&
      stored.length === listed.length &&
      listed.every(([name, file]) => count.get(name) === 1 && stored.find((s) => s[0] === name)![1] === file);
    const columns = tables.readWeightMapTable(json);
    if (columns === null) continue;
    const storedNames = stored.map((s) => s[0]);
    expect(tables.weightMapAgrees(columns, { names: storedNames, fileIndex: fileOf, shardNames })).toBe(expected);
    // The same with the names as texts, as a checkpoint's table gives them file by file (here cut at a random name).
    const cut = Math.floor(next() * (storedNames.length + 1));
    const fileNamesTexts = [storedNames.slice(0, cut), storedNames.slice(cut)].map((part) => part.map((n) => `${n}\n`).join(''));
    expect(tables.weightMapAgrees(columns, { names: storedNames, fileNamesTexts, fileIndex: fileOf, shardNames })).toBe(expected);
    if (expected) agreed++;
  }
  // Both answers came up (the edits are not all no-ops, nor all changes).
  expect(agreed).toBeGreaterThan(50);
  expect(agreed).toBeLessThan(450);
});

test("the addon's header encoder writes or refuses every header as the JavaScript encoder does, near misses included", () => {
  const next = rng(seed + 5);
  const int = (n: number) => Math.floor(next() * n);
  const tables = nativeJsonTables()!;
  const outcome = (tensors: RandomTensor[], metadata: Record<string, string> | null) => {
    try {
      const { bytes, offsets, totalSize } = encodeSafetensorsHeader(tensors, metadata);
      return { bytes: bytes.toString('latin1'), offsets, totalSize };
    } catch (e) {
      return { error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
    }
  };
  const columnsOutcome = (tensors: RandomTensor[], metadata: Record<string, string> | null, asCodes: boolean) => {
    try {
      const dtypes = asCodes ? Uint8Array.from(tensors, (x) => DTYPE_NAMES.indexOf(x.dtype)) : tensors.map((x) => x.dtype);
      const shapes = shapeColumns(tensors.map((x) => x.shape));
      const { bytes, starts, dataBytes } = encodeHeaderColumns(
        'encodeSafetensorsHeader',
        tensors.map((x) => x.name),
        dtypes,
        shapes,
        metadata,
      );
      return { bytes: bytes.toString('latin1'), starts: Array.from(starts), dataBytes };
    } catch (e) {
      return { error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
    }
  };
  let refused = 0;
  for (let round = 0; round < 400; round++) {
    const tensors: RandomTensor[] = randomTensors(next, next() < 0.3);
    // Near misses: a name given twice or reserved, a bad or huge dimension, a partial byte, an unknown dtype, a '\n' in a name.
    const t = tensors[int(tensors.length)];
    const edit = int(10);
    if (edit === 0) tensors.push({ ...tensors[0] });
    if (edit === 1) t.name = '__metadata__';
    if (edit === 2) t.shape = [...t.shape, [-1, 1.5, NaN, -0, 2 ** 53][int(5)]];
    if (edit === 3) t.shape = [2 ** 40, 2 ** 20];
    if (edit === 4) [t.dtype, t.shape] = ['F4', [3]];
    if (edit === 5) t.dtype = 'X' as SafetensorsDtype;
    if (edit === 6) t.name = `a\nb${t.name}`;
    const metadata = next() < 0.5 ? null : { format: 'pt' };
    const withAddon = outcome(tensors, metadata);
    // The planner's call with dtypes as codes (every dtype known) writes or refuses as the call with their names, with the addon and without.
    const known = tensors.every((x) => DTYPE_NAMES.includes(x.dtype));
    if (known) expect(columnsOutcome(tensors, metadata, true)).toEqual(columnsOutcome(tensors, metadata, false));
    useNativeJsonTables(undefined);
    try {
      expect(withAddon).toEqual(outcome(tensors, metadata));
      if (known) expect(columnsOutcome(tensors, metadata, true)).toEqual(columnsOutcome(tensors, metadata, false));
    } finally {
      useNativeJsonTables(tables);
    }
    if ('error' in withAddon) refused++;
  }
  expect(refused).toBeGreaterThan(50);
  expect(refused).toBeLessThan(350);
});

test("the addon's header encoder leaves names it cannot write as they are (escapes, surrogates, U+FFFD) to the JavaScript encoder, with the same outcome", () => {
  const tables = nativeJsonTables()!;
  const next = rng(seed + 6);
  const pieces = ['model.w', 'é', '\u{1f600}', '\ud800', '\udfff', 'a\ud83d', '\ufffd', '"', '\\', '\u0001', '\u001f', '\u007f', '\u2028', 'ok'];
  // recorded: the names as a header reader's (namesTextIs), which the addon then takes as each given once and scans as one text.
  const outcome = (names: string[], recorded = false) => {
    const list = [...names];
    if (recorded) namesTextIs(list, list.map((n) => `${n}\n`).join(''));
    try {
      const { bytes, starts, dataBytes } = encodeHeaderColumns(
        'encodeSafetensorsHeader',
        list,
        Uint8Array.from(names, () => DTYPE_NAMES.indexOf('BF16')),
        shapeColumns(names.map(() => [2])),
        { format: 'pt' },
      );
      return { bytes: bytes.toString('latin1'), starts: Array.from(starts), dataBytes };
    } catch (e) {
      return { error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
    }
  };
  for (let round = 0; round < 300; round++) {
    const names = [...new Set(Array.from({ length: 1 + Math.floor(next() * 4) }, (_, i) => `t${i}.${pieces[Math.floor(next() * pieces.length)]}`))];
    const withAddon = outcome(names);
    const recorded = outcome(names, true);
    useNativeJsonTables(undefined);
    try {
      expect({ names, outcome: withAddon }).toEqual({ names, outcome: outcome(names) });
      expect({ names, outcome: recorded }).toEqual({ names, outcome: outcome(names) });
    } finally {
      useNativeJsonTables(tables);
    }
  }
});
