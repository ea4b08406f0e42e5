/**
 * The library as a dependent sees it (issue 16): options checked like flags and worded as options,
 * callbacks that can fail a run and never outlive it, aborts shaped like the platform's, recipe
 * paths, verify's errors and coded problems. Everything is imported from the package root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  classifyTensor,
  diff,
  encodeSafetensorsHeader,
  hubEnvironment,
  interpolate,
  lambdaFolderName,
  makeCheckpointPair,
  merge,
  mergeBatch,
  openCheckpoint,
  parseRecipe,
  readRecipeFile,
  plotLayerProfile,
  plotStages,
  readSafetensorsHeader,
  renderChart,
  score,
  stages,
  sweep,
  verify,
  WeightmixError,
  writeSafetensorsFile,
  type CheckpointPair,
  type InterpolateOptions,
  type MergeProgress,
} from '../lib/index';
import { cachedPair, ensureCliBuilt, expectOneLineError, leftoversBeside, runCli, scratchDir } from './helpers/cli';

let pair: CheckpointPair;
let work: string;
let counter = 0;
const fresh = () => path.join(work, `out-${counter++}`);

beforeAll(async () => {
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 16 });
  work = scratchDir('api-contract');
}, 120_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const usage = (message: string | RegExp) =>
  expect.objectContaining({ code: 'Usage', exitCode: 2, message: typeof message === 'string' ? message : expect.stringMatching(message) });

describe('options are checked as strictly as flags, and worded as options', () => {
  const base = (): InterpolateOptions => ({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.5, output: fresh() });

  test('a misspelled key is refused with the likely meant one, before anything is read or written', async () => {
    const options = { ...base(), skipModule: 'attn' } as InterpolateOptions;
    await expect(interpolate(options)).rejects.toEqual(usage("interpolate: unknown option 'skipModule' (did you mean 'skipModules'?)"));
    expect(fs.existsSync(options.output)).toBe(false);
    await expect(sweep({ instruct: pair.instruct, thinking: pair.thinking, output: fresh(), lambdas: [0.5], lamdbas: [0.5] } as never)).rejects.toEqual(
      usage(/^sweep: unknown option 'lamdbas' \(did you mean 'lambdas'\?\)$/),
    );
    await expect(diff({ a: pair.instruct, b: pair.thinking, thread: 2 } as never)).rejects.toEqual(
      usage(/^diff: unknown option 'thread' \(did you mean 'threads'\?\)$/),
    );
    await expect(verify({ dir: pair.instruct, bogus: true } as never)).rejects.toEqual(usage(/^verify: unknown option 'bogus' \(the options are 'dir', /));
    await expect(score({ file: path.join(work, 'none.jsonl'), votesTies: 'first' } as never)).rejects.toEqual(
      usage("score: unknown option 'votesTies' (did you mean 'voteTies'?)"),
    );
    expect(() => stages([], { emergenceTreshold: 5 } as never)).toThrow(
      expect.objectContaining({ code: 'Usage', message: "stages: unknown option 'emergenceTreshold' (did you mean 'emergenceThreshold'?)" }),
    );
    const fixtureDir = fresh();
    await expect(makeCheckpointPair({ dir: fixtureDir, shape: 'tiny', shard: [1, 1] } as never)).rejects.toEqual(
      usage("makeCheckpointPair: unknown option 'shard' (did you mean 'shards'?)"),
    );
    expect(fs.existsSync(fixtureDir)).toBe(false);
  });

  test('no options, null, missing required values', async () => {
    await expect((interpolate as () => Promise<unknown>)()).rejects.toEqual(usage('interpolate(options): options must be an object, got undefined'));
    await expect(merge({ merge_method: 'linear' }, undefined as never)).rejects.toEqual(usage('merge(options): options must be an object, got undefined'));
    await expect(interpolate({ ...base(), lambda: null } as never)).rejects.toEqual(usage("interpolate: option 'lambda' is required"));
    const { output: _, ...noOutput } = base();
    await expect(interpolate(noOutput as InterpolateOptions)).rejects.toEqual(usage("interpolate: option 'output' is required"));
    await expect(interpolate({ ...base(), threads: null } as never)).rejects.toEqual(usage(/^interpolate: option 'threads' is null; leave it out/));
    await expect(interpolate({ ...base(), threads: undefined })).resolves.toMatchObject({ lambdas: [0.5] });
  });

  test('numbers as text, as a setting read from a file gives them: threads and blockBytes alike (blockBytes refused them)', async () => {
    await expect(interpolate({ ...base(), threads: '2', blockBytes: '65536' } as never)).resolves.toMatchObject({ threads: 2 });
    await expect(interpolate({ ...base(), blockBytes: '64 KiB' } as never)).rejects.toEqual(
      usage('blockBytes must be a multiple of 4096 up to 1 GiB, got "64 KiB"'),
    );
  });

  test('callbacks must be functions and signals AbortSignals', async () => {
    await expect(interpolate({ ...base(), onProgress: 'log' } as never)).rejects.toEqual(
      usage("interpolate: option 'onProgress' must be a function, got string"),
    );
    await expect(interpolate({ ...base(), signal: {} } as never)).rejects.toEqual(
      usage("interpolate: option 'signal' must be an AbortSignal, got a plain object"),
    );
    await expect(diff({ a: pair.instruct, b: pair.thinking, signal: new AbortController() } as never)).rejects.toEqual(
      usage("diff: option 'signal' must be an AbortSignal, got a AbortController"),
    );
  });

  test('wrong argument types to the format, naming and chart functions are usage errors, not TypeErrors', async () => {
    await expect(readSafetensorsHeader(5 as never)).rejects.toEqual(usage('readSafetensorsHeader: path must be a file path, got 5'));
    expect(() => encodeSafetensorsHeader(null as never)).toThrow(
      expect.objectContaining({ code: 'Usage', message: 'encodeSafetensorsHeader: tensors must be an array of {name, dtype, shape}, got null' }),
    );
    await expect((writeSafetensorsFile as (...a: unknown[]) => Promise<void>)()).rejects.toEqual(
      usage('writeSafetensorsFile: path must be a file path, got nothing'),
    );
    expect(() => classifyTensor(5 as never)).toThrow(expect.objectContaining({ code: 'Usage', message: 'classifyTensor: name must be a tensor name, got 5' }));
    await expect(renderChart(null as never, 'x.svg')).rejects.toEqual(usage('renderChart: spec must be a Vega-Lite specification object, got null'));
    await expect(plotStages(null as never, {} as never, 'x.svg')).rejects.toEqual(
      usage('plotStages: rows must be an array of metrics rows (readMetricsTable), got null'),
    );
    await expect(plotLayerProfile([], 5 as never)).rejects.toEqual(usage('plotLayerProfile: file must be a .svg or .png path, got 5'));
    expect(() => lambdaFolderName(null as never)).toThrow(
      expect.objectContaining({ code: 'Usage', message: 'lambdaFolderName: lambda must be a finite number, got null' }),
    );
    expect(() => hubEnvironment(null as never)).toThrow(
      expect.objectContaining({ code: 'Usage', message: 'hubEnvironment: env must be an object of variables, got null' }),
    );
  });

  test('YAML text given to merge, and a file named as a model, are one-line usage errors that say what to do', async () => {
    await expect(merge('merge_method: linear\nmodels: []\n', { output: fresh() })).rejects.toEqual(
      usage('merge(recipe, options): a string is a recipe file path; for YAML text, pass parseRecipe(text) instead'),
    );
    const file = path.join(work, 'not-a-model.yml');
    fs.writeFileSync(file, 'x');
    await expect(merge({ merge_method: 'linear', models: [{ model: file, parameters: { weight: 1 } }] }, { output: fresh() })).rejects.toMatchObject({
      code: 'ModelNotFound',
      message: `models[0].model: ${file} is a file, not a model folder`,
    });
  });

  test("parseRecipe's and merge's baseDir and env are checked, not thrown as TypeErrors", async () => {
    const doc = { merge_method: 'linear', models: [{ model: pair.instruct, parameters: { weight: 1 } }] };
    expect(() => parseRecipe(doc, null as never)).toThrow(
      expect.objectContaining({ code: 'Usage', message: 'parseRecipe(options): options must be an object, got null' }),
    );
    // Each names its own function (merge's named parseRecipe), and unknown keys are refused as every other front door refuses them.
    await expect(merge(doc, { output: fresh(), baseDir: 5 } as never)).rejects.toEqual(usage("merge: option 'baseDir' must be a folder path, got 5"));
    await expect(merge(doc, { output: fresh(), env: 'x' } as never)).rejects.toEqual(usage('merge: option \'env\' must be an object of variables, got "x"'));
    expect(() => parseRecipe(doc, { basedir: '.' } as never)).toThrow(usage("parseRecipe: unknown option 'basedir' (did you mean 'baseDir'?)"));
    await expect(readRecipeFile('x.yml', { envs: {} } as never)).rejects.toEqual(usage("readRecipeFile: unknown option 'envs' (did you mean 'env'?)"));
    expect(() => parseRecipe(doc, { env: 'x' } as never)).toThrow(usage('parseRecipe: option \'env\' must be an object of variables, got "x"'));
    // A parsed recipe's paths are resolved already: baseDir would be ignored.
    await expect(merge(parseRecipe(doc), { output: fresh(), baseDir: work })).rejects.toEqual(
      usage('baseDir applies to a recipe file or object; this recipe was already parsed (give baseDir to parseRecipe instead)'),
    );
    // A file's relative model paths resolve against baseDir.
    const file = path.join(work, 'relative.yml');
    fs.writeFileSync(file, `merge_method: linear\nmodels:\n  - model: ${path.relative(work, pair.instruct)}\n    parameters: {weight: 1}\n`);
    await expect(merge(file, { output: fresh(), baseDir: work })).resolves.toMatchObject({ method: 'linear' });
  });

  test('a parsed recipe changed by hand is checked again by merge and mergeBatch: refused before any tensor, not ignored or a TypeError', async () => {
    const ties = () =>
      parseRecipe({
        merge_method: 'ties',
        base_model: pair.instruct,
        parameters: { density: 0.5 },
        models: [{ model: pair.thinking, parameters: { weight: 1 } }],
      });
    const edited = (edit: (r: ReturnType<typeof ties>) => void) => {
      const r = ties();
      edit(r);
      return r;
    };
    const cases: [ReturnType<typeof ties>, string, string][] = [
      // Each of these merged silently, failed on a tensor or threw a TypeError before the check.
      [
        edited((r) => void (r.parameters.densty = 1)),
        'UnsupportedRecipe',
        "parameters: merge_method ties takes no parameter 'densty' (did you mean 'density'?)",
      ],
      [edited((r) => void (r.parameters.density = { a: 1 } as never)), 'InvalidRecipe', 'parameters.density: expected a number'],
      [edited((r) => void (r.parameters.density = NaN)), 'InvalidRecipe', 'parameters.density: NaN is not a finite number'],
      [edited((r) => void (r.base = null)), 'InvalidRecipe', 'ties needs a base_model'],
    ];
    for (const [recipe, code, message] of cases) {
      const output = fresh();
      const err = await merge(recipe, { output }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code, message: expect.stringContaining(message) });
      expect((err as Error).message).not.toContain('\n');
      expect(fs.existsSync(output)).toBe(false);
    }
    await expect(mergeBatch([{ name: 'a', recipe: cases[0][0] }], { output: fresh() })).rejects.toMatchObject({ code: 'UnsupportedRecipe' });
  });

  test('an existing output is refused before any model is opened (a statistics pass can take minutes)', async () => {
    const out = fresh();
    fs.mkdirSync(out);
    // Opening Org/Nope offline would fail with HubOffline: OutputExists comes first.
    const env = { HF_HUB_OFFLINE: '1', HF_HOME: path.join(work, 'no-hub-home') };
    await expect(merge({ merge_method: 'linear', models: [{ model: 'Org/Nope', parameters: { weight: 1 } }] }, { output: out, env })).rejects.toMatchObject({
      code: 'OutputExists',
    });
  });

  test("switches are true or false: a config string's 'false' must not replace an output", async () => {
    const out = fresh();
    fs.mkdirSync(out);
    await expect(interpolate({ ...base(), output: out, force: 'false' } as never)).rejects.toEqual(
      usage('interpolate: option \'force\' must be true or false, got "false"'),
    );
    await expect(
      merge({ merge_method: 'linear', models: [{ model: pair.instruct, parameters: { weight: 1 } }] }, { output: out, direct: 'no' } as never),
    ).rejects.toEqual(usage('merge: option \'direct\' must be true or false, got "no"'));
    expect(fs.readdirSync(out)).toEqual([]);
  });

  test('openCheckpoint(42) and a recipe that is neither a path nor an object are usage errors', async () => {
    await expect(openCheckpoint(42 as never)).rejects.toEqual(usage('openCheckpoint(dir): dir must be a model folder path, got 42'));
    await expect(merge(42 as never, { output: fresh() })).rejects.toEqual(usage(/^merge\(recipe, options\): recipe must be a recipe file path/));
  });

  test('values: the API names the option, the command line names the flag', async () => {
    await expect(interpolate({ ...base(), lambda: Number.NaN })).rejects.toEqual(usage('lambda must be a finite decimal number, got NaN'));
    await expect(interpolate({ ...base(), part: '9/8' })).rejects.toEqual(usage(/^part must be I\/N/));
    await expect(interpolate({ ...base(), modules: 'attn', skipModules: 'mlp' })).rejects.toEqual(
      usage('modules and skipModules exclude each other: give one'),
    );
    await expect(interpolate({ ...base(), layers: '0-99' })).rejects.toEqual(usage(/^layers 0-99 is outside the model's/));
    await expect(interpolate({ ...base(), output: '' })).rejects.toEqual(usage('output must be a non-empty folder path, got ""'));
    ensureCliBuilt();
    const cli = (extra: string[]) => runCli(['interpolate', '--instruct', pair.instruct, '--thinking', pair.thinking, '-o', fresh(), ...extra]);
    expect(expectOneLineError(await cli(['--lambda', 'abc']), 2)).toBe('weightmix: error: --lambda must be a finite decimal number, got "abc"');
    expect(expectOneLineError(await cli(['--lambda', '0.5', '--modules', 'attn', '--skip-modules', 'mlp']), 2)).toBe(
      'weightmix: error: --modules and --skip-modules exclude each other: give one',
    );
    expect(expectOneLineError(await cli(['--lambda', '0.5', '--part', '9/8']), 2)).toMatch(/^weightmix: error: --part must be I\/N/);
  }, 60_000);
});

describe('callbacks', () => {
  const interpolateWith = (output: string, onProgress: (p: MergeProgress) => void) =>
    interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.5, output, threads: 1, onProgress });

  test('a throwing onProgress fails the run with what it threw, and nothing is published', async () => {
    for (const when of ['first', 'last'] as const) {
      const out = fresh();
      const thrown = new Error(`progress sink failed (${when})`);
      const seen: MergeProgress[] = [];
      const run = interpolateWith(out, (p) => {
        seen.push(p);
        if (when === 'first' || p.bytesDone === p.bytesTotal) throw thrown;
      });
      await expect(run).rejects.toBe(thrown);
      expect({ when, seen: seen.length > 0, leftovers: leftoversBeside(out) }).toEqual({ when, seen: true, leftovers: [] });
    }
  });

  test("an async onProgress whose promise rejects fails the run as a throw does (it was an unhandled rejection: the process ended, leaving its temporary folder); makeCheckpointPair's too", async () => {
    const out = fresh();
    const rejected = new Error('async progress sink failed');
    const run = interpolateWith(out, async () => {
      throw rejected;
    });
    await expect(run).rejects.toBe(rejected);
    expect(leftoversBeside(out)).toEqual([]);
    // A batch's progress goes through its own wrapper: the same.
    const batchOut = fresh();
    const recipe = { merge_method: 'linear', models: [pair.instruct, pair.thinking].map((model) => ({ model, parameters: { weight: 0.5 } })) };
    const batch = mergeBatch([{ name: 'a', recipe }], {
      output: batchOut,
      threads: 1,
      onProgress: async () => {
        throw rejected;
      },
    });
    await expect(batch).rejects.toBe(rejected);
    expect(fs.existsSync(batchOut) ? fs.readdirSync(batchOut) : []).toEqual([]);
    const fixture = fresh();
    await expect(
      makeCheckpointPair({
        dir: fixture,
        shape: 'tiny',
        onProgress: async () => {
          throw rejected;
        },
      }),
    ).rejects.toBe(rejected);
    expect(fs.existsSync(path.join(fixture, 'instruct'))).toBe(false);
  });

  test('the last progress event (100%) arrives before the promise settles, and none after', async () => {
    const runs = [
      (onProgress: (p: { bytesDone: number; bytesTotal: number }) => void) => diff({ a: pair.instruct, b: pair.thinking, threads: 2, onProgress }),
      (onProgress: (p: { bytesDone: number; bytesTotal: number }) => void) =>
        interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.3, output: fresh(), threads: 2, onProgress }),
    ];
    for (const [k, run] of runs.entries()) {
      for (let i = 0; i < 10; i++) {
        let settled = false;
        let after = 0;
        let last: { bytesDone: number; bytesTotal: number } | undefined;
        await run((p) => {
          if (settled) after++;
          last = p;
        });
        settled = true;
        await new Promise((r) => setTimeout(r, 20));
        expect({ run: k, i, after, complete: last !== undefined && last.bytesDone === last.bytesTotal }).toEqual({ run: k, i, after: 0, complete: true });
      }
    }
  }, 120_000);
});

describe("aborts look like the platform's", () => {
  test("name AbortError, code Aborted, cause the signal's reason; nothing published", async () => {
    const reason = new Error('user pressed stop');
    const out = fresh();
    const e = await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.5, output: out, signal: AbortSignal.abort(reason) }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(WeightmixError);
    expect(e).toMatchObject({ name: 'AbortError', code: 'Aborted', cause: reason });
    expect(leftoversBeside(out)).toEqual([]);
    // Aborted from inside the progress callback: the run is past the engine, the publish step sees it.
    const controller = new AbortController();
    const late = fresh();
    await expect(
      interpolate({
        instruct: pair.instruct,
        thinking: pair.thinking,
        lambda: 0.5,
        output: late,
        signal: controller.signal,
        onProgress: () => controller.abort('stop'),
      }),
    ).rejects.toMatchObject({ name: 'AbortError', code: 'Aborted', cause: 'stop' });
    expect(leftoversBeside(late)).toEqual([]);
    await expect(diff({ a: pair.instruct, b: pair.thinking, signal: AbortSignal.abort(reason) })).rejects.toMatchObject({
      name: 'AbortError',
      code: 'Aborted',
      cause: reason,
    });
    await expect(verify({ dir: pair.instruct, signal: AbortSignal.abort(reason) })).rejects.toMatchObject({
      name: 'AbortError',
      code: 'Aborted',
      cause: reason,
    });
  });
});

describe('merge takes a recipe file path, as the command does', () => {
  test('a path is read as a file (relative model paths against the working directory), an object as the parsed recipe', async () => {
    const file = path.join(work, 'linear.yml');
    fs.writeFileSync(
      file,
      `merge_method: linear\nmodels:\n  - model: ${pair.instruct}\n    parameters: {weight: 0.25}\n  - model: ${pair.thinking}\n    parameters: {weight: 0.75}\n`,
    );
    const fromPath = await merge(file, { output: fresh(), threads: 2 });
    const fromObject = await merge(
      {
        merge_method: 'linear',
        models: [
          { model: pair.instruct, parameters: { weight: 0.25 } },
          { model: pair.thinking, parameters: { weight: 0.75 } },
        ],
      },
      { output: fresh(), threads: 2 },
    );
    expect(fromPath).toMatchObject({ method: 'linear', tensors: fromObject.tensors, bytes: fromObject.bytes });
    await expect(merge(path.join(work, 'nowhere.yml'), { output: fresh() })).rejects.toMatchObject({ code: 'RecipeNotFound' });
    await expect(merge(work, { output: fresh() })).rejects.toMatchObject({ code: 'RecipeNotAFile' });
  });
});

describe('verify', () => {
  test('a missing folder rejects; a damaged model resolves with coded problems; the recipe narrows by method', async () => {
    await expect(verify({ dir: path.join(work, 'nowhere') })).rejects.toMatchObject({
      code: 'ModelNotFound',
      message: expect.stringMatching(/^model folder not found: /),
    });
    const file = path.join(work, 'a-file');
    fs.writeFileSync(file, 'x');
    await expect(verify({ dir: file })).rejects.toMatchObject({ code: 'ModelNotFound', message: `${file} is not a folder: verify takes a model folder` });
    const out = fresh();
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.5, output: out });
    const report = await verify({ dir: out });
    expect(report.ok).toBe(true);
    const recipe = report.recipe!;
    expect(recipe.method === 'interpolate' ? recipe.lambda : null).toBe(0.5);
    const shard = fs.readdirSync(out).find((f) => f.endsWith('.safetensors'))!;
    fs.truncateSync(path.join(out, shard), fs.statSync(path.join(out, shard)).size - 10);
    const damaged = await verify({ dir: out });
    expect(damaged.ok).toBe(false);
    expect(damaged.problems).toEqual([{ code: 'MetadataIncompleteBuffer', message: expect.stringMatching(/data is cut short/) }]);
  });
});
