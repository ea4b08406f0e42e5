/**
 * A slice whose only source is one model, under slerp, nuslerp, nearswap and arcee_fusion (methods/method.ts loneSourceCopied):
 * mergekit's tasks return a lone tensor before they look for the base, so a frankenmerge that keeps the base's first layers
 * (`[A 0-1]`, then `[A 1-2, B 1-2]`) copies them. weightmix refused it ("slerp merges exactly two models, slices[0] names 1"),
 * and with the other model as the lone source merged it with the unlisted base instead of copying it.
 */
import * as path from 'node:path';
import { readTensorBytes } from '../lib/format/tensor-data';
import { openCheckpoint } from '../lib/model/checkpoint';
import { merge } from '../lib/recipes/merge-recipe';
import { cachedPair } from './helpers/cli';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-lone-source-');

let pair: { instruct: string; thinking: string };
beforeAll(async () => {
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 27 });
});

// nuslerp without a base: with one it merges two other models' task vectors.
const METHODS: Record<string, { parameters: Record<string, unknown>; weight?: boolean; noBase?: boolean }> = {
  slerp: { parameters: { t: 0.5 } },
  nuslerp: { parameters: {}, weight: true, noBase: true },
  nearswap: { parameters: { t: 0.01 } },
  arcee_fusion: { parameters: {} },
};

/** Each tensor of `dir` whose name passes `keep`, as its bytes. */
async function tensorsOf(dir: string, keep: (name: string) => boolean): Promise<Map<string, Buffer>> {
  const ckpt = await openCheckpoint(dir);
  const out = new Map<string, Buffer>();
  for (const name of ckpt.names.filter(keep)) out.set(name, await readTensorBytes(ckpt.tensors.get(name)!));
  return out;
}

const firstLayer = (name: string) => name.startsWith('model.layers.0.') || name.includes('embed_tokens');
const secondLayer = (name: string) => name.startsWith('model.layers.1.');

test.each(Object.keys(METHODS))(
  '%s: a lone source is copied (the base or the other model), the two-model slice merged as in the models: form',
  async (method) => {
    const { parameters, weight, noBase } = METHODS[method];
    const base = noBase ? {} : { base_model: pair.instruct };
    const source = (model: string, range: [number, number]) => ({ model, layer_range: range, ...(weight ? { parameters: { weight: 1 } } : {}) });
    const twoModels = { sources: [source(pair.instruct, [1, 2]), source(pair.thinking, [1, 2])] };
    const slices = (lone: string) => ({
      merge_method: method,
      ...base,
      parameters,
      slices: [{ sources: [source(lone, [0, 1])] }, twoModels],
    });
    const whole = path.join(root, `${method}-whole`);
    const models = [pair.instruct, pair.thinking].map((model) => ({ model, ...(weight ? { parameters: { weight: 1 } } : {}) }));
    await merge({ merge_method: method, ...base, parameters, models }, { output: whole, threads: 1 });
    const merged = await tensorsOf(whole, secondLayer);
    for (const lone of [pair.instruct, pair.thinking]) {
      const out = path.join(root, `${method}-${path.basename(lone)}`);
      await merge(slices(lone), { output: out, threads: 1 });
      expect(await tensorsOf(out, firstLayer)).toEqual(await tensorsOf(lone, firstLayer));
      expect(await tensorsOf(out, secondLayer)).toEqual(merged);
    }
  },
  60_000,
);
