/** The recipe tests' tiny models from one seed: a pair A (Instruct), B (Thinking), N near A and F far from it. */
import * as path from 'node:path';
import { makeCheckpointPair } from '../../lib/fixtures/fixture';

/** Shard counts of the pair's [Instruct, Thinking] and of the near pair's (the fixture's default when left out). */
export interface TinyModelShards {
  pair?: [number, number];
  near?: [number, number];
}

/** A and B under `dir`/pair, and N (the Thinking model of `dir`/near: A at relative distance 0.01), all from `seed`. */
export async function makeNearModels(dir: string, seed: number, shards: TinyModelShards = {}): Promise<{ A: string; B: string; N: string }> {
  const pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', seed, shards: shards.pair });
  const near = await makeCheckpointPair({ dir: path.join(dir, 'near'), shape: 'tiny', seed, delta: 0.01, shards: shards.near });
  return { A: pair.instruct, B: pair.thinking, N: near.thinking };
}

/** makeNearModels' A, B and N, and F (the Thinking model of `dir`/far: A at relative distance `farDelta`). */
export async function makeNearFarModels(
  dir: string,
  seed: number,
  shards: TinyModelShards = {},
  farDelta = 0.3,
): Promise<{ A: string; B: string; N: string; F: string }> {
  const near = await makeNearModels(dir, seed, shards);
  const far = await makeCheckpointPair({ dir: path.join(dir, 'far'), shape: 'tiny', seed, delta: farDelta });
  return { ...near, F: far.thinking };
}
