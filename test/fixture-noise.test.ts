import { makeCheckpointPair, type CheckpointPairOptions, type FixtureDtype } from '../lib/fixtures/fixture';
import { ChunkedWriter } from '../lib/fixtures/chunked-writer';
import { bf16Bits, f16Bits, fillElements32Additive, fillPairs16Additive, valueTables } from '../lib/fixtures/fixture-values';
import { nextUint32, streamState } from '../lib/fixtures/random';
import { decodeFloat, encodeFloat } from '../lib/format/float-bits';
import { expectOneLineError, runCli } from './helpers/cli';
import { setUpFixtureRoot, freshDir, loadModel, tensorBytes, decodeAll, isNormGain, relativeDistance } from './helpers/checkpoint-pair';

setUpFixtureRoot();

const make = (options: Partial<CheckpointPairOptions>) => makeCheckpointPair({ dir: freshDir(), shape: 'tiny', ...options });
const bytesOf = async (folder: string) => tensorBytes(folder, await loadModel(folder));

/** Of every element pair (Instruct a, Thinking b) of the weights (not the norm gains): how many changed sign, and how many
 *  have a difference b − a that bf16 cannot hold (its f32 bits' low 16 bits not zero: della's odd keys). */
function departures(a: Map<string, Buffer>, b: Map<string, Buffer>, dtype: FixtureDtype) {
  const f32 = new Float32Array(1);
  const bits = new Uint32Array(f32.buffer);
  let elements = 0;
  let signChanges = 0;
  let oddDifferences = 0;
  for (const [name, bytes] of a) {
    if (isNormGain(name)) continue;
    const x = decodeAll(bytes, dtype);
    const y = decodeAll(b.get(name)!, dtype);
    for (let i = 0; i < x.length; i++) {
      elements++;
      signChanges += Number(x[i] * y[i] < 0);
      f32[0] = y[i] - x[i];
      oddDifferences += Number((bits[0] & 0xffff) !== 0);
    }
  }
  return { elements, signChanges, oddDifferences };
}

describe('fixture noise: ulps (the default) and additive', () => {
  test('additive: the same Instruct as ulps, a Thinking at the asked distance whose small weights change sign', async () => {
    const ulps = await make({ seed: 7, delta: 0.054 });
    const additive = await make({ seed: 7, delta: 0.054, noise: 'additive' });
    const instruct = await bytesOf(ulps.instruct);
    const again = await bytesOf(additive.instruct);
    for (const [name, bytes] of instruct) expect(again.get(name)!.equals(bytes)).toBe(true);
    const thinking = await bytesOf(additive.thinking);
    const distance = relativeDistance(instruct, thinking, 'BF16', (n) => !isNormGain(n));
    expect(distance / 0.054).toBeGreaterThan(0.97);
    expect(distance / 0.054).toBeLessThan(1.03);
    // Gaussian weights with noise of 0.054 of their RMS: about 3 % change sign, and more need more bits than bf16.
    const moved = departures(instruct, thinking, 'BF16');
    expect(moved.signChanges / moved.elements).toBeGreaterThan(0.01);
    expect(moved.signChanges / moved.elements).toBeLessThan(0.06);
    expect(moved.oddDifferences / moved.elements).toBeGreaterThan(moved.signChanges / moved.elements);
    expect(moved.oddDifferences / moved.elements).toBeLessThan(0.2);
    // The ulps noise keeps every sign, and each difference is a bf16 value.
    const kept = departures(instruct, await bytesOf(ulps.thinking), 'BF16');
    expect(kept.signChanges).toBe(0);
    expect(kept.oddDifferences).toBe(0);
  });

  test.each<[FixtureDtype, number]>([
    ['BF16', 0.027],
    ['F16', 0.1],
    ['F32', 0.001],
  ])('additive %s with delta %d: the distance honoured within 3 %%, the data independent of the shard layout', async (dtype, delta) => {
    const odd = { shape: 'qwen3-4b', scale: 101, layers: 2, seed: 9, dtype, delta, noise: 'additive' } as const;
    const one = await make({ ...odd, shards: [1, 1] });
    const other = await make({ ...odd, shards: [4, 3] });
    const a = await bytesOf(one.thinking);
    const b = await bytesOf(other.thinking);
    for (const [name, bytes] of a) expect(b.get(name)!.equals(bytes)).toBe(true);
    const distance = relativeDistance(await bytesOf(one.instruct), a, dtype, (n) => !isNormGain(n));
    expect(distance / delta).toBeGreaterThan(0.97);
    expect(distance / delta).toBeLessThan(1.03);
  });

  test.each<[FixtureDtype, number]>([
    ['BF16', 4097],
    ['F16', 301],
    ['F32', 300],
  ])('the additive hot loop (%s, %d elements) against its definition element by element', (dtype, count) => {
    const tables = valueTables(dtype, 'normal', 0.3, 'additive');
    const state = streamState(3, 'some.tensor');
    const reference = Uint32Array.from(state);
    const instruct = new ChunkedWriter(1 << 16);
    const thinking = new ChunkedWriter(1 << 16);
    if (dtype === 'F32') fillElements32Additive(state, tables, instruct, thinking, count);
    else fillPairs16Additive(state, tables, dtype, instruct, thinking, count);
    // The definition: one random number per element pair (per element in f32), the value and noise it names, the sum
    // rounded to f32, then to the dtype; the second of a pair: the value and noise tables' scrambles.
    const f32 = new Float32Array(1);
    const bits = new Uint32Array(f32.buffer);
    for (let j = 0; j < count; j++) {
      const second = dtype !== 'F32' && j % 2 === 1;
      if (!second) nextUint32(reference);
      const w = reference[3];
      const index = second ? ((w & 16383) * 40503 + 7919) & 16383 : w & 16383;
      const noise = second ? ((w >>> 20) * 2897 + 1231) & 4095 : w >>> 20;
      const value = tables.values[index];
      const sum = Math.fround(decodeFloat(value, dtype) + tables.additive![noise]);
      f32[0] = sum;
      const want = dtype === 'F32' ? bits[0] : encodeFloat(sum, dtype);
      const got = dtype === 'F32' ? thinking.wordView[j] : thinking.halfView[j];
      const gotInstruct = dtype === 'F32' ? instruct.wordView[j] : instruct.halfView[j];
      if (got !== want || gotInstruct !== value) throw new Error(`${dtype} element ${j}: thinking ${got} instruct ${gotInstruct}, want ${want} and ${value}`);
    }
    expect(Array.from(state)).toEqual(Array.from(reference));
  });

  test.each([
    ['BF16', bf16Bits, 16],
    ['F16', f16Bits, 13],
  ] as const)('%s bits of an f32: nearest even, ties, subnormals and overflow included, as encodeFloat does', (dtype, encode, dropped) => {
    const f32 = new Float32Array(1);
    const bits = new Uint32Array(f32.buffer);
    const state = streamState(1, `ties ${dtype}`);
    const droppedMask = (1 << dropped) - 1;
    // NaNs (JavaScript hands them over as the quiet NaN), infinities, the largest finite f32, the least subnormal, zeros.
    const SPECIAL = [0x7f800001, 0xff807fff, 0x7fc00000, 0x7f800000, 0xff800000, 0x7f7fffff, 0x00000001, 0x80000000, 0];
    for (let k = 0; k < 40000; k++) {
      const w = nextUint32(state);
      // Every exponent (Inf and NaN too), both signs; the bits rounded away a tie, one below or above it, or random.
      const high = w & ~droppedMask;
      const tie = 1 << (dropped - 1);
      const low = [tie, tie - 1, tie + 1, nextUint32(state) & droppedMask][k % 4];
      bits[0] = k < SPECIAL.length ? SPECIAL[k] : (high | low) >>> 0;
      const want = encodeFloat(f32[0], dtype);
      const got = encode(f32[0]);
      // NaN: any NaN pattern will do (encodeFloat gives the quiet one).
      if (Number.isNaN(f32[0])) expect(Number.isNaN(decodeFloat(got, dtype))).toBe(true);
      else if (got !== want) throw new Error(`${dtype} of ${bits[0].toString(16)}: ${got.toString(16)}, want ${want.toString(16)}`);
    }
  });

  test('an unknown noise is a usage error naming the accepted ones, from the library and the command line', async () => {
    await expect(make({ noise: 'gaussian' as never })).rejects.toMatchObject({ code: 'Usage', exitCode: 2 });
    await expect(make({ noise: 'gaussian' as never })).rejects.toThrow(/noise "gaussian".*ulps, additive/);
    const result = await runCli(['fixture', '--shape', 'tiny', '-o', freshDir(), '--noise', 'gaussian']);
    expect(expectOneLineError(result, 2)).toMatch(/--noise.*gaussian.*ulps, additive/);
  });
});
