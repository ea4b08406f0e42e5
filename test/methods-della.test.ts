/**
 * della and della_linear: the engine's `della` op and `della_l1` statistic on raw files of random
 * values with special ones (NaN, ±Inf, ±0, subnormals, the largest finite, ties among equal |δ|),
 * bit for bit against the f64 oracle of test/reference/della.ts rounded once, on rows of a matrix,
 * of a 3-D tensor (mergekit's dim 1, strided), of a 1-D tensor longer than a block and of one element;
 * MAGPRUNE's statistics; then whole recipes over fixtures within one ulp.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runPlan } from '../lib/engine/native';
import type { NativeDtype, NativeJob } from '../lib/engine/native-plan';
import { DellaRecipe, dellaRows, dellaStatParams, encodeDellaParams } from '../lib/engine/della-params';
import { openCheckpoint } from '../lib/model/checkpoint';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { l1Scale, maskKey } from '../lib/recipes/sparsify';
import { modelValues, worstUlp } from './helpers/model-values';
import type { Dtype } from './reference/numerics';
import { dellaKeptRef, dellaMaskRef, dellaMergeRef } from './reference/della';
import { maskUniformRef } from './reference/merge-methods';
import { randomTensors } from './helpers/special-values';
import { expectedBits, writeRaw } from './helpers/raw-values';
import { runRawJob } from './helpers/raw-job';
import { makeNearModels } from './helpers/tiny-models';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-della-');

const NAME = 'model.layers.0.mlp.up_proj.weight';
const SEED = 42;

/** One della job over raw files, a dest per output dtype; small blocks cut it into many pieces. */
async function runDella(files: string[], dtypes: Dtype[], n: number, params: number[], threads: number): Promise<Map<Dtype, number[]>> {
  return (await runRawJob(dir, { files, dtypes, n, op: 'della', params, threads })).bits;
}

/** The della_l1 sums (before, after) of each model of `r`, sources [base, model k]. */
async function runL1(files: string[], dtypes: Dtype[], n: number, r: DellaRecipe, threads: number): Promise<number[][]> {
  const jobs: NativeJob[] = r.models.map((m) => ({
    count: n,
    sources: [0, m.model].map((input) => ({ input, offset: 0, dtype: dtypes[input] as NativeDtype })),
    dests: [],
    stat: 'della_l1',
    statParams: dellaStatParams(r.rows, m),
  }));
  const { stats } = await runPlan({ inputs: files, outputs: [], jobs, threads, blockBytes: 4096, direct: false });
  return r.models.map((_, k) => [stats[2 * k], stats[2 * k + 1]]);
}

const SHAPES: [string, number[]][] = [
  ['a matrix (rows of its last dimension)', [9, 67]],
  ['a 3-D tensor (rows along dim 1, stride 4)', [3, 5, 4]],
  ['a 1-D tensor longer than a block (one row)', [5003]],
  ['rows of one element', [6, 1]],
];

describe.each([
  ['F32', 'F32'],
  ['BF16', 'F32'],
  ['F16', 'BF16'],
] as [Dtype, Dtype][])('sources %s and %s', (tBase, tModel) => {
  test.each(SHAPES)('della and della_linear on %s: the f64 oracle rounded once, bit for bit, on 1 and 3 threads; L1 sums exact', async (_what, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const raw = randomTensors(n, 2, n + 11, [1e-3, 1e-2, 0.5]);
    const base = writeRaw(dir, raw.base, tBase);
    const models = raw.models.map((m) => writeRaw(dir, m, tModel));
    const files = [base.file, ...models.map((m) => m.file)];
    const dtypes = [tBase, tModel, tModel];
    const density = [0.5, 0.3];
    const epsilon = [0.2, 0.25];
    const weight = [0.7, -0.4];
    for (const [consensus, normalize, lambda] of [
      [true, true, 0.9],
      [false, false, 1],
    ] as [boolean, boolean, number][]) {
      const r: DellaRecipe = {
        base: 0,
        consensus,
        normalize,
        lambda,
        rows: dellaRows(shape),
        models: [1, 2].map((m, k) => ({ model: m, weight: weight[k], density: density[k], epsilon: epsilon[k], seedKey: maskKey(SEED, NAME, m), scale: 1 })),
      };
      // The rescale statistic: the oracle's sums of the oracle's masks (finite |δ| only; the engine's are exact, the oracle's f64 sums round).
      const sums = await runL1(files, dtypes, n, r, 3);
      r.models.forEach((m, k) => {
        const d32 = models[k].held.map((x, i) => Math.fround(x - base.held[i]));
        const ref = dellaKeptRef(d32, dellaMaskRef(d32, shape, m.density, m.epsilon, maskUniformRef(SEED, NAME, m.model)));
        expect(sums[k][0]).toBeCloseTo(ref.before, 10);
        expect(sums[k][1]).toBeCloseTo(ref.after, 10);
        expect(Math.abs(sums[k][0] - ref.before)).toBeLessThanOrEqual(1e-12 * ref.before);
        expect(Math.abs(sums[k][1] - ref.after)).toBeLessThanOrEqual(1e-12 * ref.after);
        m.scale = Math.fround(l1Scale(sums[k][0], sums[k][1]));
      });
      expect(r.models.some((m) => m.scale !== 1)).toBe(true);
      const ref = dellaMergeRef(
        base.held,
        r.models.map((m, k) => ({ values: models[k].held, weight: m.weight, density: m.density, epsilon: m.epsilon, index: m.model })),
        shape,
        { seed: SEED, tensorName: NAME, consensus, normalize, lambda, scales: r.models.map((m) => m.scale) },
      );
      const params = encodeDellaParams(r, (m) => m);
      const one = await runDella(files, dtypes, n, params, 1);
      const three = await runDella(files, dtypes, n, params, 3);
      for (const [to, bits] of three) {
        expect(bits).toEqual(expectedBits(ref, to));
        expect(one.get(to)).toEqual(bits);
      }
    }
  });
});

describe('MAGPRUNE statistics on one long row (della_linear, base 0, weight 1: the output is the kept values)', () => {
  const L = 20000;
  // Distinct magnitudes in a shuffled order, so that rank and index are unrelated.
  const values = Array.from({ length: L }, (_, i) => Math.fround((1 + ((i * 7919) % L)) / L));
  let files: string[];

  beforeAll(() => {
    files = [writeRaw(dir, new Array<number>(L).fill(0), 'F32').file, writeRaw(dir, values, 'F32').file];
  });

  async function kept(density: number, epsilon: number, seed: number, threads: number): Promise<boolean[]> {
    const r: DellaRecipe = {
      base: 0,
      consensus: false,
      normalize: false,
      lambda: 1,
      rows: { length: L, stride: 1 },
      models: [{ model: 1, weight: 1, density, epsilon, seedKey: maskKey(seed, NAME, 1), scale: 1 }],
    };
    const out = await runDella(
      files,
      ['F32', 'F32'],
      L,
      encodeDellaParams(r, (m) => m),
      threads,
    );
    return out.get('F32')!.map((bits) => bits !== 0);
  }

  test('the kept fraction is density, and grows with the rank from density − ε to density + ε', async () => {
    const keep = await kept(0.4, 0.3, 1, 2);
    const rankOf = (i: number) => ((i * 7919) % L) / (L - 1); // the value's rank, normalized
    const fraction = (lo: number, hi: number) => {
      const idx = values.map((_, i) => i).filter((i) => rankOf(i) >= lo && rankOf(i) < hi);
      return idx.filter((i) => keep[i]).length / idx.length;
    };
    expect(Math.abs(keep.filter(Boolean).length / L - 0.4)).toBeLessThan(0.015);
    // Mean p over a quarter of the ranks: 0.1 + 0.6·(quarter midpoint).
    [0, 1, 2, 3].forEach((q) => expect(Math.abs(fraction(q / 4, (q + 1) / 4) - (0.1 + (0.6 * (q + 0.5)) / 4))).toBeLessThan(0.03));
  });

  test('the mask follows random_seed and not the thread count', async () => {
    const a = await kept(0.5, 0.1, 3, 1);
    expect(await kept(0.5, 0.1, 3, 4)).toEqual(a);
    const b = await kept(0.5, 0.1, 4, 1);
    expect(b.filter((x, i) => x !== a[i]).length).toBeGreaterThan(L / 4);
  });

  test('density 1 keeps every element and density 0 none (mergekit returns before drawing)', async () => {
    expect((await kept(1, 0.15, 1, 2)).every(Boolean)).toBe(true);
    expect((await kept(0, 0.15, 1, 2)).some(Boolean)).toBe(false);
  });
});

test('the executor refuses bad della parameters with one line', async () => {
  const { file } = writeRaw(dir, [1, 2, 3, 4, 5, 6], 'F32');
  const run = (params: number[]) =>
    runPlan({
      inputs: [file],
      outputs: [{ path: freshPath('bad', '.bin'), size: 24, head: Buffer.alloc(0) }],
      jobs: [{ count: 6, sources: [{ input: 0, offset: 0, dtype: 'F32' }], dests: [{ output: 0, offset: 0, dtype: 'F32', op: 'della', w: [], params }] }],
      threads: 1,
      blockBytes: 4096,
      direct: false,
    });
  const ok = [1, 1, 1, 0, 3, 1, 1, 0, 1, 0.5, 0.1, 0, 1, 1];
  await expect(run(ok.map((x, i) => (i === 4 ? 4 : x)))).rejects.toThrow(/^plan: parameters of job 0: della rows \(4 x stride 1\) do not tile 6 elements$/);
  await expect(run(ok.map((x, i) => (i === 7 ? 1 : x)))).rejects.toThrow(/^plan: parameters of job 0: a source index is out of range$/);
  await expect(run(ok.slice(0, 10))).rejects.toThrow(/della parameter count does not match the model count/);
  await expect(run(ok.map((x, i) => (i === 9 ? NaN : x)))).rejects.toThrow(/is not a finite number/);
});

describe('recipes over fixtures', () => {
  let A: string;
  let B: string;
  let N: string;
  // A model with additive noise (weights that change sign: |d| that bf16 cannot hold, della_rank.h's mixed rows).
  let C: string;

  beforeAll(async () => {
    ({ A, B, N } = await makeNearModels(dir, 9));
    C = (await makeCheckpointPair({ dir: path.join(dir, 'additive'), shape: 'tiny', seed: 9, delta: 0.2, noise: 'additive' })).thinking;
  }, 60000);

  async function merged(doc: Record<string, unknown>, threads: number): Promise<string> {
    const out = freshPath('merged');
    await merge(parseRecipe(doc), { output: out, threads });
    return out;
  }

  test.each([
    ['della', true, true, 'bfloat16', false],
    ['della_linear', false, false, 'float32', false],
    ['della', true, true, 'bfloat16', true],
    ['della_linear', false, false, 'float32', true],
  ] as [string, boolean, boolean, string, boolean][])(
    '%s (consensus %s, normalize %s, %s out, additive noise %s; density 0.5/0.4, epsilon 0.1, random_seed 7) is within 1 ulp of the oracle, the same bytes on 1 and 3 threads',
    async (method, consensus, normalize, outDtype, additive) => {
      const second = additive ? C : B;
      const doc = {
        merge_method: method,
        base_model: N,
        random_seed: 7,
        out_dtype: outDtype,
        parameters: { epsilon: 0.1 },
        models: [{ model: A, parameters: { weight: 0.6, density: 0.5 } }, { model: second, parameters: { weight: 0.4, density: 0.4 } }, { model: N }],
      };
      const [a, b, n] = await Promise.all([modelValues(A), modelValues(second), modelValues(N)]);
      const ckpt = await openCheckpoint(N);
      const oracle = (name: string) => {
        const shape = ckpt.tensors.get(name)!.shape;
        const bv = n.get(name)!;
        const ms = [
          { values: a.get(name)!, weight: 0.6, density: 0.5, epsilon: 0.1, index: 0 },
          { values: b.get(name)!, weight: 0.4, density: 0.4, epsilon: 0.1, index: 1 },
        ];
        const scales = ms.map((m) => {
          const d32 = m.values.map((x, i) => Math.fround(x - bv[i]));
          const { before, after } = dellaKeptRef(d32, dellaMaskRef(d32, shape, m.density, m.epsilon, maskUniformRef(7, name, m.index)));
          return Math.fround(l1Scale(before, after));
        });
        return dellaMergeRef(bv, ms, shape, { seed: 7, tensorName: name, consensus, normalize, lambda: 1, scales });
      };
      const one = await merged(doc, 1);
      expect(await worstUlp(await openCheckpoint(one), oracle)).toBeLessThanOrEqual(1);
      const three = await merged(doc, 3);
      for (const f of fs.readdirSync(one).filter((x) => x.endsWith('.safetensors'))) {
        expect(fs.readFileSync(path.join(three, f)).equals(fs.readFileSync(path.join(one, f)))).toBe(true);
      }
      // The model card says where the masks come from (it once said no method here draws random numbers).
      expect(fs.readFileSync(path.join(one, 'README.md'), 'utf8')).toMatch(/DELLA masks: counter-based \(splitmix64\) generator keyed by random_seed 7,/);
    },
  );

  test('density ± epsilon outside (0, 1) and a missing base are refused in one line', async () => {
    const doc = (epsilon: number) => ({
      merge_method: 'della',
      base_model: N,
      models: [{ model: A, parameters: { weight: 1, density: 0.9, epsilon } }, { model: N }],
    });
    await expect(merged(doc(0.15), 1)).rejects.toThrow(
      /^della: density ± epsilon must lie in \(0, 1\), got density 0\.9 and epsilon 0\.15 for .* \(tensor [^)]+\)$/,
    );
    await expect(merged(doc(0.05), 1)).resolves.toBeDefined();
    expect(() => parseRecipe({ merge_method: 'della_linear', models: [{ model: A, parameters: { weight: 1 } }] })).toThrow(/^della_linear needs a base_model/);
  });
});
