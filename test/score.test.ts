import * as fs from 'fs';
import * as path from 'path';
import { WeightmixError } from '../lib/errors';
import { parseKList, passAtK, score, voteAtK } from '../lib/analysis/score';
import { FIELD_PRESETS, parseFieldAssignments, resolveFields } from '../lib/analysis/score-fields';
import { runCommand } from './helpers/command';
import { expectOneLineError, runCli } from './helpers/cli';
import { register } from '../lib/commands/score';
import { dir as tmp, useTempDir } from './helpers/temp-dir';

const FIXTURES = path.join(__dirname, 'fixtures/analysis');
const fixture = (name: string) => path.join(FIXTURES, name);

useTempDir('weightmix-score-');

function writeJsonl(name: string, lines: (string | object)[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

/** Pass@k by brute force: the share of all k-subsets of n samples (the first c correct) holding a correct one. */
function bruteForcePassAtK(n: number, c: number, k: number): number {
  let hit = 0;
  let total = 0;
  const choose = (start: number, left: number, anyCorrect: boolean): void => {
    if (left === 0) {
      total++;
      if (anyCorrect) hit++;
      return;
    }
    for (let i = start; i <= n - left; i++) choose(i + 1, left - 1, anyCorrect || i < c);
  };
  choose(0, k, false);
  return hit / total;
}

function binomial(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i);
  return r;
}

async function expectScoreError(file: string, pattern: RegExp, options: object = {}): Promise<WeightmixError> {
  let caught: unknown;
  try {
    await score({ file, ...options });
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(WeightmixError);
  const err = caught as WeightmixError;
  expect(err.message).not.toContain('\n');
  expect(err.message).toMatch(pattern);
  return err;
}

describe('passAtK (Chen et al. 2021 unbiased estimator)', () => {
  test('k = n is 1 when any sample is correct and 0 when none is', () => {
    for (const n of [1, 2, 8, 64]) {
      expect(passAtK(n, 0, n)).toBe(0);
      for (const c of [1, Math.ceil(n / 2), n]) expect(passAtK(n, c, n)).toBe(1);
    }
  });

  test('c = 0 gives 0 and c = n gives 1 for every k', () => {
    for (const n of [1, 5, 64]) {
      for (let k = 1; k <= n; k++) {
        expect(passAtK(n, 0, k)).toBe(0);
        expect(passAtK(n, n, k)).toBe(1);
      }
    }
  });

  test('k = 1 is the plain accuracy c/n', () => {
    for (let c = 0; c <= 64; c++) expect(passAtK(64, c, 1)).toBeCloseTo(c / 64, 14);
  });

  test('equals brute-force enumeration over all k-subsets for every n ≤ 8', () => {
    for (let n = 1; n <= 8; n++) {
      for (let c = 0; c <= n; c++) {
        for (let k = 1; k <= n; k++) expect(passAtK(n, c, k)).toBeCloseTo(bruteForcePassAtK(n, c, k), 12);
      }
    }
  });

  test('equals the closed form 1 − C(n−c,k)/C(n,k) computed with exact integers at n = 64', () => {
    for (const c of [1, 3, 10, 32, 63]) {
      for (const k of [1, 2, 8, 16, 32, 64]) {
        const exact = 1 - Number(binomial(64 - c, k)) / Number(binomial(64, k));
        expect(passAtK(64, c, k)).toBeCloseTo(exact, 12);
      }
    }
  });

  test('stays finite where the binomials overflow a double (n = 2000)', () => {
    // 1 − C(1999,1000)/C(2000,1000) = 1 − 1000/2000
    expect(passAtK(2000, 1, 1000)).toBeCloseTo(0.5, 12);
    expect(Number.isFinite(passAtK(2000, 7, 1500))).toBe(true);
  });

  test('rejects k > n and invalid arguments', () => {
    expect(() => passAtK(8, 2, 9)).toThrow(/Pass@9 needs at least 9 samples per question, got 8/);
    expect(() => passAtK(8, 9, 1)).toThrow(WeightmixError);
    expect(() => passAtK(8, 2, 0)).toThrow(WeightmixError);
    expect(() => passAtK(8, 1.5, 1)).toThrow(WeightmixError);
  });
});

describe('voteAtK (majority of extracted answers)', () => {
  const s = (answer: string | null, correct: boolean) => ({ answer, correct });

  test('the most frequent answer decides', () => {
    expect(voteAtK([s('4', false), s('3', true), s('3', true)], 3).value).toBe(1);
    expect(voteAtK([s('3', true), s('4', false), s('4', false)], 3).value).toBe(0);
  });

  test('only the first k samples vote', () => {
    const samples = [s('4', false), s('4', false), s('3', true), s('3', true), s('3', true)];
    expect(voteAtK(samples, 2).value).toBe(0);
    expect(voteAtK(samples, 5).value).toBe(1);
  });

  test('ties: expected = share of correct tied answers; first = the tied answer sampled first', () => {
    const samples = [s('b', false), s('a', true), s('c', false), s('a', true), s('b', false), s('c', false)];
    expect(voteAtK(samples, 6, 'expected').value).toBeCloseTo(1 / 3, 15);
    expect(voteAtK(samples, 6, 'first').value).toBe(0);
    expect(voteAtK([s('a', true), s('b', false)], 2, 'first').value).toBe(1);
    expect(voteAtK([s('a', true), s('b', false)], 2, 'expected').value).toBe(0.5);
  });

  test('samples without an answer abstain; no answers at all is a wrong vote', () => {
    expect(voteAtK([s(null, true), s(null, true), s('7', true)], 3).value).toBe(1);
    expect(voteAtK([s(null, true), s(null, true)], 2).value).toBe(0);
  });

  test('flags a winning answer graded both ways and lets most of its grades decide', () => {
    const v = voteAtK([s('x', true), s('x', true), s('x', false)], 3);
    expect(v).toEqual({ value: 1, inconsistent: true });
  });

  test('rejects k > n', () => {
    expect(() => voteAtK([s('a', true)], 2)).toThrow(/Vote@2 needs at least 2 samples/);
  });
});

describe('score on generations JSONL', () => {
  test('computes Think #R, Token #N, Mean@n, Pass@k and Vote@k per benchmark', async () => {
    const report = await score({ file: fixture('generations.jsonl'), k: [1, 2] });
    expect(report.benchmarks.map((b) => b.benchmark)).toEqual(['math', 'qa']);
    const [math, qa] = report.benchmarks;
    expect(math).toMatchObject({ questions: 2, samples: 8, samplesPerQuestion: { min: 4, max: 4 }, tokensSource: 'field', inconsistentVotes: 0 });
    expect(math.thinkRatio).toBeCloseTo(62.5, 12); // 5 of 8 responses contain </think>
    expect(math.tokens).toBeCloseTo(15, 12); // (10+20+30+40 + 4×5) / 8
    expect(math.mean).toBeCloseTo(50, 12); // q1 3/4, q2 1/4
    expect(math.passAtK['1']).toBeCloseTo(50, 12);
    expect(math.passAtK['2']).toBeCloseTo(75, 12); // q1 1, q2 1 − C(3,2)/C(4,2) = 0.5
    // Vote@1 by sample index (the file lists q1 out of order): q1 '42' right, q2 '7' wrong.
    expect(math.voteAtK!['1']).toBeCloseTo(50, 12);
    // Vote@2: q1 '42' vs '41' tie → 1/2; q2 '7' vs '8', both wrong → 0.
    expect(math.voteAtK!['2']).toBeCloseTo(25, 12);
    expect(qa).toMatchObject({ questions: 1, samples: 2, thinkRatio: 0, tokens: 6, mean: 100, passAtK: { 1: 100, 2: 100 }, voteAtK: { 1: 100, 2: 100 } });
  });

  test('default k is 1 and n for each benchmark; Vote@n normalises answers by trimming', async () => {
    const report = await score({ file: fixture('generations.jsonl') });
    const [math, qa] = report.benchmarks;
    expect(math.k).toEqual([1, 4]);
    expect(qa.k).toEqual([1, 2]);
    expect(math.passAtK['4']).toBe(100);
    // Vote@4: q1 '42' ×3 (one given as the number 42) right; q2 '8' ×2 (one as ' 8 ') wrong.
    expect(math.voteAtK!['4']).toBeCloseTo(50, 12);
  });

  test('a benchmark of 130,000 questions (a spread of one argument per question overflowed the stack)', async () => {
    const file = writeJsonl(
      'many.jsonl',
      Array.from({ length: 130_000 }, (_, i) => ({ question_id: i, correct: i % 4 === 0 })),
    );
    const [b] = (await score({ file })).benchmarks;
    expect(b).toMatchObject({ questions: 130_000, samples: 130_000, samplesPerQuestion: { min: 1, max: 1 }, k: [1] });
    expect(b.mean).toBeCloseTo(25, 12);
  });

  test('k as the library takes it is each k once, ascending, as --k gives it; an empty benchmark name is refused', async () => {
    const given = await score({ file: fixture('generations.jsonl'), k: [2, 1, 2] });
    const sorted = await score({ file: fixture('generations.jsonl'), k: [1, 2] });
    expect(given).toEqual(sorted);
    await expect(score({ file: fixture('generations.jsonl'), benchmark: '' })).rejects.toMatchObject({
      code: 'Usage',
      message: 'benchmark must be a non-empty name, got ""',
    });
  });

  test("voteTies 'first' takes the tied answer sampled first", async () => {
    const report = await score({ file: fixture('generations.jsonl'), k: [2], voteTies: 'first' });
    expect(report.benchmarks[0].voteAtK!['2']).toBeCloseTo(50, 12);
  });

  test('vllm preset: one CompletionOutput per line, token ids counted', async () => {
    const report = await score({ file: fixture('generations-vllm.jsonl'), preset: 'vllm', k: [1, 2] });
    expect(report.fields).toEqual(FIELD_PRESETS.vllm);
    const [b] = report.benchmarks;
    expect(b.benchmark).toBe('generations-vllm');
    expect(b).toMatchObject({ questions: 2, samples: 4, thinkRatio: 75, tokens: 4, mean: 50 });
    expect(b.passAtK).toEqual({ 1: 50, 2: 100 });
    expect(b.voteAtK).toEqual({ 1: 50, 2: 75 });
  });

  test('opencompass preset: array-valued details expand into one sample each', async () => {
    const report = await score({ file: fixture('generations-opencompass.jsonl'), preset: 'opencompass', benchmark: 'aime25' });
    const [b] = report.benchmarks;
    expect(b).toMatchObject({ benchmark: 'aime25', questions: 2, samples: 6, tokens: null, tokensSource: 'missing', k: [1, 3] });
    expect(b.thinkRatio).toBeCloseTo((100 * 5) / 6, 12);
    expect(b.mean).toBeCloseTo(50, 12);
    expect(b.passAtK['3']).toBe(100);
    expect(b.voteAtK).toEqual({ 1: 100, 3: 50 }); // the gold 'answer' field is not the vote: 'pred' is
    const two = await score({ file: fixture('generations-opencompass.jsonl'), preset: 'opencompass', k: [2] });
    expect(two.benchmarks[0].passAtK['2']).toBeCloseTo((100 * (1 + 2 / 3)) / 2, 12);
  });

  test('field overrides accept dotted paths and numeric array indices', async () => {
    const file = writeJsonl('nested.jsonl', [
      { meta: { id: 'a', bench: 'gsm' }, outputs: [{ text: '</think>1', n: 3 }], grade: { ok: true }, pred: '1' },
      { meta: { id: 'a', bench: 'gsm' }, outputs: [{ text: '2', n: 5 }], grade: { ok: false }, pred: '2' },
    ]);
    const fields = parseFieldAssignments([
      'question=meta.id',
      'benchmark=meta.bench',
      'response=outputs.0.text',
      'tokens=outputs.0.n',
      'correct=grade.ok',
      'answer=pred',
    ]);
    const report = await score({ file, fields });
    expect(report.fields.sample).toBe('sample_index');
    expect(report.benchmarks[0]).toMatchObject({ benchmark: 'gsm', questions: 1, samples: 2, thinkRatio: 50, tokens: 4, mean: 50 });
  });

  test('Token #N is reported missing rather than guessed; --whitespace-tokens counts words, labelled', async () => {
    const file = writeJsonl('notokens.jsonl', [
      { question_id: 'q', response: 'one two  three', correct: true },
      { question_id: 'q', response: ' four\nfive ', correct: false },
    ]);
    const missing = await score({ file });
    expect(missing.benchmarks[0]).toMatchObject({ tokens: null, tokensSource: 'missing', voteAtK: null });
    const words = await score({ file, whitespaceTokens: true });
    expect(words.benchmarks[0]).toMatchObject({ tokens: 2.5, tokensSource: 'whitespace' });
  });

  test('Think #R is null when no record has a response', async () => {
    const file = writeJsonl('noresponse.jsonl', [{ question_id: 'q', correct: true, num_tokens: 3 }]);
    const report = await score({ file });
    expect(report.benchmarks[0]).toMatchObject({ thinkRatio: null, tokens: 3, samples: 1 });
  });

  test('records without a sample index are ordered as they appear', async () => {
    const file = writeJsonl('noindex.jsonl', [
      { question_id: 'q', correct: false, answer: 'x' },
      { question_id: 'q', correct: true, answer: 'y' },
    ]);
    const report = await score({ file, k: [1] });
    expect(report.benchmarks[0].voteAtK!['1']).toBe(0);
  });
});

describe('score rejects malformed generations with one line naming file and line', () => {
  const good = { question_id: 'q', sample_index: 0, response: 'r', correct: true, num_tokens: 1, answer: 'a' };

  test('bad JSON', async () => {
    const file = writeJsonl('badjson.jsonl', [good, { ...good, sample_index: 1 }, '{"question_id": "q", ']);
    const err = await expectScoreError(file, /badjson\.jsonl:3: not valid JSON/);
    expect(err.code).toBe('MalformedGenerations');
  });

  test('a line that is not an object', async () => {
    await expectScoreError(writeJsonl('array.jsonl', [good, '[1, 2]']), /array\.jsonl:2: expected a JSON object/);
  });

  test('missing required fields, with the option that maps them (the library its fields option, the command its --field flag)', async () => {
    const { correct: _c, ...noCorrect } = good;
    const file = writeJsonl('nocorrect.jsonl', [good, { ...noCorrect, sample_index: 1 }]);
    await expectScoreError(file, /nocorrect\.jsonl:2: missing field 'correct' \(correct\); map it with fields: \{ correct: 'KEY' \}$/);
    expect(expectOneLineError(await runCli(['score', file]))).toMatch(/map it with --field correct=KEY$/);
    const { question_id: _q, ...noQuestion } = good;
    await expectScoreError(writeJsonl('noq.jsonl', [noQuestion]), /noq\.jsonl:1: missing field 'question_id'/);
  });

  test('wrong types', async () => {
    await expectScoreError(
      writeJsonl('t1.jsonl', [{ ...good, correct: 'yes' }]),
      /t1\.jsonl:1: field 'correct' \(correct\) must be true\/false or 1\/0, got "yes"/,
    );
    await expectScoreError(
      writeJsonl('t2.jsonl', [good, { ...good, sample_index: 1, num_tokens: 'many' }]),
      /t2\.jsonl:2: field 'num_tokens' \(tokens\) must be a non-negative integer/,
    );
    await expectScoreError(writeJsonl('t3.jsonl', [{ ...good, response: 42 }]), /t3\.jsonl:1: field 'response' \(response\) must be a string/);
    await expectScoreError(
      writeJsonl('t4.jsonl', [{ ...good, sample_index: -1 }]),
      /t4\.jsonl:1: field 'sample_index' \(sample\) must be a non-negative integer/,
    );
    await expectScoreError(
      writeJsonl('t5.jsonl', [{ ...good, question_id: { id: 1 } }]),
      /t5\.jsonl:1: field 'question_id' \(question\) must be a string or number/,
    );
    await expectScoreError(writeJsonl('t6.jsonl', [{ ...good, answer: ['a'] }]), /t6\.jsonl:1: field 'answer' \(answer\) must be a string, number or null/);
  });

  test('line numbers count blank lines', async () => {
    const file = writeJsonl('blank.jsonl', [good, '', '   ', { ...good, sample_index: 1, correct: 2 }]);
    await expectScoreError(file, /blank\.jsonl:4: /);
  });

  test('a repeated sample of the same question', async () => {
    await expectScoreError(writeJsonl('dup.jsonl', [good, good]), /dup\.jsonl:2: sample 0 of question 'q' \(dup\) already appeared at line 1/);
  });

  test('an optional field present in some records only', async () => {
    const { num_tokens: _t, ...noTokens } = good;
    await expectScoreError(
      writeJsonl('mixed.jsonl', [good, { ...noTokens, sample_index: 1 }]),
      /mixed\.jsonl:2: field 'num_tokens' \(tokens\) is missing here but present at line 1/,
    );
  });

  test('array-valued records whose per-sample arrays differ in length', async () => {
    const file = writeJsonl('multi.jsonl', [{ example_abbr: 'a', correct: [true, false], prediction: ['x'], pred: ['1', '2'] }]);
    await expectScoreError(file, /multi\.jsonl:1: field 'prediction' \(response\) must be an array of 2 values/, { preset: 'opencompass' });
  });

  test('k larger than the samples of a question', async () => {
    await expectScoreError(fixture('generations.jsonl'), /k=4 exceeds the 2 samples of question '3' in benchmark 'qa'/, { k: [1, 4] });
  });

  test("an aborted signal stops the reading (the command's Ctrl-C), not only a hub tokenizer download", async () => {
    const lines = Array.from({ length: 10_000 }, (_, i) => JSON.stringify({ question_id: `q${i}`, sample: 0, correct: true, response: 'x' }));
    const file = writeJsonl('many.jsonl', lines);
    await expect(score({ file, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'Aborted' });
  });

  test('an empty file, a missing file and a folder', async () => {
    await expectScoreError(writeJsonl('empty.jsonl', ['']), /empty\.jsonl: no records/);
    await expectScoreError(path.join(tmp, 'nope.jsonl'), /cannot read generations file/);
    expect((await expectScoreError(tmp, /generations path '.*' is not a file/)).code).toBe('NotAFile');
  });
});

describe('score options', () => {
  test('parseKList accepts comma-separated positive integers, sorted and deduplicated', () => {
    expect(parseKList('64, 1,8,8')).toEqual([1, 8, 64]);
    for (const bad of ['', '0', '1,,2', 'a', '1.5', '-1']) expect(() => parseKList(bad)).toThrow(/--k expects/);
  });

  test('parseFieldAssignments names the accepted fields', () => {
    expect(parseFieldAssignments(['question=prompt_id', 'correct=is_correct'])).toEqual({ question: 'prompt_id', correct: 'is_correct' });
    expect(() => parseFieldAssignments(['prompt=id'])).toThrow(/NAME one of question, sample, response, correct, tokens, answer, benchmark/);
    expect(() => parseFieldAssignments(['question'])).toThrow(WeightmixError);
    expect(() => parseFieldAssignments(['question='])).toThrow(WeightmixError);
  });

  test('resolveFields layers overrides over a preset', () => {
    expect(resolveFields('opencompass', { tokens: 'len' })).toEqual({ ...FIELD_PRESETS.opencompass, tokens: 'len' });
    expect(() => resolveFields('lm-eval' as never)).toThrow(/preset must be one of default, vllm, opencompass/);
  });
});

describe('weightmix score (command)', () => {
  const run = (args: string[]) => runCommand(register, ['score', ...args]);

  test('--json prints the report', async () => {
    const report = JSON.parse(await run([fixture('generations.jsonl'), '--k', '1,2', '--json']));
    expect(report.benchmarks[0].passAtK).toEqual({ 1: 50, 2: 75 });
  });

  test('prints a table with one row per benchmark and notes on what is missing', async () => {
    const out = await run([fixture('generations-opencompass.jsonl'), '--preset', 'opencompass', '--benchmark', 'aime25']);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^benchmark\s+questions\s+samples\s+Think #R\s+Token #N\s+Mean@n\s+Pass@1\s+Pass@3\s+Vote@1\s+Vote@3$/);
    expect(lines[2]).toMatch(/^aime25\s+2\s+6 \(3\/q\)\s+83\.3\s+-\s+50\.0\s+50\.0\s+100\.0\s+100\.0\s+50\.0$/);
    expect(out).toContain("note: Token #N: no token count field ('num_tokens')");
  });

  test('--field maps custom names', async () => {
    const file = writeJsonl('custom.jsonl', [
      { prompt_id: 'p', is_correct: true, output: 'a' },
      { prompt_id: 'p', is_correct: false, output: 'b' },
    ]);
    const report = JSON.parse(await run([file, '--field', 'question=prompt_id', '--field', 'correct=is_correct', '--field', 'response=output', '--json']));
    expect(report.benchmarks[0]).toMatchObject({ benchmark: 'custom', mean: 50, questions: 1 });
  });

  test('bad options are usage errors', async () => {
    await expect(run([fixture('generations.jsonl'), '--k', '0'])).rejects.toMatchObject({ code: 'Usage', exitCode: 2 });
    await expect(run([fixture('generations.jsonl'), '--preset', 'lm-eval'])).rejects.toThrow(/--preset expects one of default, vllm, opencompass/);
    await expect(run([fixture('generations.jsonl'), '--vote-ties', 'random'])).rejects.toMatchObject({ code: 'Usage' });
  });
});
