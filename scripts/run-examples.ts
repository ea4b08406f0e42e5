/**
 * `npm run examples`: runs every recipe in examples/ on tiny Qwen3-shaped fixtures (36 layers, so the
 * paper's layer ranges apply) made in a temporary folder. The recipes' ${INSTRUCT}, ${THINKING} and
 * ${BASE} (a third model near Instruct, standing in for the hybrid Qwen3-4B) are set as environment
 * variables, which the recipe reader expands as `weightmix merge` does (lib/recipe.ts). The MI-0.8 recipes
 * are checked against `weightmix interpolate` with the matching selection, within one bf16 ulp.
 * Then examples/paper-grid/ runs as one batch (`weightmix merge examples/paper-grid/*.yml -o DIR`): every
 * output must be byte for byte what `merge` of its recipe alone writes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../lib/model/checkpoint';
import { isWeightmixError } from '../lib/errors';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { interpolate } from '../lib/interpolation/interpolate';
import { merge } from '../lib/recipes/merge-recipe';
import { mergeBatch } from '../lib/recipes/batch';
import { NOT_YET_SUPPORTED } from '../lib/recipes/methods';
import { readRecipeFile } from '../lib/recipes/recipe';
import { readTensorValues } from '../lib/format/tensor-data';
import type { SelectionInput } from '../lib/model/selection';

const EXAMPLES = path.join(__dirname, '..', 'examples');
const GRID = path.join(EXAMPLES, 'paper-grid');

/** Files of model folder `a` that are missing from `b` or hold other bytes. */
async function differingFiles(a: string, b: string): Promise<string[]> {
  const names = (await fs.promises.readdir(a)).sort();
  const other = new Set(await fs.promises.readdir(b));
  const out: string[] = [];
  for (const name of names) {
    if (!other.has(name) || !(await fs.promises.readFile(path.join(a, name))).equals(await fs.promises.readFile(path.join(b, name)))) out.push(name);
  }
  return out;
}

/** Recipes that must equal an interpolation (to one rounding) and the selection that makes it. */
const SAME_AS_INTERPOLATE: Record<string, SelectionInput> = {
  'mi-0.8.yml': {},
  'mi-0.8-layers-12-35.yml': { layers: '12-35' },
  'mi-0.8-without-attention.yml': { skipModules: 'attn' },
  'mi-0.8-without-ffn.yml': { skipModules: 'mlp' },
};

function bf16Ulp(x: number): number {
  const e = Math.floor(Math.log2(Math.max(Math.abs(x), 2 ** -126)));
  return 2 ** (e - 7);
}

async function maxUlpDifference(a: string, b: string): Promise<number> {
  const [ca, cb] = await Promise.all([openCheckpoint(a), openCheckpoint(b)]);
  if (ca.names.length !== cb.names.length) throw new Error(`${a} and ${b} hold different tensor counts`);
  let worst = 0;
  for (const name of ca.names) {
    const tb = cb.tensors.get(name);
    if (!tb) throw new Error(`${name} is missing from ${b}`);
    const [va, vb] = await Promise.all([readTensorValues(ca.tensors.get(name)!), readTensorValues(tb)]);
    for (let i = 0; i < va.length; i++) worst = Math.max(worst, Math.abs(va[i] - vb[i]) / bf16Ulp(Math.max(Math.abs(va[i]), Math.abs(vb[i]))));
  }
  return worst;
}

async function main(): Promise<number> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'weightmix-examples-'));
  let failures = 0;
  try {
    const pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', layers: 36, seed: 2510 });
    // For examples/union-tokenizer.yml: vocabularies that differ by 4 tokens, so that the embedding rows are rebuilt.
    const vocab = await makeCheckpointPair({ dir: path.join(dir, 'vocab'), shape: 'tiny', layers: 36, seed: 2510, extraTokens: 4 });
    // Same seed, so the same Instruct weights; its "thinking" is another model close to Instruct.
    const near = await makeCheckpointPair({ dir: path.join(dir, 'near'), shape: 'tiny', layers: 36, seed: 2510, delta: 0.01 });
    Object.assign(process.env, { INSTRUCT: pair.instruct, THINKING: pair.thinking, BASE: near.thinking });
    const files = (await fs.promises.readdir(EXAMPLES)).filter((f) => f.endsWith('.yml')).sort();
    for (const file of files) {
      const text = await fs.promises.readFile(path.join(EXAMPLES, file), 'utf8');
      const out = path.join(dir, 'out', file.replace(/\.yml$/, ''));
      try {
        const models = file === 'union-tokenizer.yml' ? vocab : pair;
        const env = { ...process.env, INSTRUCT: models.instruct, THINKING: models.thinking };
        const s = await merge(await readRecipeFile(path.join(EXAMPLES, file), { env }), { output: out, threads: 2 });
        let check = '';
        const selection = SAME_AS_INTERPOLATE[file];
        if (selection) {
          const ref = `${out}-interpolate`;
          await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: ref, dtype: 'BF16', threads: 2, ...selection });
          const ulps = await maxUlpDifference(out, ref);
          if (ulps > 1) {
            failures++;
            check = `; FAILED: differs from interpolate by ${ulps} bf16 ulp`;
          } else {
            check = `; equals interpolate --lambda 0.8 within ${ulps} bf16 ulp`;
          }
        }
        process.stdout.write(`ok    ${file}: ${s.method}, ${s.tensors} tensors, ${s.layers} layers, ${s.bytes} bytes${check}\n`);
      } catch (e) {
        const method = /merge_method:\s*(\S+)/.exec(text)?.[1] ?? '';
        if (isWeightmixError(e) && e.code === 'UnsupportedRecipe' && NOT_YET_SUPPORTED.includes(method)) {
          process.stdout.write(`skip  ${file}: ${e.message}\n`);
        } else {
          failures++;
          process.stdout.write(`FAIL  ${file}: ${(e as Error).message}\n`);
        }
      }
    }
    const gridFiles = (await fs.promises.readdir(GRID)).filter((f) => f.endsWith('.yml')).sort();
    try {
      const recipes = await Promise.all(gridFiles.map((f) => readRecipeFile(path.join(GRID, f))));
      const grid = path.join(dir, 'grid');
      const s = await mergeBatch(
        recipes.map((recipe, i) => ({ name: gridFiles[i].replace(/\.yml$/, ''), recipe })),
        { output: grid, threads: 2 },
      );
      const differ: string[] = [];
      for (const [i, recipe] of recipes.entries()) {
        const name = gridFiles[i].replace(/\.yml$/, '');
        const single = path.join(dir, 'grid-singles', name);
        await merge(recipe, { output: single, threads: 2 });
        const files = await differingFiles(path.join(grid, name), single);
        if (files.length > 0) differ.push(`${name} (${files.join(', ')})`);
      }
      if (differ.length > 0) failures++;
      const check = differ.length > 0 ? `; FAILED: differs from its single merge: ${differ.join('; ')}` : `; each equals its single merge byte for byte`;
      process.stdout.write(
        `${differ.length > 0 ? 'FAIL ' : 'ok   '} paper-grid/: ${s.outputs.length} models in ${s.groups} write pass${s.groups === 1 ? '' : 'es'}, ${s.bytes} bytes${check}\n`,
      );
    } catch (e) {
      failures++;
      process.stdout.write(`FAIL  paper-grid/: ${(e as Error).message}\n`);
    }
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = 1;
  },
);
