/**
 * Batch merges: every output of `mergeBatch` byte for byte what `merge` of its recipe alone writes (the
 * reference), for a mix of methods over shared and unrelated models; transactions publish all outputs or
 * none; the CLI's batch form (the fusion itself: fuse-plans.test.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { merge } from '../lib/recipes/merge-recipe';
import { mergeBatch } from '../lib/recipes/batch';
import { writeBlockBytes } from '../lib/engine/block-bytes';
import { parseRecipe } from '../lib/recipes/recipe';
import { ensureCliBuilt, expectOneLineError, runCli } from './helpers/cli';
import { dir, useTempDir } from './helpers/temp-dir';
import { slerpSliceRecipe } from './helpers/slerp-recipe';

let A: string; // "instruct"
let B: string; // "thinking"
let N: string; // near A: the TIES/TA base
let F: string; // far from A, its own pair: a second group
let G: string;
let counter = 0;

useTempDir('weightmix-batch-');

beforeAll(async () => {
  const pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', layers: 6, seed: 15, shards: [2, 1] });
  const near = await makeCheckpointPair({ dir: path.join(dir, 'near'), shape: 'tiny', layers: 6, seed: 15, delta: 0.01, shards: [1, 3] });
  const far = await makeCheckpointPair({ dir: path.join(dir, 'far'), shape: 'tiny', layers: 6, seed: 16, delta: 0.3 });
  [A, B, N, F, G] = [pair.instruct, pair.thinking, near.thinking, far.instruct, far.thinking];
}, 60000);

const two = (x: string, y: string, wx: unknown, wy: unknown) => ({
  merge_method: 'linear',
  models: [
    { model: x, parameters: { weight: wx } },
    { model: y, parameters: { weight: wy } },
  ],
  dtype: 'bfloat16',
});

/** A slerp of A (the base) and B over one slice of all six layers; `extra` keys follow `parameters`. */
const slerpAB = (t: unknown, extra: Record<string, unknown> = {}) => slerpSliceRecipe(A, B, 6, t, extra);

/** The mix the issue names: linear variants, a layer range, a module ablation, SLERP, TIES; plus a stack and a second group. */
function recipes(): Record<string, Record<string, unknown>> {
  return {
    'mi-0.8': two(A, B, 0.2, 0.8),
    'mi-0.45': two(A, B, 0.55, 0.45),
    // Listed the other way round: the same tensors summed in another order, so it gets jobs of its own.
    'mi-0.5-swapped': two(B, A, 0.5, 0.5),
    'mi-0.8-layers-2-5': two(A, B, [1, 1, 0.2, 0.2, 0.2, 0.2], [0, 0, 0.8, 0.8, 0.8, 0.8]),
    'without-attention': two(A, B, [{ filter: 'self_attn', value: 1 }, { value: 0.2 }], [{ filter: 'self_attn', value: 0 }, { value: 0.8 }]),
    slerp: slerpAB([{ filter: 'mlp', value: [0.2, 0.9] }, { value: 0.6 }], { dtype: 'bfloat16' }),
    'slerp-again': slerpAB(0.3),
    ties: {
      merge_method: 'ties',
      base_model: N,
      models: [
        { model: A, parameters: { density: 0.2, weight: 0.5 } },
        { model: B, parameters: { density: 0.2, weight: 0.5 } },
      ],
      dtype: 'bfloat16',
    },
    'ties-0.5': {
      merge_method: 'ties',
      base_model: N,
      models: [
        { model: A, parameters: { density: 0.5, weight: 0.5 } },
        { model: B, parameters: { density: 0.2, weight: 0.5 } },
      ],
    },
    'dare-ties': {
      merge_method: 'dare_ties',
      base_model: N,
      random_seed: 3,
      models: [
        { model: A, parameters: { density: 0.4, weight: 0.7 } },
        { model: B, parameters: { density: 0.4, weight: 0.7 } },
      ],
    },
    'task-arithmetic': {
      merge_method: 'task_arithmetic',
      base_model: N,
      models: [
        { model: A, parameters: { weight: 0.7 } },
        { model: B, parameters: { weight: 0.7 } },
      ],
      dtype: 'bfloat16',
    },
    // Ops that name their sources in params (renumbered when plans are fused), models listed out of checkpoint order.
    nearswap: { merge_method: 'nearswap', base_model: N, parameters: { t: 0.01 }, models: [{ model: B }, { model: N }] },
    'ramplus-tl': { merge_method: 'ramplus_tl', base_model: N, parameters: { epsilon: 0.01 }, models: [{ model: B }, { model: A }, { model: N }] },
    'nuslerp-rows': {
      merge_method: 'nuslerp',
      base_model: N,
      parameters: { nuslerp_flatten: false },
      models: [{ model: B, parameters: { weight: 1 } }, { model: A, parameters: { weight: 2 } }, { model: N }],
    },
    stack: { merge_method: 'passthrough', slices: [{ sources: [{ model: A, layer_range: [0, 4] }] }, { sources: [{ model: B, layer_range: [2, 6] }] }] },
    'far-pair': two(F, G, 0.4, 0.6),
  };
}

async function filesOf(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string) => {
    for (const e of await fs.promises.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(path.relative(root, p), await fs.promises.readFile(p));
    }
  };
  await walk(root);
  return out;
}

async function expectSameFiles(got: string, want: string): Promise<void> {
  const [g, w] = await Promise.all([filesOf(got), filesOf(want)]);
  expect([...g.keys()].sort()).toEqual([...w.keys()].sort());
  for (const [name, bytes] of w) {
    if (!bytes.equals(g.get(name)!)) throw new Error(`${path.join(got, name)} differs from ${path.join(want, name)}`);
  }
}

test('every output of a batch is byte for byte its recipe merged alone', async () => {
  const all = recipes();
  const singles = path.join(dir, `singles-${counter}`);
  const out = path.join(dir, `batch-${counter++}`);
  for (const [name, doc] of Object.entries(all)) await merge(parseRecipe(doc), { output: path.join(singles, name), threads: 2 });
  const progress: number[] = [];
  const stages = new Set<string>();
  const summary = await mergeBatch(
    Object.entries(all).map(([name, doc]) => ({ name, recipe: parseRecipe(doc) })),
    { output: out, threads: 2, onProgress: (p) => (p.stage === 'write' ? progress.push(p.bytesDone / p.bytesTotal) : stages.add(p.stage)) },
  );
  expect(summary.groups).toBe(2);
  expect(summary.outputs.map((o) => o.name)).toEqual(Object.keys(all));
  expect(progress[progress.length - 1]).toBe(1);
  expect(progress.every((x, i) => i === 0 || x >= progress[i - 1])).toBe(true);
  expect([...stages]).toEqual(['statistics']);
  for (const name of Object.keys(all)) await expectSameFiles(path.join(out, name), path.join(singles, name));
  expect((await fs.promises.readdir(out)).sort()).toEqual(Object.keys(all).sort());
}, 120000);

test('linear and slerp recipes with 4,096-element pieces: one write bar to 100%, never backwards, and the bytes of single merges', async () => {
  const all = recipes();
  const chosen = Object.fromEntries(['mi-0.8', 'without-attention', 'slerp', 'slerp-again'].map((n) => [n, all[n]]));
  // 4,096-element pieces: the tiny model's tensors are cut into many, so the sums' order is tested.
  const blockBytes = 16384;
  const singles = path.join(dir, `singles-${counter}`);
  const out = path.join(dir, `batch-${counter++}`);
  for (const [name, doc] of Object.entries(chosen)) await merge(parseRecipe(doc), { output: path.join(singles, name), threads: 3, blockBytes });
  const stages: string[] = [];
  const fractions: number[] = [];
  await mergeBatch(
    Object.entries(chosen).map(([name, recipe]) => ({ name, recipe })),
    {
      output: out,
      threads: 2,
      blockBytes,
      onProgress: (p) => {
        stages.push(p.stage);
        fractions.push(p.bytesDone / p.bytesTotal);
      },
    },
  );
  expect(stages).toContain('statistics');
  // The statistics passes have a bar of their own; the write bar is the one that spans every write pass.
  const writes = fractions.filter((_, i) => stages[i] === 'write');
  expect(stages.slice(stages.indexOf('write')).every((s) => s === 'write')).toBe(true);
  expect(writes[writes.length - 1]).toBe(1);
  expect(writes.every((x, i) => i === 0 || x >= writes[i - 1])).toBe(true);
  for (const name of Object.keys(chosen)) await expectSameFiles(path.join(out, name), path.join(singles, name));
}, 120000);

test('the same bytes with other threads and a small write block', async () => {
  const all = recipes();
  const want = path.join(dir, `batch-${counter++}`);
  const got = path.join(dir, `batch-${counter++}`);
  const entries = () => Object.entries(all).map(([name, doc]) => ({ name, recipe: doc }));
  await mergeBatch(entries(), { output: want, threads: 2 });
  await mergeBatch(entries(), { output: got, threads: 3, blockBytes: 16384, direct: false });
  for (const name of Object.keys(all)) await expectSameFiles(path.join(got, name), path.join(want, name));
}, 120000);

test('write blocks shrink as outputs grow, never below 64 KiB', () => {
  expect(writeBlockBytes(8 << 20, 1, 2)).toBe(8 << 20);
  expect(writeBlockBytes(8 << 20, 16, 2)).toBe(8 << 20);
  expect(writeBlockBytes(8 << 20, 17, 2)).toBe(4 << 20);
  expect(writeBlockBytes(8 << 20, 16, 16)).toBe(1 << 20);
  expect(writeBlockBytes(8 << 20, 101, 2)).toBe(1 << 20);
  expect(writeBlockBytes(8 << 20, 1000, 2)).toBe(128 << 10);
  expect(writeBlockBytes(8 << 20, 1000, 16)).toBe(64 << 10);
  expect(writeBlockBytes(12288, 1000, 16)).toBe(12288);
});

test('one output that cannot be written: none is published, nothing is left behind', async () => {
  const out = path.join(dir, `batch-${counter++}`);
  await fs.promises.mkdir(path.join(out, 'second'), { recursive: true });
  const batch = [
    { name: 'first', recipe: two(A, B, 0.2, 0.8) },
    { name: 'second', recipe: two(A, B, 0.5, 0.5) },
  ];
  await expect(mergeBatch(batch, { output: out, threads: 2 })).rejects.toThrow(/second already exists/);
  expect(await fs.promises.readdir(out)).toEqual(['second']);
  const controller = new AbortController();
  const aborted = mergeBatch(batch, {
    output: out,
    threads: 2,
    force: true,
    onProgress: () => controller.abort(),
    signal: controller.signal,
  });
  await expect(aborted).rejects.toThrow(/abort/);
  expect(await fs.promises.readdir(out)).toEqual(['second']);
  expect(await fs.promises.readdir(path.join(out, 'second'))).toEqual([]);
}, 60000);

test('a string recipe is a file path, as merge takes it: the same bytes as the parsed object; a missing file is refused', async () => {
  const file = path.join(dir, `recipe-${counter++}.yml`);
  await fs.promises.writeFile(file, JSON.stringify(two(A, B, 0.3, 0.7)));
  const byPath = path.join(dir, `batch-${counter++}`);
  const byObject = path.join(dir, `batch-${counter++}`);
  await mergeBatch([{ name: 'm', recipe: file }], { output: byPath, threads: 2 });
  await mergeBatch([{ name: 'm', recipe: two(A, B, 0.3, 0.7) }], { output: byObject, threads: 2 });
  await expectSameFiles(path.join(byPath, 'm'), path.join(byObject, 'm'));
  const missing = path.join(dir, `batch-${counter++}`);
  await expect(mergeBatch([{ name: 'm', recipe: path.join(dir, 'no-such-recipe.yml') }], { output: missing })).rejects.toThrow(/no-such-recipe\.yml/);
  expect(fs.existsSync(missing)).toBe(false);
}, 60000);

test('--part I/N: every recipe in exactly one part, whole models, the same bytes', async () => {
  const all = recipes();
  const entries = Object.entries(all).map(([name, doc]) => ({ name, recipe: doc }));
  const whole = path.join(dir, `batch-${counter++}`);
  const split = path.join(dir, `batch-${counter++}`);
  await mergeBatch(entries, { output: whole, threads: 2 });
  const names: string[][] = [];
  for (const index of [1, 2, 3]) {
    const s = await mergeBatch(entries, { output: split, threads: 2, part: `${index}/3` });
    expect(s.part).toBe(`${index}/3`);
    names.push(s.outputs.map((o) => o.name));
  }
  expect(names.every((n) => n.length > 0)).toBe(true);
  expect(names.flat().sort()).toEqual(Object.keys(all).sort());
  for (const name of Object.keys(all)) await expectSameFiles(path.join(split, name), path.join(whole, name));
  await expect(mergeBatch(entries.slice(0, 2), { output: path.join(dir, 'none'), part: '3/3' })).rejects.toThrow(/gets none of the 2 recipes/);
}, 120000);

test('refusals: duplicate names, unsafe names, an empty batch', async () => {
  const out = path.join(dir, `batch-${counter++}`);
  const r = two(A, B, 0.2, 0.8);
  await expect(
    mergeBatch(
      [
        { name: 'x', recipe: r },
        { name: 'x', recipe: r },
      ],
      { output: out },
    ),
  ).rejects.toThrow(/two recipes of the batch are named x/);
  // One folder on a case-insensitive file system.
  await expect(
    mergeBatch(
      [
        { name: 'Mi', recipe: r },
        { name: 'mi', recipe: r },
      ],
      { output: out },
    ),
  ).rejects.toThrow(/two recipes of the batch are named Mi and mi/);
  await expect(mergeBatch([{ name: '../x', recipe: r }], { output: out })).rejects.toThrow(/plain folder name/);
  await expect(mergeBatch([], { output: out })).rejects.toThrow(/at least one recipe/);
  expect(fs.existsSync(out)).toBe(false);
});

describe('the command line', () => {
  beforeAll(() => ensureCliBuilt());

  async function writeRecipes(where: string, names: string[]): Promise<string[]> {
    await fs.promises.mkdir(where, { recursive: true });
    const all = recipes();
    return Promise.all(
      names.map(async (name, i) => {
        const file = path.join(where, `${name}.yml`);
        const doc = all[name];
        await fs.promises.writeFile(file, JSON.stringify(doc) + (i % 2 ? '\n' : ''));
        return file;
      }),
    );
  }

  test('merge A.yml B.yml -o DIR writes DIR/A and DIR/B; one recipe keeps -o as the model folder', async () => {
    const where = path.join(dir, `cli-${counter++}`);
    const files = await writeRecipes(where, ['mi-0.8', 'slerp', 'ties']);
    const r = await runCli(['merge', ...files, '-o', path.join(where, 'out'), '--threads', '2', '--json'], { timeoutMs: 60000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const done = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(done.event).toBe('done');
    expect(done.outputs.map((o: { name: string }) => o.name)).toEqual(['mi-0.8', 'slerp', 'ties']);
    expect((await fs.promises.readdir(path.join(where, 'out'))).sort()).toEqual(['mi-0.8', 'slerp', 'ties']);
    const one = await runCli(['merge', files[1], '-o', path.join(where, 'single'), '--threads', '2', '-q'], { timeoutMs: 60000 });
    expect(one.status).toBe(0);
    await expectSameFiles(path.join(where, 'out', 'slerp'), path.join(where, 'single'));
  }, 120000);

  test('two recipe files with one name are a usage error', async () => {
    const where = path.join(dir, `cli-${counter++}`);
    const [file] = await writeRecipes(where, ['mi-0.8']);
    await fs.promises.mkdir(path.join(where, 'other'));
    const twin = path.join(where, 'other', 'mi-0.8.yaml');
    await fs.promises.copyFile(file, twin);
    const r = await runCli(['merge', file, twin, '-o', path.join(where, 'out')]);
    expect(expectOneLineError(r, 2)).toMatch(/named mi-0\.8/);
    // A JSON recipe's name loses .json as a YAML one's loses .yml (it wrote OUT/mi-0.8.json/).
    const json = path.join(where, 'other', 'mi-0.8.json');
    await fs.promises.copyFile(file, json);
    expect(expectOneLineError(await runCli(['merge', file, json, '-o', path.join(where, 'out')]), 2)).toMatch(/named mi-0\.8/);
    expect(fs.existsSync(path.join(where, 'out'))).toBe(false);
    // One recipe with --part splits its shards instead (recipe-parts.test.ts).
  }, 60000);

  test("a bad recipe among several is named by its file, whatever the error (the parser's, a parameter's, a variable's)", async () => {
    const where = path.join(dir, `cli-${counter++}`);
    const [good] = await writeRecipes(where, ['mi-0.8']);
    const bad = {
      'not-yaml.yml': 'merge_method: linear\nmodels:\n  - model: a\n   x: {',
      'weight-text.yml': `merge_method: linear\nmodels:\n  - model: ${A}\n    parameters: {weight: "half"}\n`,
      'unset-variable.yml': 'merge_method: linear\nmodels:\n  - model: ${WM_TEST_UNSET_MODEL}\n',
    };
    for (const [name, text] of Object.entries(bad)) {
      const file = path.join(where, name);
      await fs.promises.writeFile(file, text);
      const message = expectOneLineError(await runCli(['merge', good, file, '-o', path.join(where, 'out')]));
      expect(message.startsWith(`weightmix: error: ${file}: `)).toBe(true);
    }
    expect(fs.existsSync(path.join(where, 'out'))).toBe(false);
  }, 60000);
});
