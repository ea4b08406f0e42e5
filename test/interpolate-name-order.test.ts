/**
 * The planner looks tensors up by name, whatever order each model stores them in: a pair saved alike skips the per-name checks
 * (lib/engine/shard-jobs.ts's listsAlike, the interpolation recipes' sameOrder), a pair stored in another order must not. The
 * Thinking model here keeps each shard's first tensor where the Instruct model has it and stores the rest in reverse, with every
 * tensor of one shape, so that a check skipped wrongly would read the wrong rows. WEIGHTMIX_SEED=<seed> replays it.
 */
import { openCheckpoint } from '../lib/model/checkpoint';
import { interpolate } from '../lib/interpolation/interpolate';
import { readTensorBytes } from '../lib/format/tensor-data';
import type { SafetensorsDtype } from '../lib/format/dtypes';
import { randomTensor, rng, TensorSpec, writeModel } from './helpers/models';
import { referenceInterpolation } from './reference/interpolation';
import { freshPath, useTempDir } from './helpers/temp-dir';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`interpolate-name-order.test seed ${seed} (replay with WEIGHTMIX_SEED=${seed})`);

useTempDir('wm-name-order-');

const specs: TensorSpec[] = Array.from({ length: 12 }, (_, i) => ({ name: `model.layers.0.mlp.experts.${i}.down_proj.weight`, shape: [4, 6] }));
// Shard 0 of the Thinking model: experts 0, 11, 10, …, 7; shard 1: experts 6, 5, …, 1 (each shard's first row is the Instruct model's).
const reordered = [specs[0], ...specs.slice(1).reverse()];

test('a Thinking model storing the same tensors in another order is interpolated tensor by tensor, by name', async () => {
  const next = rng(seed);
  const data = () => randomTensor('BF16', 24, next);
  const instruct = await writeModel(freshPath('instruct'), specs, 2, () => 'BF16', data, 'i');
  const thinking = await writeModel(freshPath('thinking'), reordered, 2, () => 'BF16', data, 't');
  const output = freshPath('out');
  await interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output });
  const merged = await openCheckpoint(output);
  for (const spec of specs) {
    const want = referenceInterpolation(instruct.data.get(spec.name)!.bytes, 'BF16', thinking.data.get(spec.name)!.bytes, 'BF16', 0.8, 'exact', 'BF16');
    expect({ name: spec.name, equal: (await readTensorBytes(merged.tensors.get(spec.name)!)).equals(want) }).toEqual({ name: spec.name, equal: true });
  }
});

test("numerics mi names the tensor whose dtypes differ, found by name in the Thinking model's own order", async () => {
  const next = rng(seed + 1);
  const f16 = specs[1].name;
  const data = (_: TensorSpec, dtype: SafetensorsDtype) => randomTensor(dtype === 'F16' ? 'F16' : 'BF16', 24, next);
  const instruct = await writeModel(freshPath('instruct'), specs, 2, () => 'BF16', data, 'i');
  const thinking = await writeModel(freshPath('thinking'), reordered, 2, (name) => (name === f16 ? 'F16' : 'BF16'), data, 't');
  await expect(interpolate({ instruct: instruct.dir, thinking: thinking.dir, lambda: 0.8, output: freshPath('out'), numerics: 'mi' })).rejects.toMatchObject({
    code: 'DtypeMismatch',
    message: expect.stringContaining(`but ${f16} is BF16 and F16`),
  });
});
