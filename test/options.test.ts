/** Option values as a command line writes them: decimal numbers only, values shown as given, "1 shard file". */
import { shardFiles } from '../lib/commands/engine-summary';
import { parseLambda, parsePart, parseThreads, showValue } from '../lib/options';
import { parseLambdaList } from '../lib/interpolation/sweep';

test('λ: decimal numbers, extrapolation outside [0, 1] included', () => {
  expect(['0.8', ' 0.8 ', '1', '0', '.5', '5.', '+0.25', '-0.25', '1.3', '1e-1', '2E0'].map((v) => parseLambda(v))).toEqual([
    0.8, 0.8, 1, 0, 0.5, 5, 0.25, -0.25, 1.3, 0.1, 2,
  ]);
  expect(parseLambda(-0.25)).toBe(-0.25);
  expect(parseLambdaList('-0.5,1.5')).toEqual([-0.5, 1.5]);
});

test('λ ranges: exact decimals of the precision they are written with, never past stop, never rounded onto a neighbour', () => {
  expect(parseLambdaList('0:1:0.1')).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
  expect(parseLambdaList('0.45:0.55:0.05')).toEqual([0.45, 0.5, 0.55]);
  // Rounded to 12 decimals, 1e-13 became 0 (an exact copy of Instruct) and 0.1234567890123 lost a digit.
  expect(parseLambdaList('1e-13:1e-13:1')).toEqual([1e-13]);
  expect(parseLambdaList('0.1234567890123:0.2:1')).toEqual([0.1234567890123]);
  // Past stop by the old tolerance (1 was taken), and refused as a repeat where the points were rounded together.
  expect(parseLambdaList('0:0.99999999999:0.1')).toHaveLength(10);
  expect(parseLambdaList('0:1e-12:1e-13')).toEqual(Array.from({ length: 11 }, (_, i) => i / 1e13));
  expect(() => parseLambdaList('0:1:0.0001')).toThrow(/^lambdas 0:1:0.0001 makes 10001 models; at most 1000$/);
  expect(() => parseLambdaList('0:1:1e-300')).toThrow(/makes .+ models; at most 1000$/);
});

test('λ: hexadecimal, binary, octal, Infinity, NaN and empty values are refused, and shown as given', () => {
  for (const v of ['0x1', '0b1', '0o1', 'Infinity', '-Infinity', 'NaN', '', ' ', '1,5', '0.8x', '1e', '--1']) {
    expect(() => parseLambda(v)).toThrow(`--lambda must be a finite decimal number, got ${JSON.stringify(v)}`);
  }
  expect(() => parseLambda(NaN)).toThrow(/^--lambda must be a finite decimal number, got NaN$/);
  expect(() => parseLambda(-Infinity, '--lambdas')).toThrow(/^--lambdas must be a finite decimal number, got -Infinity$/);
  expect(() => parseLambda(undefined)).toThrow(/got undefined$/);
  expect(() => parseLambdaList('0:1:0x1')).toThrow(/^lambdas must be a finite decimal number, got "0x1"$/);
});

test('--threads: decimal digits only; NaN shown as NaN', () => {
  expect(parseThreads('4')).toBe(4);
  for (const v of ['0x2', '1e1', '2.0', ' ']) expect(() => parseThreads(v)).toThrow(`--threads must be an integer from 1 to 1024, got ${JSON.stringify(v)}`);
  expect(() => parseThreads(NaN)).toThrow(/got NaN$/);
  expect([showValue(NaN), showValue('x'), showValue(undefined), showValue({ a: 1 })]).toEqual(['NaN', '"x"', 'undefined', '{"a":1}']);
});

test('--part: I/N with 1 ≤ I ≤ N ≤ 65536, as text or as an object; anything else a usage error, not a bug', () => {
  expect(parsePart('2/8')).toEqual({ index: 2, count: 8 });
  expect(parsePart(' 65536/65536 ')).toEqual({ index: 65536, count: 65536 });
  expect(parsePart({ index: 1, count: 3 })).toEqual({ index: 1, count: 3 });
  expect(() => parsePart({ index: 1, count: 3, bogus: true })).toThrow("--part: unknown key 'bogus' (a part is {index, count}, or 'I/N')");
  expect(parsePart(undefined)).toBeUndefined();
  // 5000000000 parts once made the assignment's array throw a RangeError (an internal error).
  for (const bad of ['0/2', '3/2', '1/0', '1/65537', '1/5000000000', '1/2/3', '-1/2', 'a/b', '', { index: 1, count: 1e9 }, { index: 1.5, count: 2 }]) {
    expect(() => parsePart(bad)).toThrow(/^--part must be I\/N with 1 ≤ I ≤ N ≤ 65536 \(e\.g\. 2\/8\), got /);
  }
});

test('summaries count shard files in English', () => {
  expect([shardFiles(1), shardFiles(2), shardFiles(0)]).toEqual(['1 shard file', '2 shard files', '0 shard files']);
  // A part that got none of the shards says so, not "0 shard files" beside every tensor interpolated.
  expect([shardFiles(0, '5/5'), shardFiles(2, '1/5')]).toEqual(['no shard file (this part gets none of the shards)', '2 shard files']);
});
