/**
 * Tensor-local jobs (native/local_job.h): thresholds and L1 factors resolved by the engine from the
 * tensor in memory give the same bytes as the planner's streaming statistics passes (the fallback for
 * tensors above the budget), on fresh random inputs with special values and many ties, and end to end
 * through `merge` with the fallback forced by a zero budget.
 */
import * as fs from 'node:fs';
import { localJobReads } from '../lib/engine/execute-plan';
import { NativeDtype, NativePlan, runPlan } from '../lib/engine/native';
import { encodeSparseParams } from '../lib/engine/sparse-params';
import { resolveSparse, SparseMergeSpec, SparseTensor } from '../lib/recipes/sparsify';
import { rng } from './helpers/models';
import { sparseModel as model } from './helpers/sparse-model';
import { expectLocalStreamedMixedAlike } from './helpers/local-vs-streamed';
import { dir, setUpTensorLocalTests } from './helpers/tensor-local-setup';
import { freshPath } from './helpers/temp-dir';
import { makeNearModels } from './helpers/tiny-models';

setUpTensorLocalTests('weightmix-local-');

const SPECIALS = [NaN, Infinity, -Infinity, 0, -0, 2 ** -149, -(2 ** -149), 2 ** -126, 3.4028234663852886e38, -3.4028234663852886e38];

/** n values: specials, few distinct values (ties), subnormals and normals of both signs. */
function values(n: number, r: () => number): number[] {
  return Array.from({ length: n }, () => {
    const u = r();
    if (u < 0.05) return SPECIALS[Math.floor(r() * SPECIALS.length)];
    if (u < 0.35) return [-2, -1, 0, 1, 2][Math.floor(r() * 5)] * 0.125;
    if (u < 0.4) return (r() < 0.5 ? -1 : 1) * Math.floor(r() * 64) * 2 ** -149;
    return (r() - 0.5) * 4;
  });
}

/** The values as a raw file of `dtype` (bf16: the f32 bits' high half, any pattern being valid). */
function writeRaw(xs: number[], dtype: NativeDtype): string {
  const file = freshPath('raw');
  const f = new Float32Array(xs);
  const bytes = dtype === 'F32' ? Buffer.from(f.buffer) : Buffer.from(Uint16Array.from(new Uint32Array(f.buffer), (b) => b >>> 16).buffer);
  fs.writeFileSync(file, bytes);
  return file;
}

/** The merged bytes of one tensor with its statistics resolved by streaming passes or left open for the engine. */
async function mergeRaw(
  files: string[],
  dtypes: NativeDtype[],
  count: number,
  spec: SparseMergeSpec,
  local: boolean,
  threads: number,
  blockBytes: number,
  chunkedLocalBytes?: number,
) {
  const name = 'model.layers.3.mlp.down_proj.weight';
  const tensor: SparseTensor = { name, count, spec, source: (m) => ({ file: files[m], offset: 0, dtype: dtypes[m] }) };
  const run = (p: Pick<NativePlan, 'inputs' | 'jobs'>) => runPlan({ ...p, outputs: [], threads, blockBytes, direct: false });
  const resolved = (await resolveSparse([tensor], run, () => local)).get(name)!;
  const params = encodeSparseParams(resolved, (m) => m);
  const opens = spec.models.some((m) => (m.selection === 'magnitude' && m.density < 1) || (m.rescale === 'l1' && m.density < 1));
  expect(params.length).toBe(6 + spec.models.length * (local && opens ? 14 : 10));
  const out = freshPath('out');
  await runPlan({
    inputs: files,
    outputs: [{ path: out, size: count * 2, head: Buffer.alloc(0) }],
    jobs: [
      {
        count,
        sources: files.map((_, k) => ({ input: k, offset: 0, dtype: dtypes[k] })),
        dests: [{ output: 0, offset: 0, dtype: 'BF16', op: 'sparse', w: [], params }],
      },
    ],
    threads,
    blockBytes,
    direct: false,
    ...(chunkedLocalBytes !== undefined && { chunkedLocalBytes }),
  });
  return fs.readFileSync(out);
}

/** `run` with every tensor-local job of a merge whose open statistics are rank cuts and L1 factors read in chunks (native/executor.cc's readsInChunks). */
async function withChunkedLocalJobs<T>(run: () => Promise<T>): Promise<T> {
  localJobReads.chunkedLocalBytes = 0;
  try {
    return await run();
  } finally {
    localJobReads.chunkedLocalBytes = undefined;
  }
}

const SPECS: Record<string, Omit<SparseMergeSpec, 'base'>> = {
  ties: { models: [model(1, { density: 0.3, weight: 0.7 }), model(2, { density: 0.3, weight: 0.5 })], consensus: 'sum', normalize: true, lambda: 1, seed: 0 },
  'breadcrumbs_ties, count consensus': {
    models: [model(1, { density: 0.5, gamma: 0.1 }), model(2, { density: 0.2, gamma: 0.3 })],
    consensus: 'count',
    normalize: false,
    lambda: 0.8,
    seed: 0,
  },
  'dare_ties, L1 rescale': {
    models: [model(1, { selection: 'random', density: 0.4, rescale: 'l1' }), model(2, { selection: 'random', density: 0.7, rescale: 'l1', weight: 0.3 })],
    consensus: 'sum',
    normalize: false,
    lambda: 1,
    seed: 11,
  },
  'magnitude with L1 rescale, densities 0 and 1e-4': {
    models: [model(1, { density: 1e-4, rescale: 'l1' }), model(2, { density: 0, rescale: 'l1' }), model(3, { density: 0.999, rescale: 'l1' })],
    consensus: null,
    normalize: false,
    lambda: 1,
    seed: 0,
  },
};

describe('tensor-local statistics against the streaming passes', () => {
  for (const [label, spec] of Object.entries(SPECS)) {
    test.each([
      ['F32', 'F32'],
      ['BF16', 'BF16'],
      ['BF16', 'F32'],
    ] as [NativeDtype, NativeDtype][])(`${label}: the same bytes (base %s, models %s)`, async (baseDtype, modelDtype) => {
      for (const [seed, count] of [
        [1, 5003],
        [2, 40000],
      ]) {
        const r = rng(seed * 7919 + label.length);
        const m = spec.models.length;
        const dtypes: NativeDtype[] = [baseDtype, ...new Array<NativeDtype>(m).fill(modelDtype)];
        const files = dtypes.map((t) => writeRaw(values(count, r), t));
        const full = { ...spec, base: 0 };
        const streamed = await mergeRaw(files, dtypes, count, full, false, 3, 4096);
        const local = await mergeRaw(files, dtypes, count, full, true, 2, 8192);
        expect(local.equals(streamed)).toBe(true);
        // Read in chunks (of 2048 elements at these blocks) instead of held whole: the cuts by the histogram passes, then the L1 factors.
        const chunked = await mergeRaw(files, dtypes, count, full, true, 2, 8192, 0);
        expect(chunked.equals(streamed)).toBe(true);
      }
    });
  }
});

describe('merge: tensor-local jobs and the streaming fallback write the same model', () => {
  let A: string;
  let B: string;
  let N: string;

  beforeAll(async () => {
    ({ A, B, N } = await makeNearModels(dir, 3, { pair: [2, 1], near: [1, 2] }));
  }, 60000);

  const models = (parameters: Record<string, unknown>) => [
    { model: A, parameters: { weight: 0.6, ...parameters } },
    { model: B, parameters: { weight: 0.5, ...parameters } },
  ];
  test.each([
    ['ties', { density: 0.3 }, {}],
    ['dare_ties', { density: 0.4 }, {}],
    ['dare_linear', { density: 0.6 }, {}],
    ['breadcrumbs', { density: 0.5, gamma: 0.05 }, {}],
    // rescale is method-wide (mergekit reads it from parameters: only).
    ['breadcrumbs_ties', { density: 0.4, gamma: 0.02 }, { rescale: true }],
  ] as [string, Record<string, unknown>, Record<string, unknown>][])('%s', async (method, parameters, wide) => {
    const doc = { merge_method: method, base_model: N, random_seed: 9, models: models(parameters), parameters: wide };
    await expectLocalStreamedMixedAlike(dir, doc);
    // Every local job read in chunks (the cuts by the histogram passes, the L1 factors summed): the same files again.
    await withChunkedLocalJobs(() => expectLocalStreamedMixedAlike(dir, doc));
  });
});
