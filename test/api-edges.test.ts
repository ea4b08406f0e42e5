/**
 * Wrong values at the library's edge get a coded WeightmixError (docs/errors.md: "anything else thrown is a bug"), never a
 * TypeError or RangeError from deep inside, and nothing is written: the cases a reviewer found getting through.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as api from '../lib/index';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

useTempDir('wm-api-edges-');

let pair: { instruct: string; thinking: string };
beforeAll(async () => {
  const made = await api.makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', seed: 1 });
  pair = { instruct: made.instruct, thinking: made.thinking };
}, 60_000);

const usage = { name: 'WeightmixError', code: 'Usage', exitCode: 2 };

test('modules and skipModules of a wrong type or empty: Usage naming the option, for interpolate and sweep', async () => {
  for (const modules of [7, {}, [], [3]]) {
    const output = freshPath('out');
    await expect(api.interpolate({ ...pair, lambda: 0.5, output, modules: modules as never })).rejects.toThrow(/^modules must be /);
    await expect(api.sweep({ ...pair, lambdas: [0.5], output, skipModules: modules as never })).rejects.toMatchObject(usage);
    expect(fs.existsSync(output)).toBe(false);
  }
  await expect(api.interpolate({ ...pair, lambda: 0.5, output: freshPath('out'), modules: 7 as never })).rejects.toThrow(/^modules must be a comma list/);
});

test('score: a file that is no path is Usage; an aborted signal stops it before it reads (it looked every 4096 lines)', async () => {
  await expect(api.score({ file: 5 as never })).rejects.toMatchObject(usage);
  const file = freshPath('gen', '.jsonl');
  fs.writeFileSync(file, `${JSON.stringify({ question: 'q', response: '<think>a</think>b', correct: true })}\n`);
  const aborted = new AbortController();
  aborted.abort();
  await expect(api.score({ file, signal: aborted.signal })).rejects.toMatchObject({ code: 'Aborted', name: 'AbortError' });
});

test('stages: a row that is no object, and a mean outside [0, 100], are MalformedMetrics', () => {
  const row = { lambda: 0, benchmark: 'a', mean: 50, thinkRatio: 0, tokens: 1 };
  expect(() => api.stages([null as never])).toThrow(expect.objectContaining({ code: 'MalformedMetrics' }));
  // A path where the rows go (the command line's habit) is a usage error naming what the function takes.
  expect(() => api.stages('metrics.csv' as never)).toThrow(
    expect.objectContaining({ code: 'Usage', message: 'stages takes an array of metrics rows (readMetricsTable reads a file into one), got "metrics.csv"' }),
  );
  for (const mean of [150, -5]) expect(() => api.stages([{ ...row, mean }])).toThrow(expect.objectContaining({ code: 'MalformedMetrics' }));
  expect(api.stages([row]).stage1).toEqual([0]);
});

test('renderChart: a specification Vega-Lite cannot draw is Usage, and no file is written', async () => {
  for (const spec of [{}, { mark: 'bogus' }]) {
    const file = freshPath('chart', '.svg');
    await expect(api.renderChart(spec, file)).rejects.toMatchObject(usage);
    expect(fs.existsSync(file)).toBe(false);
  }
});

test('writeSafetensorsFile and encodeSafetensorsHeader: a malformed entry is TensorInvalidInfo, an entry that is no {name, dtype, shape(, data)} Usage', async () => {
  const ok = { name: 'a', dtype: 'F32' as const, shape: [1], data: Buffer.alloc(4) };
  const invalid = [
    { ...ok, dtype: 'X' as never },
    { ...ok, shape: [-1] },
  ];
  for (const entry of invalid) {
    const file = freshPath('bad', '.safetensors');
    await expect(api.writeSafetensorsFile(file, [entry])).rejects.toMatchObject({ code: 'TensorInvalidInfo' });
    expect(() => api.encodeSafetensorsHeader([entry])).toThrow(expect.objectContaining({ code: 'TensorInvalidInfo' }));
    expect(fs.existsSync(file)).toBe(false);
  }
  await expect(api.writeSafetensorsFile(freshPath('twice'), [ok, ok])).rejects.toMatchObject({ code: 'TensorInvalidInfo' });
  await expect(api.writeSafetensorsFile(freshPath('meta'), [ok], { x: 5 } as never)).rejects.toMatchObject({ code: 'TensorInvalidInfo' });
  await expect(api.writeSafetensorsFile(freshPath('nodata'), [{ name: 'a', dtype: 'F32', shape: [1] } as never])).rejects.toMatchObject(usage);
  expect(() => api.encodeSafetensorsHeader([null as never])).toThrow(expect.objectContaining(usage));
});

test('a path with a NUL byte is Usage for makeCheckpointPair and readSafetensorsHeader, as for the other functions', async () => {
  await expect(api.makeCheckpointPair({ dir: `${dir}/x\0`, shape: 'tiny' })).rejects.toMatchObject(usage);
  await expect(api.readSafetensorsHeader(`${dir}/a\0`)).rejects.toMatchObject(usage);
});

test('mergeBatch refuses YAML text for a recipe path, and a baseDir a parsed recipe would ignore, as merge does', async () => {
  const output = freshPath('batch');
  await expect(api.mergeBatch([{ name: 'a', recipe: 'merge_method: linear\nmodels: []' }], { output })).rejects.toMatchObject(usage);
  const recipe = api.parseRecipe(`merge_method: linear\nmodels:\n  - model: ${pair.instruct}\n  - model: ${pair.thinking}\n`);
  await expect(api.mergeBatch([{ name: 'a', recipe }], { output, baseDir: dir })).rejects.toMatchObject(usage);
  expect(fs.existsSync(output)).toBe(false);
});

test('a mergeBatch entry with a key beside name and recipe is refused (a misspelt key was dropped without a word)', async () => {
  const output = freshPath('batch-keys');
  const recipe = { merge_method: 'linear', models: [{ model: pair.instruct }, { model: pair.thinking }] };
  await expect(api.mergeBatch([{ name: 'a', recipe, output: 'b' } as never], { output })).rejects.toEqual(
    expect.objectContaining({ ...usage, message: "batch[0]: unknown key 'output' (an entry is {name, recipe})" }),
  );
  await expect(api.mergeBatch([{ name: 'a', recipes: recipe } as never], { output })).rejects.toEqual(
    expect.objectContaining({ ...usage, message: "batch[0]: unknown key 'recipes' (did you mean 'recipe'?)" }),
  );
  expect(fs.existsSync(output)).toBe(false);
});

test('a batch refuses while a --part job holds a lock on one of its outputs, as interpolate and sweep do', async () => {
  const output = freshPath('batch-parts');
  fs.mkdirSync(output);
  // pid 1 is always alive.
  fs.writeFileSync(path.join(output, '.b.part-1-of-2.weightmix.lock'), '1\n');
  const recipe = { merge_method: 'linear', models: [pair.instruct, pair.thinking].map((model) => ({ model, parameters: { weight: 0.5 } })) };
  await expect(
    api.mergeBatch(
      [
        { name: 'a', recipe },
        { name: 'b', recipe },
      ],
      { output },
    ),
  ).rejects.toMatchObject({
    code: 'OutputLocked',
    message: `part 1/2 of a --part job (pid 1) is writing ${path.join(output, 'b')}; try again once it is done`,
  });
  expect(fs.readdirSync(output)).toEqual(['.b.part-1-of-2.weightmix.lock']);
});

test('allowCrimes is a switch: a string is Usage, as for force', async () => {
  const recipe = { merge_method: 'linear', models: [{ model: pair.instruct }, { model: pair.thinking }] };
  await expect(api.merge(recipe, { output: freshPath('crimes'), allowCrimes: 'yes' as never })).rejects.toMatchObject(usage);
});

test('a WeightmixError made by the caller has the documented exit status: 2 for Usage and UnsupportedChartFormat, else 1', () => {
  expect(new api.WeightmixError('Usage', 'x').exitCode).toBe(2);
  expect(new api.WeightmixError('UnsupportedChartFormat', 'x').exitCode).toBe(2);
  expect(new api.WeightmixError('ModelNotFound', 'x').exitCode).toBe(1);
});

test('loadTokenCounter given a tokenizer.json itself: ModelNotFound saying it is a file (was a raw ENOTDIR)', async () => {
  await expect(api.loadTokenCounter(path.join(pair.instruct, 'tokenizer.json'))).rejects.toMatchObject({
    code: 'ModelNotFound',
    message: expect.stringMatching(/is a file, not a model folder/),
  });
});

test('TokenCounter.count of a non-string is Usage (a number counted as 0 tokens), and plotStages refuses an unknown option', async () => {
  const counter = await api.loadTokenCounter(pair.instruct);
  expect(counter.count('hello world')).toBeGreaterThan(0);
  for (const text of [5, null, undefined, ['a']]) {
    expect(() => counter.count(text as never)).toThrow(
      expect.objectContaining({ ...usage, message: expect.stringMatching(/^TokenCounter\.count\(text\): text must be a string, got /) }),
    );
  }
  const rows = [{ benchmark: 'a', lambda: 0, mean: 1, tokens: 2, thinkRatio: 0 }];
  const report = api.stages(rows);
  await expect(api.plotStages(rows, report, freshPath('s.svg'), { tittle: 'x' } as never)).rejects.toEqual(
    expect.objectContaining({ ...usage, message: "plotStages: unknown option 'tittle' (did you mean 'title'?)" }),
  );
  await expect(api.plotStages(rows, report, freshPath('s.svg'), { title: 5 } as never)).rejects.toMatchObject(usage);
});

test("the library's messages name its options, not the command's flags (numerics)", async () => {
  const model = async (name: string, dtype: 'BF16' | 'F32') => {
    const folder = freshPath(name);
    fs.mkdirSync(folder);
    await api.writeSafetensorsFile(path.join(folder, 'model.safetensors'), [{ name: 'w', dtype, shape: [4], data: Buffer.alloc(dtype === 'F32' ? 16 : 8) }]);
    return folder;
  };
  const [instruct, thinking] = [await model('a', 'BF16'), await model('b', 'F32')];
  await expect(api.interpolate({ instruct, thinking, lambda: 0.5, output: freshPath('out'), numerics: 'mi' })).rejects.toMatchObject({
    code: 'DtypeMismatch',
    message: expect.stringMatching(/^numerics mi needs one dtype per tensor, .*; use numerics exact$/),
  });
});

test("sweep's lambdas of a wrong type is named as such (it said 'required'); a whole run's summary has no own part key", async () => {
  await expect(api.sweep({ ...pair, lambdas: 0.5 as never, output: freshPath('sweep') })).rejects.toThrow(/^lambdas must be a list of λ values/);
  const summary = await api.interpolate({ ...pair, lambda: 0.5, output: freshPath('whole') });
  expect(Object.keys(summary)).not.toContain('part');
  const part = await api.interpolate({ ...pair, lambda: 0.5, output: freshPath('part'), part: '1/2' });
  expect(part.part).toBe('1/2');
});
