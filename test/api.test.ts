/** The library surface the README documents is what the package exports. */
import * as api from '../lib/index';

test.each(['interpolate', 'sweep', 'merge', 'diff', 'score', 'stages', 'openCheckpoint', 'readSafetensorsHeader', 'makeCheckpointPair'])(
  '%s is exported as a function',
  (name) => {
    expect(typeof (api as Record<string, unknown>)[name]).toBe('function');
  },
);

test('option errors at the API edge name the option (as the API spells it, not as a flag) and the accepted values', async () => {
  await expect(api.interpolate({ instruct: 'a', thinking: 'b', lambda: 0.5, output: 'o', numerics: 'fast' as 'exact' })).rejects.toThrow(
    /^numerics must be one of exact, mi/,
  );
  await expect(api.interpolate({ instruct: 'a', thinking: 'b', lambda: Number.NaN, output: 'o' })).rejects.toMatchObject({
    code: 'Usage',
    exitCode: 2,
    message: 'lambda must be a finite decimal number, got NaN',
  });
  await expect(api.sweep({ instruct: 'a', thinking: 'b', lambdas: [0.5, Infinity], output: 'o' })).rejects.toThrow(
    /^lambdas must be a finite decimal number, got Infinity$/,
  );
  await expect(api.interpolate({ instruct: 'a', thinking: 'b', lambda: 0.5, output: 'o', threads: 0 })).rejects.toThrow(
    /^threads must be an integer from 1 to 1024/,
  );
  await expect(api.sweep({ instruct: 'a', thinking: 'b', lambdas: '0:1:0', output: 'o' })).rejects.toThrow(/step > 0/);
});

test('sweep folder names keep two decimals at least and more when needed', () => {
  expect([0, 0.8, 0.125, 1, 0.05].map(api.lambdaFolderName)).toEqual(['lambda-0.00', 'lambda-0.80', 'lambda-0.125', 'lambda-1.00', 'lambda-0.05']);
  // Past twelve decimals the name is the shortest text that reads back as λ, not a rounded one that hides it.
  const fine = [1e-13, 0.1234567890123, -2.5e-14, 1e21];
  expect(fine.map(api.lambdaFolderName)).toEqual(['lambda-1e-13', 'lambda-0.1234567890123', 'lambda--2.5e-14', 'lambda-1e+21']);
  for (const x of [...fine, 0.8, 0.125, 0.3 + 0.6]) expect(Number(api.lambdaFolderName(x).slice('lambda-'.length))).toBe(x);
  expect(api.parseLambdaList('0:1:0.25')).toEqual([0, 0.25, 0.5, 0.75, 1]);
  expect(api.parseLambdaList('0:1:0.1')).toHaveLength(11);
  expect(() => api.parseLambdaList('0.2,0.2')).toThrow(/repeats/);
});
