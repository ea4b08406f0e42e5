/**
 * Moments resolved in the write pass (native/local_moments.h, engine/open-moments.ts): a tensor whose
 * coefficients are linear in its moments (slerp, karcher, multislerp and nuslerp without a base,
 * tensor-wise model_stock) is read once by the worker that merges it, which sums the pairs as the
 * moments pass does and asks the method's own coefficients code for its weights. The bytes must be
 * those of the streaming moments pass (forced by a zero budget), on random tensors with special values
 * (F32, BF16, F16; several pieces each), with 1 and 3 threads; a throwing method fails the run as the
 * streaming path does, and leaves nothing behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../lib/errors';
import type { MergeProgress } from '../lib/engine/execute-plan';
import { merge } from '../lib/recipes/merge-recipe';
import { localStatistics } from '../lib/recipes/sparsify';
import { NativeJob, runPlan } from '../lib/engine/native';
import type { NativeDtype } from '../lib/engine/native-plan';
import { listTree, qwen3Names, randomTensor, rng, writeModel } from './helpers/models';
import { expectLocalStreamedMixedAlike } from './helpers/local-vs-streamed';
import { writeRaw } from './helpers/raw-values';
import { randomTensors } from './helpers/special-values';
import { dir, useTempDir } from './helpers/temp-dir';

let A: string;
let B: string;
let C: string;
let N: string;
const defaultBytes = localStatistics.maxTensorBytes;
const DTYPES = ['F32', 'BF16', 'F16'] as const;

useTempDir('weightmix-local-moments-');

beforeAll(async () => {
  // down_proj has 128 × 320 = 40,960 elements: three pieces of the helper's 64 KiB blocks (16,384 elements).
  const specs = qwen3Names(3, 128, 320);
  const dtypeOf = (name: string) => DTYPES[specs.findIndex((s) => s.name === name) % 3];
  const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const next = rng(61);
  const base = await writeModel(path.join(dir, 'N'), specs, 2, dtypeOf, (s, d) => randomTensor(d as 'F32', count(s.shape), next), 'N');
  // Near the base (small angles, the lerp fallback where a tensor is equal), or independent.
  const near = (tag: string) =>
    writeModel(path.join(dir, tag), specs, 1, dtypeOf, (s, d) => randomTensor(d as 'F32', count(s.shape), next, base.data.get(s.name)!.bytes), tag);
  const copyOfBase = (tag: string) =>
    writeModel(
      path.join(dir, tag),
      specs,
      1,
      dtypeOf,
      (s) => (s.name.includes('norm') ? base.data.get(s.name)!.bytes : randomTensor(dtypeOf(s.name) as 'F32', count(s.shape), next)),
      tag,
    );
  [N, A, B, C] = [base.dir, (await near('A')).dir, (await copyOfBase('B')).dir, (await near('C')).dir];
}, 180_000); // four models: 60 s was not enough in a full run at load 15

afterEach(() => {
  localStatistics.maxTensorBytes = defaultBytes;
});

describe("the engine: a linear dest's open moments against the moments pass", () => {
  const n = 50001; // 49 pieces of 1,024 elements and a short one at blockBytes 4096
  const bits = (x: Float64Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex');

  test.each([
    [['F32', 'F32', 'F32'], 1],
    [['BF16', 'BF16', 'BF16'], 3],
    [['F16', 'BF16', 'F32'], 3],
    [['F16', 'F16', 'F16'], 1],
  ] as [NativeDtype[], number][])('sources %j, %i threads: the same f64 sums bit for bit, then the dest the callback names', async (dtypes, threads) => {
    const values = randomTensors(n, 2, dtypes.length * 7 + threads, [1e-3, 0.1]);
    const files = [values.base, ...values.models].map((v, k) => writeRaw(dir, v, dtypes[k] as 'F32').file);
    const inputs = files;
    const source = (k: number) => ({ input: k, offset: 0, dtype: dtypes[k] });
    const pairs: [number, number][] = [
      [0, 1],
      [0, 2],
      [2, 1],
    ];
    const momentsJobs: NativeJob[] = pairs.map(([a, b]) => ({ count: n, sources: [source(a), source(b)], dests: [], moments: true }));
    const streamed = await runPlan({ inputs, outputs: [], jobs: momentsJobs, threads, blockBytes: 4096, direct: false });

    // Two outputs (as a batch's two recipes would be): one answered with weights, one with a copy of source 2.
    const out = [0, 1].map((o) => path.join(dir, `open-${dtypes.join('-')}-${threads}-${o}.bin`));
    const asked: [number, Float64Array][] = [];
    const answers: number[][] = [
      [1, 0.5, -0.25, 0.75],
      [0, 2],
    ];
    const openJob: NativeJob = {
      count: n,
      sources: [0, 1, 2].map(source),
      dests: [0, 1].map((o) => ({
        output: o,
        offset: 0,
        dtype: 'BF16' as NativeDtype,
        op: 'linear' as const,
        w: [0, 0, 0],
        params: [1024, o, pairs.length, ...pairs.flat()],
      })),
    };
    const outputs = out.map((p) => ({ path: p, size: 2 * n, head: Buffer.alloc(0) }));
    await runPlan(
      { inputs, outputs, jobs: [openJob], threads, blockBytes: 4096, direct: false },
      {
        onCoefficients: (id, moments) => {
          asked.push([id, Float64Array.from(moments)]);
          return answers[id];
        },
      },
    );
    expect(asked.map(([id]) => id).sort()).toEqual([0, 1]);
    for (const [, m] of asked) expect(bits(m)).toBe(bits(streamed.moments));
    expect(streamed.moments[5]).toBeGreaterThan(0); // non-finite pairs were there to skip

    // The dests the answers name, as plain jobs.
    const plain = out.map((p) => `${p}.plain`);
    const plainJob: NativeJob = {
      count: n,
      sources: [0, 1, 2].map(source),
      dests: [
        { output: 0, offset: 0, dtype: 'BF16', op: 'linear', w: [0.5, -0.25, 0.75] },
        { output: 1, offset: 0, dtype: 'BF16', op: 'copy', w: [2] },
      ],
    };
    await runPlan({
      inputs,
      outputs: plain.map((p) => ({ path: p, size: 2 * n, head: Buffer.alloc(0) })),
      jobs: [plainJob],
      threads,
      blockBytes: 4096,
      direct: false,
    });
    for (let o = 0; o < 2; o++) expect(fs.readFileSync(out[o]).equals(fs.readFileSync(plain[o]))).toBe(true);
  });

  test('an answer that is neither a copy nor weights for every source fails the run with a one-line error', async () => {
    const { file } = writeRaw(dir, [1, 2, 3], 'F32');
    const job: NativeJob = {
      count: 3,
      sources: [0, 0].map((input) => ({ input, offset: 0, dtype: 'F32' as NativeDtype })),
      dests: [{ output: 0, offset: 0, dtype: 'F32', op: 'linear', w: [0, 0], params: [1024, 0, 1, 0, 1] }],
    };
    const outFile = path.join(dir, 'bad-answer.bin');
    const run = (answer: number[]) =>
      runPlan(
        { inputs: [file], outputs: [{ path: outFile, size: 12, head: Buffer.alloc(0) }], jobs: [job], threads: 1, blockBytes: 4096, direct: false },
        { onCoefficients: () => answer },
      );
    for (const answer of [
      [1, 0.5],
      [0, 2],
      [2, 0, 0],
    ]) {
      await expect(run(answer)).rejects.toMatchObject({ code: 'PlanInvalid', message: 'plan: the coefficients callback gave no copy or linear dest' });
    }
  });
});

const recipes: [string, () => Record<string, unknown>][] = [
  [
    'slerp (t from 0 to 1 over the layers: copies at the ends)',
    () => ({ merge_method: 'slerp', base_model: N, models: [{ model: N }, { model: B }], parameters: { t: [0, 0.3, 1] } }),
  ],
  [
    'slerp of near models, out_dtype float32',
    () => ({ merge_method: 'slerp', base_model: A, out_dtype: 'float32', models: [{ model: A }, { model: C }], parameters: { t: 0.4 } }),
  ],
  ['karcher of three', () => ({ merge_method: 'karcher', models: [{ model: A }, { model: B }, { model: C }], parameters: { max_iter: 12 } })],
  [
    'multislerp without a base',
    () => ({
      merge_method: 'multislerp',
      models: [
        { model: A, parameters: { weight: 0.5 } },
        { model: B, parameters: { weight: 0.3 } },
        { model: C, parameters: { weight: 0.2 } },
      ],
    }),
  ],
  [
    'nuslerp without a base',
    () => ({
      merge_method: 'nuslerp',
      models: [
        { model: A, parameters: { weight: 0.7 } },
        { model: C, parameters: { weight: 0.3 } },
      ],
    }),
  ],
  ['model_stock (tensor-wise)', () => ({ merge_method: 'model_stock', base_model: N, models: [{ model: A }, { model: B }, { model: C }] })],
];

describe('local moments and the streaming moments pass write the same model', () => {
  test.each(recipes)('%s, 1 thread local', async (_, doc) => {
    await expectLocalStreamedMixedAlike(dir, doc(), { local: 1, streamed: 3, mixed: 3 });
  });
  test.each(recipes)('%s, 3 threads local', async (_, doc) => {
    await expectLocalStreamedMixedAlike(dir, doc(), { local: 3, streamed: 1, mixed: 1 });
  });
});

/** The stages a merge reports. */
async function stagesOf(doc: Record<string, unknown>, out: string): Promise<Set<MergeProgress['stage']>> {
  const stages = new Set<MergeProgress['stage']>();
  await merge(doc, { output: out, threads: 2, blockBytes: 65536, onProgress: (p) => stages.add(p.stage) });
  return stages;
}

test('within the budget no moments pass runs (the write pass sums them); with a zero budget one does', async () => {
  const doc = recipes[0][1]();
  expect(await stagesOf(doc, path.join(dir, 'stages-local'))).toEqual(new Set(['write']));
  localStatistics.maxTensorBytes = 0;
  expect(await stagesOf(doc, path.join(dir, 'stages-streamed'))).toEqual(new Set(['statistics', 'write']));
});

test("a method that throws in the write pass's callback fails the merge as the streaming path does, and publishes nothing", async () => {
  // slerp without t: the method throws for the first tensor it decides.
  const doc = { merge_method: 'slerp', base_model: N, models: [{ model: N }, { model: B }] };
  const failure = async (maxTensorBytes: number, threads: number) => {
    localStatistics.maxTensorBytes = maxTensorBytes;
    const parent = path.join(dir, `fails-${maxTensorBytes}-${threads}`);
    await fs.promises.mkdir(parent);
    const e = await merge(doc, { output: path.join(parent, 'out'), threads, blockBytes: 65536 }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(listTree(parent)).toEqual([]);
    return e;
  };
  const streamed = await failure(0, 2);
  expect(streamed).toBeInstanceOf(WeightmixError);
  for (const threads of [1, 3]) {
    const local = await failure(defaultBytes, threads);
    expect(local).toBeInstanceOf(WeightmixError);
    expect((local as WeightmixError).code).toBe((streamed as WeightmixError).code);
    // The same message, about the first tensor decided: the planner's output order there, the file order (or a worker's) here.
    const unnamed = (e: unknown) => (e as Error).message.replace(/\(tensor [^)]*\)/, '(tensor …)');
    expect(unnamed(local)).toBe(unnamed(streamed));
    expect(unnamed(local)).toBe("parameter 't' is required (tensor …)");
    expect((local as Error).message).not.toContain('\n');
  }
});
