/**
 * Hostile model folders through the real command line (a spawned `weightmix interpolate`): index
 * attacks, links and special files, mismatched models, huge claimed sizes. Every one must end with
 * exit status 1 (2 for usage), exactly one line on stderr starting `weightmix: error:`, no stack
 * trace, and nothing beside the output: no output folder, no temporary folder, no lock file.
 * (Malformed shard files: hostile-shards.test.ts.)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensorsFile, type SafetensorsDtype } from '../../lib/format/safetensors';
import {
  cachedPair,
  ensureCliBuilt,
  expectOneLineError,
  leftoversBeside,
  privateCopy,
  runCli,
  runCliInProcess,
  scratchDir,
  snapshotTree,
} from '../helpers/cli';
import { safetensorsBytes } from '../helpers/malformed';
import type { CheckpointPair } from '../../lib/fixtures/fixture';

const INDEX = 'model.safetensors.index.json';
const SHARD_1 = 'model-00001-of-00002.safetensors';
const SHARD_2 = 'model-00002-of-00002.safetensors';

let work: string;
let pair: CheckpointPair;
let caseNumber = 0;
let setup: Promise<void> | undefined;

// Concurrent tests may start before a beforeAll hook has finished: each awaits this instead.
function ready(): Promise<void> {
  setup ??= (async () => {
    ensureCliBuilt();
    work = scratchDir('hostile');
    // Instruct: 2 shards and an index; Thinking: one model.safetensors.
    pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 7 });
  })();
  return setup;
}
beforeAll(ready, 180_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** A fresh folder for one case: `<case>/…models…` and `<case>/out` as the output. */
function caseDir(): string {
  const dir = path.join(work, `case-${++caseNumber}`);
  fs.mkdirSync(dir);
  return dir;
}

/** The tiny Instruct model with its index rewritten by `edit`. */
function instructWithIndex(dir: string, edit: (index: { metadata: Record<string, unknown>; weight_map: Record<string, string> }) => void): string {
  const model = privateCopy(pair.instruct, path.join(dir, 'instruct'), [INDEX]);
  const index = JSON.parse(fs.readFileSync(path.join(model, INDEX), 'utf8'));
  edit(index);
  fs.rmSync(path.join(model, INDEX));
  fs.writeFileSync(path.join(model, INDEX), JSON.stringify(index));
  return model;
}

function mkfifo(file: string): void {
  execFileSync('mkfifo', [file]);
}

function firstTensorIn(shard: string): string {
  const index = JSON.parse(fs.readFileSync(path.join(pair.instruct, INDEX), 'utf8'));
  return Object.keys(index.weight_map).find((n) => index.weight_map[n] === shard)!;
}

/**
 * Merges `instruct` × `thinking` into `<dir>/out` and checks the failure contract. Cases that could
 * hang or escape (links, special files, paths) run in a spawned CLI; the others through the CLI's
 * `main()` in this process (`how: 'main'`), since a process each would cost the CI budget.
 */
async function expectRejected(
  dir: string,
  instruct: string,
  thinking: string,
  message: RegExp,
  { extra = [], status = 1, how = 'spawn' }: { extra?: string[]; status?: number; how?: 'spawn' | 'main' } = {},
): Promise<void> {
  const out = path.join(dir, 'out');
  const args = ['interpolate', '--instruct', instruct, '--thinking', thinking, '--lambda', '0.8', '-o', out, ...extra];
  const result = how === 'spawn' ? await runCli(args, { timeoutMs: 20_000 }) : await runCliInProcess(args);
  const line = expectOneLineError(result, status);
  expect(line).toMatch(message);
  expect(leftoversBeside(out)).toEqual([]);
}

describe('index attacks', () => {
  test.concurrent('a weight_map value with ../ is refused (it would leave the model folder)', async () => {
    await ready();
    const dir = caseDir();
    // The target exists: the refusal must come from the name, not from a missing file.
    fs.copyFileSync(path.join(pair.instruct, SHARD_2), path.join(dir, 'x.safetensors'));
    const model = instructWithIndex(dir, (ix) => (ix.weight_map[firstTensorIn(SHARD_2)] = '../x.safetensors'));
    await expectRejected(dir, model, pair.thinking, /refusing path "\.\.\/x\.safetensors"/);
  });

  test.concurrent('an absolute weight_map path is refused', async () => {
    await ready();
    const dir = caseDir();
    const target = path.join(pair.instruct, SHARD_2);
    const model = instructWithIndex(dir, (ix) => (ix.weight_map[firstTensorIn(SHARD_2)] = target));
    await expectRejected(dir, model, pair.thinking, /refusing path/);
  });

  test.concurrent('a backslash or NUL in a weight_map path is refused', async () => {
    await ready();
    const dir = caseDir();
    const model = instructWithIndex(dir, (ix) => (ix.weight_map[firstTensorIn(SHARD_2)] = '..\\x.safetensors'));
    await expectRejected(dir, model, pair.thinking, /refusing path/);
    const dir2 = caseDir();
    const model2 = instructWithIndex(dir2, (ix) => (ix.weight_map[firstTensorIn(SHARD_2)] = `${SHARD_2}\u0000.txt`));
    await expectRejected(dir2, model2, pair.thinking, /refusing path/, { how: 'main' });
  });

  test.concurrent('a shard that is a symlink leading outside the model folder is refused', async () => {
    await ready();
    const dir = caseDir();
    const outside = path.join(dir, 'elsewhere.safetensors');
    fs.copyFileSync(path.join(pair.instruct, SHARD_2), outside);
    const model = privateCopy(pair.instruct, path.join(dir, 'instruct'));
    fs.rmSync(path.join(model, SHARD_2));
    fs.symlinkSync(outside, path.join(model, SHARD_2));
    await expectRejected(dir, model, pair.thinking, /leads outside the model folder/);
  });

  test.concurrent('a sidecar (config.json, tokenizer) that is a symlink leading outside is refused', async () => {
    await ready();
    const dir = caseDir();
    const model = privateCopy(pair.thinking, path.join(dir, 'thinking'));
    fs.rmSync(path.join(model, 'tokenizer.json'));
    fs.symlinkSync('/etc/hostname', path.join(model, 'tokenizer.json'));
    await expectRejected(dir, pair.instruct, model, /leads outside the model folder/);
    const dir2 = caseDir();
    const model2 = privateCopy(pair.thinking, path.join(dir2, 'thinking'));
    fs.rmSync(path.join(model2, 'config.json'));
    fs.symlinkSync('/etc/hostname', path.join(model2, 'config.json'));
    await expectRejected(dir2, pair.instruct, model2, /leads outside the model folder/);
  });

  test.concurrent('a shard listed in the index that does not exist', async () => {
    await ready();
    const dir = caseDir();
    const model = instructWithIndex(dir, (ix) => (ix.weight_map[firstTensorIn(SHARD_2)] = 'model-00009-of-00009.safetensors'));
    await expectRejected(dir, model, pair.thinking, /model-00009-of-00009\.safetensors/);
  });

  test.concurrent('a shard that is a named pipe, a folder or a device is refused without blocking', async () => {
    await ready();
    for (const make of [mkfifo, (p: string) => fs.mkdirSync(p), (p: string) => fs.symlinkSync('/dev/zero', p)]) {
      const dir = caseDir();
      const model = privateCopy(pair.thinking, path.join(dir, 'thinking'));
      fs.rmSync(path.join(model, 'model.safetensors'));
      make(path.join(model, 'model.safetensors'));
      await expectRejected(dir, pair.instruct, model, /model\.safetensors/);
    }
  });

  test.concurrent('an index that is a named pipe is refused without blocking', async () => {
    await ready();
    const dir = caseDir();
    const model = privateCopy(pair.instruct, path.join(dir, 'instruct'), [INDEX]);
    fs.rmSync(path.join(model, INDEX));
    mkfifo(path.join(model, INDEX));
    await expectRejected(dir, model, pair.thinking, /model\.safetensors\.index\.json/);
  });

  test.concurrent('a sidecar that is a named pipe is never opened: the merge is refused with one line', async () => {
    await ready();
    const dir = caseDir();
    const model = privateCopy(pair.thinking, path.join(dir, 'thinking'));
    fs.rmSync(path.join(model, 'config.json'));
    mkfifo(path.join(model, 'config.json'));
    await expectRejected(dir, pair.instruct, model, /config\.json is not a regular file/);
  });

  test.concurrent('a sidecar that is a folder (config.json/) is refused, not dropped from the output', async () => {
    await ready();
    const dir = caseDir();
    const model = privateCopy(pair.thinking, path.join(dir, 'thinking'));
    fs.rmSync(path.join(model, 'config.json'));
    fs.mkdirSync(path.join(model, 'config.json'));
    await expectRejected(dir, pair.instruct, model, /thinking: config\.json is a folder, not a file/);
  });

  test.concurrent('a tensor listed in the index but missing from its shard', async () => {
    await ready();
    const dir = caseDir();
    const model = instructWithIndex(dir, (ix) => (ix.weight_map['model.layers.99.mlp.up_proj.weight'] = SHARD_1));
    await expectRejected(dir, model, pair.thinking, /model\.layers\.99\.mlp\.up_proj\.weight is listed in .* but not stored there/, { how: 'main' });
  });

  test.concurrent('a tensor stored in one shard but indexed under another', async () => {
    await ready();
    const dir = caseDir();
    const model = instructWithIndex(dir, (ix) => (ix.weight_map[firstTensorIn(SHARD_2)] = SHARD_1));
    await expectRejected(dir, model, pair.thinking, /but the index says/, { how: 'main' });
  });

  test.concurrent('a huge index file is refused before it is read', async () => {
    await ready();
    const dir = caseDir();
    const model = privateCopy(pair.instruct, path.join(dir, 'instruct'), [INDEX]);
    fs.truncateSync(path.join(model, INDEX), 65 << 20); // sparse: no disk or memory is spent
    await expectRejected(dir, model, pair.thinking, /implausibly large/, { how: 'main' });
  });

  test.concurrent('a deeply nested index is refused', async () => {
    await ready();
    const dir = caseDir();
    const model = privateCopy(pair.instruct, path.join(dir, 'instruct'), [INDEX]);
    fs.rmSync(path.join(model, INDEX));
    fs.writeFileSync(path.join(model, INDEX), `{"metadata":${'['.repeat(100_000)}${']'.repeat(100_000)},"weight_map":{}}`);
    await expectRejected(dir, model, pair.thinking, /model\.safetensors\.index\.json/, { how: 'main' });
  });

  test.concurrent('integers above 2^53 in the index are refused', async () => {
    await ready();
    const dir = caseDir();
    const model = privateCopy(pair.instruct, path.join(dir, 'instruct'), [INDEX]);
    const text = fs.readFileSync(path.join(model, INDEX), 'utf8').replace(/"total_size":\s*\d+/, '"total_size": 9007199254740993');
    expect(text).toContain('9007199254740993');
    fs.rmSync(path.join(model, INDEX));
    fs.writeFileSync(path.join(model, INDEX), text);
    await expectRejected(dir, model, pair.thinking, /model\.safetensors\.index\.json/, { how: 'main' });
  });

  test.concurrent('an index that is not an object, has no weight_map, or maps a tensor to a number', async () => {
    await ready();
    for (const text of ['[]', '{"metadata":{}}', '{"weight_map":{"a":1}}', '{"weight_map":{}}', 'not json', '']) {
      const dir = caseDir();
      const model = privateCopy(pair.instruct, path.join(dir, 'instruct'), [INDEX]);
      fs.rmSync(path.join(model, INDEX));
      fs.writeFileSync(path.join(model, INDEX), text);
      await expectRejected(dir, model, pair.thinking, /model\.safetensors\.index\.json/, { how: 'main' });
    }
  });

  test.concurrent('the same tensor stored in two shards of an unindexed model', async () => {
    await ready();
    const dir = caseDir();
    const model = privateCopy(pair.instruct, path.join(dir, 'instruct'));
    fs.rmSync(path.join(model, INDEX));
    fs.copyFileSync(path.join(pair.instruct, SHARD_1), path.join(model, 'model-copy.safetensors'));
    await expectRejected(dir, model, pair.thinking, /is stored twice/, { how: 'main' });
  });
});

/** A one-shard model folder from tensor specs (data: zeros unless given). */
async function smallModel(dir: string, tensors: { name: string; dtype: SafetensorsDtype; shape: number[] }[]): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const bytes = (dtype: SafetensorsDtype) => (dtype === 'F32' || dtype === 'I32' ? 4 : dtype === 'U8' || dtype === 'BOOL' ? 1 : 2);
  await writeSafetensorsFile(
    path.join(dir, 'model.safetensors'),
    tensors.map((t) => ({ ...t, data: Buffer.alloc(t.shape.reduce((n, d) => n * d, 1) * bytes(t.dtype)) })),
  );
  return dir;
}

describe('mismatched models', () => {
  test.concurrent('different tensor sets', async () => {
    await ready();
    const dir = caseDir();
    const a = await smallModel(path.join(dir, 'a'), [{ name: 'model.layers.0.mlp.up_proj.weight', dtype: 'BF16', shape: [4, 4] }]);
    const b = await smallModel(path.join(dir, 'b'), [{ name: 'model.layers.0.mlp.down_proj.weight', dtype: 'BF16', shape: [4, 4] }]);
    await expectRejected(dir, a, b, /the models hold different tensors/, { how: 'main' });
  });

  test.concurrent('the tiny Instruct model against a Thinking model with fewer layers', async () => {
    await ready();
    const dir = caseDir();
    const other = await cachedPair({ shape: 'tiny', shards: [1, 1], seed: 7, layers: 3 });
    await expectRejected(dir, pair.instruct, other.thinking, /the models hold different tensors/, { how: 'main' });
  });

  test.concurrent('different shapes', async () => {
    await ready();
    const dir = caseDir();
    const a = await smallModel(path.join(dir, 'a'), [{ name: 'w', dtype: 'BF16', shape: [4, 4] }]);
    const b = await smallModel(path.join(dir, 'b'), [{ name: 'w', dtype: 'BF16', shape: [2, 8] }]);
    await expectRejected(dir, a, b, /tensor w has shape \[4,4\] .* but \[2,8\]/, { how: 'main' });
  });

  test.concurrent('an integer tensor against a float tensor', async () => {
    await ready();
    const dir = caseDir();
    const a = await smallModel(path.join(dir, 'a'), [{ name: 'w', dtype: 'I32', shape: [4] }]);
    const b = await smallModel(path.join(dir, 'b'), [{ name: 'w', dtype: 'F32', shape: [4] }]);
    await expectRejected(dir, a, b, /tensor w is I32 in .* but F32/, { how: 'main' });
  });

  test.concurrent('--numerics mi with two float dtypes for one tensor', async () => {
    await ready();
    const dir = caseDir();
    const a = await smallModel(path.join(dir, 'a'), [{ name: 'w', dtype: 'BF16', shape: [4] }]);
    const b = await smallModel(path.join(dir, 'b'), [{ name: 'w', dtype: 'F32', shape: [4] }]);
    await expectRejected(dir, a, b, /--numerics mi needs one dtype per tensor/, { extra: ['--numerics', 'mi'], how: 'main' });
  });

  test.concurrent('a model folder that does not exist, or holds no weights', async () => {
    await ready();
    const dir = caseDir();
    await expectRejected(dir, path.join(dir, 'nowhere'), pair.thinking, /model folder not found/, { how: 'main' });
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    fs.writeFileSync(path.join(empty, 'config.json'), '{}');
    await expectRejected(dir, empty, pair.thinking, /no \.safetensors files/, { how: 'main' });
  });

  // --force replaces the target once the new model is complete: a target that is an input, or a
  // folder holding one, however it is spelled, would have the input deleted by the swap.
  test.concurrent.each([
    ['the input folder itself', (d: string) => path.join(d, 'models', 'thinking'), /the output .* is one of the inputs/],
    ['the input through a symlink to it', (d: string) => path.join(d, 'link-to-thinking'), /is one of the inputs/],
    ['the input through a symlinked parent', (d: string) => path.join(d, 'link-to-models', 'thinking'), /is one of the inputs/],
    ['the folder that holds both inputs', (d: string) => path.join(d, 'models'), /holds .*models.instruct, which is one of the inputs/],
    ['a symlink to the folder that holds them', (d: string) => path.join(d, 'link-to-models'), /holds .*, which is one of the inputs/],
    ["the folder that holds the run's working folder", (d: string) => d, /holds .*, which is one of the inputs/],
  ])('an output that is or holds an input (%s) is a usage error even with --force, and nothing is touched', async (_, target, message) => {
    await ready();
    const dir = caseDir();
    const models = path.join(dir, 'models');
    const thinking = privateCopy(pair.thinking, path.join(models, 'thinking'));
    const instruct = privateCopy(pair.instruct, path.join(models, 'instruct'));
    fs.symlinkSync(thinking, path.join(dir, 'link-to-thinking'));
    fs.symlinkSync(models, path.join(dir, 'link-to-models'));
    const before = snapshotTree(models);
    const result = await runCli(['interpolate', '--instruct', instruct, '--thinking', thinking, '--lambda', '0.8', '-o', target(dir), '--force']);
    expect(expectOneLineError(result, 2)).toMatch(message);
    expect(snapshotTree(models)).toEqual(before);
    expect(fs.readdirSync(dir).sort()).toEqual(['link-to-models', 'link-to-thinking', 'models']);
  });

  test.concurrent('merge --force refuses an output folder that holds a model of the recipe', async () => {
    await ready();
    const dir = caseDir();
    const models = path.join(dir, 'models');
    const thinking = privateCopy(pair.thinking, path.join(models, 'thinking'));
    const instruct = privateCopy(pair.instruct, path.join(models, 'instruct'));
    const recipe = path.join(dir, 'recipe.yml');
    fs.writeFileSync(
      recipe,
      `merge_method: linear\nmodels:\n  - model: ${instruct}\n    parameters: {weight: 0.2}\n  - model: ${thinking}\n    parameters: {weight: 0.8}\n`,
    );
    const before = snapshotTree(dir);
    const result = await runCli(['merge', recipe, '-o', models, '--force']);
    expect(expectOneLineError(result, 2)).toMatch(/holds .*, which is one of the inputs/);
    expect(snapshotTree(dir)).toEqual(before);
  });

  test.concurrent('an output inside an input folder is allowed: it adds a folder and changes no input file', async () => {
    await ready();
    const dir = caseDir();
    const thinking = privateCopy(pair.thinking, path.join(dir, 'thinking'));
    const before = snapshotTree(thinking);
    const result = await runCli([
      'interpolate',
      '--instruct',
      pair.instruct,
      '--thinking',
      thinking,
      '--lambda',
      '0.8',
      '-o',
      path.join(thinking, 'merged'),
      '--quiet',
    ]);
    expect(result.status).toBe(0);
    const after = snapshotTree(thinking);
    for (const [file, hash] of before) expect(after.get(file)).toBe(hash);
  });
});

describe('huge claimed sizes', () => {
  test.concurrent('a header that claims a terabyte tensor in a small file', async () => {
    await ready();
    const dir = caseDir();
    const model = path.join(dir, 'instruct');
    fs.mkdirSync(model);
    const header = `{"w":{"dtype":"BF16","shape":[549755813888],"data_offsets":[0,1099511627776]}}`;
    fs.writeFileSync(path.join(model, 'model.safetensors'), safetensorsBytes(header, 64));
    await expectRejected(dir, model, pair.thinking, /model\.safetensors/, { how: 'main' });
  });

  test.concurrent('a header length that claims more than the file holds, on a sparse 2 GB file', async () => {
    await ready();
    const dir = caseDir();
    const model = path.join(dir, 'instruct');
    fs.mkdirSync(model);
    const file = path.join(model, 'model.safetensors');
    fs.writeFileSync(file, safetensorsBytes('{}', 0, 3n << 30n));
    fs.truncateSync(file, 2 << 30); // sparse; the header is larger than the 100 MB limit anyway
    await expectRejected(dir, model, pair.thinking, /model\.safetensors/, { how: 'main' });
  });

  test.concurrent('an index whose total_size claims petabytes is not trusted (the shards decide)', async () => {
    await ready();
    const dir = caseDir();
    const model = instructWithIndex(dir, (ix) => (ix.metadata.total_size = 2 ** 52));
    const out = path.join(dir, 'out');
    const result = await runCli(['interpolate', '--instruct', model, '--thinking', pair.thinking, '--lambda', '0.8', '-o', out, '-q']);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    expect(leftoversBeside(out)).toEqual(['out']);
  });
});

describe('usage errors', () => {
  test.concurrent.each([[['--lambda', 'NaN']], [['--lambda', '0.8', '--layers', '7-2']], [['--lambda', '0.8', '--part', '3/2']]])(
    'interpolate %j: exit 2, one error line, nothing written',
    async (args) => {
      await ready();
      const dir = caseDir();
      const out = path.join(dir, 'out');
      const argv = ['interpolate', '--instruct', pair.instruct, '--thinking', pair.thinking, '-o', out, ...args];
      const result = args[1] === 'NaN' ? await runCli(argv) : await runCliInProcess(argv);
      expectOneLineError(result, 2);
      expect(leftoversBeside(out)).toEqual([]);
    },
  );
});
