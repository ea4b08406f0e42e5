/**
 * TIES, DARE and breadcrumbs: radix selection against a sort, DARE masks against thread counts,
 * block sizes and seeds, and every method end to end against the f64 oracles in
 * test/reference/merge-methods.ts (within one ulp of the output dtype).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, openCheckpoint } from '../lib/model/checkpoint';
import { merge } from '../lib/recipes/merge-recipe';
import { NativeDtype, runPlan } from '../lib/engine/native';
import { parseRecipe, Recipe } from '../lib/recipes/recipe';
import { encodeSparseParams } from '../lib/engine/sparse-params';
import { candidateRange, indexBits, KEY_NONE, rankKey, resolveSparse, SparseMergeSpec, SparseModelSpec, SparseTensor } from '../lib/recipes/sparsify';
import { readTensorValues } from '../lib/format/tensor-data';
import { dareMaskRef, l1ScaleRef, magnitudeCountsRef, magnitudeMaskRef, SparseRefModel, sparseMergeRef, ulpDistance } from './reference/merge-methods';
import { rng } from './helpers/models';
import { sparseModel as model } from './helpers/sparse-model';
import { makeNearModels } from './helpers/tiny-models';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-sparsify-');

// ---- the engine on raw f32 files ----------------------------------------------------------------

function writeF32(values: number[]): string {
  const file = freshPath('raw', '.f32');
  fs.writeFileSync(file, Buffer.from(new Float32Array(values).buffer));
  return file;
}

interface Engine {
  threads: number;
  blockBytes: number;
}

/** One tensor: the base and models as raw f32 files; returns the merged f32 output and the resolved thresholds. */
async function runRaw(base: number[], models: number[][], spec: Omit<SparseMergeSpec, 'base'>, engine: Engine, name = 'model.layers.0.mlp.up_proj.weight') {
  const files = [writeF32(base), ...models.map(writeF32)];
  const fullSpec: SparseMergeSpec = { ...spec, base: 0 };
  const tensor: SparseTensor = { name, count: base.length, spec: fullSpec, source: (m) => ({ file: files[m], offset: 0, dtype: 'F32' as NativeDtype }) };
  const resolved = (
    await resolveSparse([tensor], (p) => runPlan({ ...p, outputs: [], threads: engine.threads, blockBytes: engine.blockBytes, direct: false }))
  ).get(name)!;
  const outFile = freshPath('out', '.f32');
  await runPlan({
    inputs: files,
    outputs: [{ path: outFile, size: base.length * 4, head: Buffer.alloc(0) }],
    jobs: [
      {
        count: base.length,
        sources: files.map((_, k) => ({ input: k, offset: 0, dtype: 'F32' as NativeDtype })),
        dests: [{ output: 0, offset: 0, dtype: 'F32', op: 'sparse', w: [], params: encodeSparseParams(resolved, (m) => m) }],
      },
    ],
    threads: engine.threads,
    blockBytes: engine.blockBytes,
    direct: false,
  });
  const buf = fs.readFileSync(outFile);
  return { out: Array.from(new Float32Array(buf.buffer, buf.byteOffset, base.length)), resolved };
}

const f32 = (x: number) => Math.fround(x);
/** Keeps exactly the selected elements of the single model: out = base + 1·δ where kept, base elsewhere. */
const selectOnly = (over: Partial<SparseModelSpec>) => ({ models: [model(1, over)], consensus: null, normalize: false, lambda: 1, seed: 0 });

describe('radix selection', () => {
  const inputs: Record<string, (n: number, r: () => number) => number[]> = {
    'random normals': (n, r) => Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r())),
    'all equal': (n) => new Array(n).fill(0.25),
    'all zero': (n) => new Array(n).fill(0),
    'subnormals and zeros': (n, r) => Array.from({ length: n }, () => (r() < 0.3 ? 0 : (r() < 0.5 ? -1 : 1) * Math.floor(r() * 8) * 2 ** -149)),
    'few distinct values, both signs': (n, r) => Array.from({ length: n }, () => [-2, -1, 0, 1, 2][Math.floor(r() * 5)] * 0.125),
  };
  for (const [label, make] of Object.entries(inputs)) {
    test(`${label}: the kept set equals a sort by (|δ| desc, index asc), for several densities`, async () => {
      const n = 3001;
      const r = rng(label.length);
      const delta = make(n, r).map(f32);
      const base = new Array(n).fill(0);
      for (const density of [0, 0.001, 0.2, 0.5, 0.999, 1]) {
        const { out, resolved } = await runRaw(base, [delta], selectOnly({ density }), { threads: 3, blockBytes: 4096 });
        const { keep } = magnitudeCountsRef(n, density, 0);
        const mask = magnitudeMaskRef(delta, 0, keep);
        const kept = delta.map((_, i) => rankKey(delta[i], i, n) >= resolved.models[0].lowKey);
        expect(kept).toEqual(mask);
        expect(kept.filter(Boolean).length).toBe(keep);
        expect(out).toEqual(delta.map((d, i) => 0 + (mask[i] ? d : 0)));
      }
    });
  }

  test('breadcrumbs: drops the largest floor(gamma·n) and keeps the next floor(density·n), ties by index', async () => {
    const n = 5000;
    const r = rng(5);
    const delta = Array.from({ length: n }, () => f32(Math.round((r() - 0.5) * 64) / 16));
    for (const [density, gamma] of [
      [0.2, 0.01],
      [0.5, 0.3],
      [0.9, 0.5], // gamma shrinks to fit: mergekit's n_bot < 0 case
      [0.1, 0],
    ]) {
      const { out } = await runRaw(new Array(n).fill(0), [delta], selectOnly({ density, gamma }), { threads: 2, blockBytes: 8192 });
      const { top, keep } = magnitudeCountsRef(n, density, gamma);
      const mask = magnitudeMaskRef(delta, top, keep);
      expect(out).toEqual(delta.map((d, i) => 0 + (mask[i] ? d : 0)));
    }
  });

  test('candidateRange: exactly the indices whose keys can carry the prefix (against every index)', () => {
    const r = rng(23);
    for (let trial = 0; trial < 300; trial++) {
      const count = 1 + Math.floor(r() * 3000);
      const ib = indexBits(count);
      const remaining = Math.floor(r() * (ib + 3));
      // A prefix taken from a real key (|δ| bits 0x3e80_0000, some index): the top 31 + ib − remaining bits.
      const i0 = Math.floor(r() * count);
      const key = (0x3e800000n << BigInt(ib)) | BigInt(count - 1 - i0);
      const prefix = key >> BigInt(remaining);
      const { first, end } = candidateRange(count, remaining, prefix);
      const carry: number[] = [];
      for (let i = 0; i < count; i++) if (((0x3e800000n << BigInt(ib)) | BigInt(count - 1 - i)) >> BigInt(remaining) === prefix) carry.push(i);
      if (remaining >= ib) {
        expect({ first, end }).toEqual({ first: 0, end: count });
      } else {
        expect({ first, end }).toEqual({ first: carry[0], end: carry[carry.length - 1] + 1 });
        expect(carry.length).toBe(end - first);
      }
    }
  });

  test('a pass over index bits reads only the run of elements its prefix allows, with the same cuts', async () => {
    // Every |δ| equal: the cut lies among equal magnitudes, so the last passes resolve index bits.
    const n = 40000;
    const files = [writeF32(new Array(n).fill(0)), writeF32(new Array(n).fill(0.5))];
    const spec: SparseMergeSpec = { ...selectOnly({ density: 0.3 }), base: 0 };
    const tensor: SparseTensor = { name: 'model.layers.0.mlp.up_proj.weight', count: n, spec, source: (m) => ({ file: files[m], offset: 0, dtype: 'F32' }) };
    const counts: number[][] = [];
    const resolved = (
      await resolveSparse([tensor], (p) => {
        counts.push(p.jobs.map((j) => j.count));
        return runPlan({ ...p, outputs: [], threads: 2, blockBytes: 4096, direct: false });
      })
    ).get(tensor.name)!;
    // 31 + 16 key bits in 12-bit digits: four passes, the last one over index bits alone.
    expect(counts.length).toBe(4);
    expect(counts[0]).toEqual([n]);
    expect(counts[3][0]).toBeLessThanOrEqual(2 ** 11);
    const keep = magnitudeCountsRef(n, 0.3, 0).keep;
    const kept = Array.from({ length: n }, (_, i) => rankKey(0.5, i, n) >= resolved.models[0].lowKey);
    expect(kept).toEqual(magnitudeMaskRef(new Array(n).fill(0.5), 0, keep));
  });

  test('thresholds do not depend on thread count or block size', async () => {
    const n = 20000;
    const r = rng(11);
    const delta = Array.from({ length: n }, () => f32(Math.round((r() - 0.5) * 200) / 64));
    const results = [];
    for (const engine of [
      { threads: 1, blockBytes: 1 << 20 },
      { threads: 2, blockBytes: 4096 },
      { threads: 3, blockBytes: 12288 },
    ]) {
      results.push((await runRaw(new Array(n).fill(0), [delta], selectOnly({ density: 0.37, gamma: 0.05 }), engine)).resolved.models[0]);
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });

  test('rank keys order larger magnitudes first, then lower indices', () => {
    expect(indexBits(1)).toBe(0);
    expect(indexBits(2)).toBe(1);
    expect(indexBits(1025)).toBe(11);
    expect(rankKey(-1, 0, 10) > rankKey(0.5, 0, 10)).toBe(true);
    expect(rankKey(0.5, 2, 10) > rankKey(-0.5, 3, 10)).toBe(true);
    expect(rankKey(Infinity, 9, 2 ** 32) < KEY_NONE).toBe(true);
  });
});

describe('DARE masks', () => {
  const n = 100003;
  const ones = new Array(n).fill(1);
  const zeros = new Array(n).fill(0);
  const dare = (density: number, seed: number) => ({
    models: [model(1, { selection: 'random', density })],
    consensus: null,
    normalize: false,
    lambda: 1,
    seed,
  });

  test('the same for 1, 2 and 3 threads and any block size, and equal to the documented generator', async () => {
    const outs: number[][] = [];
    for (const engine of [
      { threads: 1, blockBytes: 1 << 20 },
      { threads: 2, blockBytes: 4096 },
      { threads: 3, blockBytes: 20480 },
    ]) {
      outs.push((await runRaw(zeros, [ones], dare(0.3, 42), engine)).out);
    }
    expect(outs[1]).toEqual(outs[0]);
    expect(outs[2]).toEqual(outs[0]);
    const ref = dareMaskRef(42, 'model.layers.0.mlp.up_proj.weight', 1, n, 0.3);
    expect(outs[0]).toEqual(ref.map((k) => (k ? 1 : 0)));
  });

  test('reproducible from the seed; another seed or tensor name gives another mask', async () => {
    const e = { threads: 2, blockBytes: 65536 };
    const a = (await runRaw(zeros, [ones], dare(0.5, 7), e)).out;
    const again = (await runRaw(zeros, [ones], dare(0.5, 7), e)).out;
    const seed = (await runRaw(zeros, [ones], dare(0.5, 8), e)).out;
    const name = (await runRaw(zeros, [ones], dare(0.5, 7), e, 'model.layers.1.mlp.up_proj.weight')).out;
    expect(again).toEqual(a);
    const agree = (x: number[], y: number[]) => x.filter((v, i) => v === y[i]).length / n;
    // Independent masks of density 1/2 agree on about half of the elements.
    expect(Math.abs(agree(a, seed) - 0.5)).toBeLessThan(0.02);
    expect(Math.abs(agree(a, name) - 0.5)).toBeLessThan(0.02);
  });

  test.each([0.1, 0.5, 0.9])('density %p keeps a binomial share (within 5σ)', async (p) => {
    const out = (await runRaw(zeros, [ones], dare(p, 3), { threads: 3, blockBytes: 8192 })).out;
    const kept = out.filter((x) => x === 1).length;
    expect(out.every((x) => x === 0 || x === 1)).toBe(true);
    expect(Math.abs(kept - n * p)).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
  });

  test("rescale 'inverse' multiplies kept values by 1/density; L1 matching restores Σ|δ|", async () => {
    const r = rng(9);
    const delta = Array.from({ length: n }, () => f32(r() - 0.3));
    const inv = (
      await runRaw(
        zeros,
        [delta],
        { ...dare(0.25, 1), models: [model(1, { selection: 'random', density: 0.25, rescale: 'inverse' })] },
        { threads: 2, blockBytes: 4096 },
      )
    ).out;
    const mask = dareMaskRef(1, 'model.layers.0.mlp.up_proj.weight', 1, n, 0.25);
    expect(inv).toEqual(delta.map((d, i) => (mask[i] ? f32(d * 4) : 0)));
    const { out, resolved } = await runRaw(
      zeros,
      [delta],
      { ...dare(0.25, 1), models: [model(1, { selection: 'random', density: 0.25, rescale: 'l1' })] },
      { threads: 3, blockBytes: 4096 },
    );
    const scale = l1ScaleRef(delta, mask);
    expect(resolved.models[0].scale).toBeCloseTo(scale, 12);
    expect(out).toEqual(delta.map((d, i) => (mask[i] ? f32(d * f32(scale)) : 0)));
    const l1 = (xs: number[]) => xs.reduce((s, x) => s + Math.abs(x), 0);
    expect(l1(out) / l1(delta)).toBeCloseTo(1, 5);
  });
});

// ---- end to end through `merge` ------------------------------------------------------------------

describe('merge recipes', () => {
  let A: string;
  let B: string;
  let N: string;

  beforeAll(async () => {
    ({ A, B, N } = await makeNearModels(dir, 7, { pair: [2, 1], near: [1, 3] }));
  }, 60000);

  async function values(m: string): Promise<Map<string, number[]>> {
    const c = await openCheckpoint(m);
    const out = new Map<string, number[]>();
    for (const name of c.names) out.set(name, await readTensorValues(c.tensors.get(name)!));
    return out;
  }

  async function run(doc: Record<string, unknown>, threads = 2): Promise<{ out: Checkpoint; recipe: Recipe }> {
    const out = freshPath('merged');
    const recipe = parseRecipe(doc);
    await merge(recipe, { output: out, threads });
    return { out: await openCheckpoint(out), recipe };
  }

  type Keep = (name: string, delta: number[], model: number) => { keep: boolean[]; scale: number };

  /** Worst ulp distance from the oracle over every tensor, with base N and models A, B. */
  async function worst(
    doc: Record<string, unknown>,
    keep: Keep,
    weights: number[],
    consensus: 'sum' | 'count' | null,
    normalize: boolean,
    lambda = 1,
  ): Promise<number> {
    const [a, b, base] = await Promise.all([values(A), values(B), values(N)]);
    const { out, recipe } = await run(doc);
    let w = 0;
    for (const name of out.names) {
      const loc = out.tensors.get(name)!;
      const got = await readTensorValues(loc);
      const bv = base.get(name)!;
      const models: SparseRefModel[] = [a, b].map((m, k) => {
        const delta = m.get(name)!.map((x, i) => f32(x - bv[i]));
        return { delta, weight: weights[k], ...keep(name, delta, recipe.models.indexOf(k === 0 ? A : B)) };
      });
      const ref = sparseMergeRef(bv, models, consensus, normalize, lambda);
      for (let i = 0; i < got.length; i++) w = Math.max(w, ulpDistance(got[i], ref[i], loc.dtype));
    }
    return w;
  }

  const magnitudeKeep =
    (density: number, gamma = 0): Keep =>
    (_, delta) => {
      const { top, keep } = magnitudeCountsRef(delta.length, density, gamma);
      return { keep: magnitudeMaskRef(delta, top, keep), scale: 1 };
    };

  test('ties (the paper baseline: density 0.2, weight 0.5) is within 1 bf16 ulp of the f64 oracle', async () => {
    const doc = {
      merge_method: 'ties',
      base_model: N,
      models: [
        { model: A, parameters: { density: 0.2, weight: 0.5 } },
        { model: B, parameters: { density: 0.2, weight: 0.5 } },
      ],
      dtype: 'bfloat16',
    };
    expect(await worst(doc, magnitudeKeep(0.2), [0.5, 0.5], 'sum', true)).toBeLessThanOrEqual(1);
  });

  test('ties with consensus_method count, normalize false, lambda 0.8 and unequal weights, f16 output', async () => {
    const doc = {
      merge_method: 'ties',
      base_model: N,
      out_dtype: 'float16',
      parameters: { normalize: false, lambda: 0.8, consensus_method: 'count' },
      models: [
        { model: A, parameters: { density: 0.5, weight: 0.3 } },
        { model: B, parameters: { density: 0.5, weight: 0.9 } },
      ],
    };
    expect(await worst(doc, magnitudeKeep(0.5), [0.3, 0.9], 'count', false, 0.8)).toBeLessThanOrEqual(1);
  });

  test('dare_ties (L1 rescale by default) and dare_linear are within 1 bf16 ulp of the oracle with the documented masks', async () => {
    const dareKeep =
      (density: number): Keep =>
      (name, delta, m) => {
        const keep = dareMaskRef(2510, name, m, delta.length, density);
        return { keep, scale: f32(l1ScaleRef(delta, keep)) };
      };
    const models = [
      { model: A, parameters: { density: 0.5, weight: 0.5 } },
      { model: B, parameters: { density: 0.5, weight: 0.5 } },
    ];
    expect(await worst({ merge_method: 'dare_ties', base_model: N, random_seed: 2510, models }, dareKeep(0.5), [0.5, 0.5], 'sum', false)).toBeLessThanOrEqual(
      1,
    );
    expect(await worst({ merge_method: 'dare_linear', base_model: N, random_seed: 2510, models }, dareKeep(0.5), [0.5, 0.5], null, false)).toBeLessThanOrEqual(
      1,
    );
  });

  test("dare_linear with rescale: 'inverse' scales kept values by 1/density (the DARE paper)", async () => {
    const models = [
      { model: A, parameters: { density: 0.25, weight: 1 } },
      { model: B, parameters: { density: 0.25, weight: 0.5 } },
    ];
    const keep: Keep = (name, delta, m) => ({ keep: dareMaskRef(0, name, m, delta.length, 0.25), scale: 4 });
    expect(
      await worst({ merge_method: 'dare_linear', base_model: N, parameters: { rescale: 'inverse' }, models }, keep, [1, 0.5], null, false),
    ).toBeLessThanOrEqual(1);
  });

  test('breadcrumbs and breadcrumbs_ties drop the gamma outliers and keep the next density share', async () => {
    const models = [
      { model: A, parameters: { density: 0.4, gamma: 0.05, weight: 0.6 } },
      { model: B, parameters: { density: 0.4, gamma: 0.05, weight: 0.6 } },
    ];
    expect(await worst({ merge_method: 'breadcrumbs', base_model: N, models }, magnitudeKeep(0.4, 0.05), [0.6, 0.6], null, false)).toBeLessThanOrEqual(1);
    expect(await worst({ merge_method: 'breadcrumbs_ties', base_model: N, models }, magnitudeKeep(0.4, 0.05), [0.6, 0.6], 'sum', false)).toBeLessThanOrEqual(1);
  });

  test('a dare_ties merge is byte-identical with 1 and 3 threads', async () => {
    const doc = {
      merge_method: 'dare_ties',
      base_model: N,
      random_seed: 5,
      models: [
        { model: A, parameters: { density: 0.3, weight: 1 } },
        { model: B, parameters: { density: 0.3, weight: 1 } },
      ],
    };
    const one = await run(doc, 1);
    const three = await run(doc, 3);
    for (const shard of one.out.shards) {
      expect(fs.readFileSync(path.join(three.out.dir, shard.name)).equals(fs.readFileSync(path.join(one.out.dir, shard.name)))).toBe(true);
    }
  });

  test('refuses a negative density (one above 1 thins nothing: recipe-mergekit-leniency.test.ts), an unknown rescale and a missing base model', async () => {
    const models = [
      { model: A, parameters: { density: -0.5, weight: 1 } },
      { model: B, parameters: { weight: 1 } },
    ];
    await expect(run({ merge_method: 'ties', base_model: N, models })).rejects.toThrow(/'density' must lie in \[0, ∞\)/);
    await expect(
      run({ merge_method: 'dare_linear', base_model: N, parameters: { rescale: 'l2' }, models: [{ model: A, parameters: { weight: 1 } }] }),
    ).rejects.toThrow(/'rescale' must be/);
    expect(() => parseRecipe({ merge_method: 'ties', models: [{ model: A, parameters: { weight: 1 } }] })).toThrow(/ties needs a base_model/);
  });
});
