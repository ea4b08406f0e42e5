/**
 * An index whose weight_map names shards with a path ('./model-…', 'weights/model-…') opens, and the output written from it
 * names its own shards plainly, in its own folder: the output verifies (its index named './…' files that verify then called
 * strays, and a 'weights/…' shard could not be created in the output at all).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { interpolate } from '../lib/interpolation/interpolate';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { verify } from '../lib/analysis/verify';
import { qwen3Names, randomTensor, rng, writeModel } from './helpers/models';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-index-paths-');

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** A 3-shard model, then its index rewritten so that each shard is named through `rename` (the files moved to match). */
async function modelNamedBy(name: string, rename: (file: string) => string) {
  const next = rng(7);
  const m = await writeModel(
    path.join(root, name),
    qwen3Names(2),
    3,
    () => 'BF16',
    (s) => randomTensor('BF16', count(s.shape), next),
    name,
  );
  const indexFile = path.join(m.dir, 'model.safetensors.index.json');
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
  for (const file of new Set(Object.values(index.weight_map))) {
    const to = path.join(m.dir, rename(file));
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.renameSync(path.join(m.dir, file), to);
  }
  for (const k of Object.keys(index.weight_map)) index.weight_map[k] = rename(index.weight_map[k]);
  fs.writeFileSync(indexFile, JSON.stringify(index));
  return m;
}

test.each([
  ['./', (f: string) => `./${f}`],
  ['weights/', (f: string) => `weights/${f}`],
])('shards named %s… in the index: interpolate and merge write plain shard names, and their outputs verify', async (label, rename) => {
  const a = await modelNamedBy(`a-${label.replace(/\W/g, '')}`, rename);
  const b = await modelNamedBy(`b-${label.replace(/\W/g, '')}`, (f) => f);
  const outs = [path.join(root, `interp-${label.replace(/\W/g, '')}`), path.join(root, `merge-${label.replace(/\W/g, '')}`)];
  await interpolate({ instruct: a.dir, thinking: b.dir, lambda: 0.5, output: outs[0] });
  await merge(parseRecipe({ merge_method: 'linear', models: [a.dir, b.dir].map((model) => ({ model, parameters: { weight: 0.5 } })) }), { output: outs[1] });
  for (const out of outs) {
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    for (const file of Object.values(index.weight_map)) expect(file).toMatch(/^model-\d{5}-of-\d{5}\.safetensors$/);
    const report = await verify({ dir: out, ...(out === outs[0] ? { recompute: true, samples: 'all' as const } : {}) });
    expect([out, report.problems, report.ok]).toEqual([out, [], true]);
  }
});
