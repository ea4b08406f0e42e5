/**
 * The moments a batch takes inside its first write pass (engine/moments.ts withMomentsJobs) are the bits a
 * moments pass of the same block size gives: every pair of a model pair, f64 sums compared exactly; and
 * the comparison can fail: another block size cuts other pieces and changes some sums.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { openCheckpoint } from '../lib/model/checkpoint';
import { checkpointLayout } from '../lib/engine/output-layout';
import { planMerge } from '../lib/engine/plan';
import { decodeMoments, runMomentsPass, withMomentsJobs, type TensorPair } from '../lib/engine/moments';
import { runMergePlan } from '../lib/engine/execute-plan';

let dir: string;

beforeAll(async () => {
  dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'weightmix-batch-moments-'));
});

afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

test('moments jobs inside a write plan: bit for bit the moments pass of the same block size', async () => {
  const seed = (Date.now() % 100000) + 1;
  const pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', layers: 4, seed, delta: 0.2, dtype: 'F32', shards: [2, 1] });
  const [a, b] = await Promise.all([openCheckpoint(pair.instruct), openCheckpoint(pair.thinking)]);
  const pairs: TensorPair[] = a.names.filter((n) => a.tensors.get(n)!.dtype === 'F32').map((n) => ({ a: a.tensors.get(n)!, b: b.tensors.get(n)! }));
  // A write plan that copies the thinking model, as a batch's first pass writes its statistics-free outputs.
  const writePlan = planMerge({
    checkpoints: [a, b],
    layout: checkpointLayout(a),
    outputs: [{ dir: path.join(dir, 'out'), metadata: {} }],
    recipe: (name) => ({ op: 'copy', models: [1], w: [0], dtype: a.tensors.get(name)!.dtype }),
  });
  await fs.promises.mkdir(path.join(dir, 'out'), { recursive: true });
  const blockBytes = 16384; // 4,096-element pieces: most tensors are cut, so the summation order is at stake
  const { plan, jobs } = withMomentsJobs(writePlan, pairs);
  expect(plan.jobs.length).toBe(writePlan.jobs.length + pairs.length);
  const { result } = await runMergePlan(plan, { threads: 3, blockBytes, direct: false }, {});
  const fused = decodeMoments(result.moments, pairs, jobs);
  const alone = await runMomentsPass(pairs, { threads: 2, blockBytes, direct: false });
  expect(fused).toEqual(alone);
  const otherCuts = await runMomentsPass(pairs, { threads: 2, blockBytes: 8192, direct: false });
  const differ = otherCuts.filter((m, i) => m.sumAB !== alone[i].sumAB || m.sumSqDiff !== alone[i].sumSqDiff).length;
  if (differ === 0) throw new Error(`seed ${seed}: other piece cuts gave the same sums everywhere; the comparison above could not fail`);
}, 60000);
