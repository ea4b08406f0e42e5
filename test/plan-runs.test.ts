/**
 * A shard stored as one run in every model read (models saved alike, an interpolation's plain recipes) is planned as one job at once
 * (lib/engine/shard-jobs.ts's writeShardRun); the oracle is the object path's per-tensor jobs with their runs joined
 * (test/helpers/plan-references.ts), on random shards unbroken and broken in one place. WEIGHTMIX_SEED=<seed> replays them.
 */
import { Checkpoint, TensorLocation } from '../lib/model/checkpoint';
import { MergeSpec, TensorRecipe } from '../lib/engine/plan';
import { SafetensorsDtype } from '../lib/format/dtypes';
import type { OutputLayout } from '../lib/engine/output-layout';
import { planAgainstReference } from './helpers/plan-references';
import { rng } from './helpers/models';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log('plan runs: seed', seed, '(replay: WEIGHTMIX_SEED=' + seed + ')');

test('a shard stored as one run in every model is planned as the per-tensor jobs joined, and so is one broken in one place', () => {
  const next = rng(seed + 11);
  const int = (n: number) => Math.floor(next() * n);
  for (let round = 0; round < 60; round++) {
    // Two models saved alike: shards of 1-40 BF16 tensors, each shard's tensors one after the other; the layout is the models'.
    const shardSizes = Array.from({ length: 1 + int(4) }, () => 1 + int(40));
    const tensors = shardSizes.flatMap((size, s) =>
      Array.from({ length: size }, (_, i) => {
        const shape = [1 + int(9), 1 + int(9)];
        return { name: `model.layers.${s}.w${i}`, shape, elementCount: shape[0] * shape[1], shard: s };
      }),
    );
    // One break at random (or none): a gap before a tensor, another dtype, another recipe object, the models' order swapped, or two
    // tensors of one shape side by side swapped in the second model (only its names then tell it from the first's run).
    const broken = int(tensors.length + 1);
    const breakKind = int(5);
    const swapped = breakKind === 4 && tensors[broken + 1]?.shard === tensors[broken]?.shard ? tensors[broken + 1] : undefined;
    if (swapped) Object.assign(swapped, { shape: tensors[broken].shape, elementCount: tensors[broken].elementCount });
    const checkpoints: Checkpoint[] = [0, 1].map((m) => {
      const locations = new Map<string, TensorLocation>();
      const ends = shardSizes.map(() => 8 + 8 * int(3));
      const order = m === 1 && breakKind === 3 && broken < tensors.length ? [...tensors].reverse() : m === 1 && swapped ? swappedAt(tensors, broken) : tensors;
      for (const t of order) {
        const dtype: SafetensorsDtype = t === tensors[broken] && breakKind === 1 ? 'F16' : 'BF16';
        if (t === tensors[broken] && breakKind === 0) ends[t.shard] += 2;
        const byteLength = t.elementCount * 2;
        const shard = `s${t.shard}.safetensors`;
        locations.set(t.name, {
          name: t.name,
          dtype,
          shape: t.shape,
          shard,
          file: `/m${m}/${shard}`,
          offset: ends[t.shard],
          byteLength,
          elementCount: t.elementCount,
        });
        ends[t.shard] += byteLength;
      }
      return { dir: `/m${m}`, shards: [], tensors: locations, names: [...locations.keys()], indexed: true, sidecars: [], config: null, tensorBytes: 0 };
    });
    const layout: OutputLayout = {
      shards: shardSizes.map((_, s) => ({ name: `out-${s}.safetensors`, tensors: tensors.filter((t) => t.shard === s) })),
      indexed: true,
    };
    const lerp: TensorRecipe = { op: 'lerp', models: [0, 1], w: [next()], dtype: 'BF16' };
    const other: TensorRecipe = { ...lerp };
    const spec: MergeSpec = {
      checkpoints,
      layout,
      outputs: [{ dir: '/out', metadata: {} }],
      recipe: (name) => (name === tensors[broken]?.name && breakKind === 2 ? other : lerp),
    };
    const { plan } = planAgainstReference(spec);
    // Unbroken, each shard is one job.
    if (broken === tensors.length) expect(plan.packedJobs.count).toBe(shardSizes.length);
  }
});

/** `list` with entries i and i + 1 swapped. */
function swappedAt<T>(list: readonly T[], i: number): T[] {
  const out = [...list];
  [out[i], out[i + 1]] = [out[i + 1], out[i]];
  return out;
}
