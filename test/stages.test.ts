import * as fs from 'fs';
import * as path from 'path';
import { WeightmixError } from '../lib/errors';
import { parseMetricsCsv, parseMetricsJson, readMetricsTable, type MetricsRow } from '../lib/analysis/metrics-table';
import { formatLambda, stages } from '../lib/analysis/stages';
import { runCommand } from './helpers/command';
import { register } from '../lib/commands/stages';
import { dir as tmp, useTempDir } from './helpers/temp-dir';

const PAPER_FIXTURE = path.join(__dirname, 'fixtures/analysis/qwen3-4b-interpolation.csv');
const PAPER_SHARED = path.join(__dirname, '../../shared/paper/qwen3-4b-interpolation.csv');
const PAPER_STAGES = { stage1: [0, 0.2], stage2: [0.4, 0.45, 0.5, 0.55, 0.6], stage3: [0.8, 1.0] };

let paper: MetricsRow[];

useTempDir('weightmix-stages-');

beforeAll(async () => {
  paper = await readMetricsTable(PAPER_FIXTURE);
});

function write(name: string, text: string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
}

/** Rows from [λ, Think #R, Mean@k, Token #N] points per benchmark. */
function table(series: Record<string, [number, number, number, number][]>): MetricsRow[] {
  return Object.entries(series).flatMap(([benchmark, points]) =>
    points.map(([lambda, thinkRatio, mean, tokens]) => ({ benchmark, lambda, thinkRatio, mean, tokens })),
  );
}

const stagesOf = (r: { stage1: number[]; stage2: number[]; stage3: number[] }) => ({ stage1: r.stage1, stage2: r.stage2, stage3: r.stage3 });

async function expectReadError(file: string, pattern: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await readMetricsTable(file);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(WeightmixError);
  expect((caught as WeightmixError).code).toMatch(/MalformedMetrics|FileNotFound/);
  expect((caught as Error).message).not.toContain('\n');
  expect((caught as Error).message).toMatch(pattern);
}

describe("the paper's Qwen3-4B table (Table 2)", () => {
  test('reproduces the paper’s stages exactly: [0, 0.4), [0.4, 0.6], (0.6, 1]', () => {
    const report = stages(paper);
    expect(stagesOf(report)).toEqual(PAPER_STAGES);
    expect(report).toMatchObject({ emergence: 0.4, saturation: 0.6, recommended: 0.6, mostAccurate: 0.8, warnings: [] });
    expect(report.benchmarks).toEqual(['aime25', 'ifeval', 'gpqa_diamond']);
  });

  (fs.existsSync(PAPER_SHARED) ? test : test.skip)(
    'the shared copy beside the repository gives the same stages and matches the fixture byte for byte',
    async () => {
      expect(fs.readFileSync(PAPER_SHARED, 'utf8')).toBe(fs.readFileSync(PAPER_FIXTURE, 'utf8'));
      expect(stagesOf(stages(await readMetricsTable(PAPER_SHARED)))).toEqual(PAPER_STAGES);
    },
  );

  test('the explanation is one paragraph naming the boundaries and the recommendation', () => {
    const { explanation } = stages(paper);
    expect(explanation).not.toContain('\n');
    expect(explanation).toContain('Stage 1 (Instruct-dominated, no explicit thinking): λ 0.0, 0.2');
    expect(explanation).toContain('starts at λ=0.4, the first λ where Think #R leaves zero (highest 4.0%)');
    expect(explanation).toContain('ends at λ=0.6, the first λ where every benchmark reaches 99% (lowest 99.6%)');
    expect(explanation).toContain('Recommended λ=0.6: the highest Mean@k in Stage 2 (74.4%');
    expect(explanation).toContain('The most accurate λ overall is 0.8 (Stage 3, 77.9% vs 74.4%)');
  });

  test('per-λ summaries aggregate Think #R, Mean@k and Token #N over benchmarks', () => {
    const at = stages(paper).lambdas.find((l) => l.lambda === 0.4)!;
    expect(at.stage).toBe(2);
    expect(at.thinkRatio).toEqual({ min: 1.4, max: 4.0, mean: expect.closeTo((1.4 + 1.6 + 4.0) / 3, 12) });
    expect(at.mean).toBeCloseTo((55.8 + 70.2 + 61.3) / 3, 12);
    expect(at.tokens).toBeCloseTo(Math.cbrt(12448 * 6492 * 5634), 6);
  });

  test('the result holds for any emergence threshold in [0, 4) % and saturation threshold in (91.6, 99.6] %', () => {
    for (const emergenceThreshold of [0, 0.5, 1, 2, 3.9]) {
      for (const saturationThreshold of [91.7, 95, 99, 99.6]) {
        expect(stagesOf(stages(paper, { emergenceThreshold, saturationThreshold }))).toEqual(PAPER_STAGES);
      }
    }
    // Just outside those ranges the boundaries move, so the claim is tight, not vacuous.
    expect(stages(paper, { emergenceThreshold: 4 }).emergence).toBe(0.45);
    expect(stages(paper, { saturationThreshold: 99.7 }).saturation).toBe(0.8);
    expect(stages(paper, { saturationThreshold: 91.6 }).saturation).toBe(0.55);
  });

  test('one benchmark alone gives the same stages', () => {
    for (const b of ['aime25', 'ifeval', 'gpqa_diamond']) {
      const report = stages(paper.filter((r) => r.benchmark === b));
      expect(stagesOf(report)).toEqual(PAPER_STAGES);
      expect(report.recommended).toBe(0.6);
    }
  });

  test('row order does not matter', () => {
    const shuffled = [...paper].reverse().sort((a, b) => (a.benchmark < b.benchmark ? -1 : 1));
    const report = stages(shuffled);
    expect(stagesOf(report)).toEqual(PAPER_STAGES);
    expect(report).toMatchObject({ emergence: 0.4, saturation: 0.6, recommended: 0.6, mostAccurate: 0.8 });
    expect(report.lambdas.map((l) => l.lambda)).toEqual([0, 0.2, 0.4, 0.45, 0.5, 0.55, 0.6, 0.8, 1]);
  });

  test('missing cells: the λ is read from the other benchmarks and the gap is reported', () => {
    const rows = paper.filter((r) => !(r.benchmark === 'ifeval' && r.lambda === 0.45));
    const report = stages(rows);
    expect(stagesOf(report)).toEqual(PAPER_STAGES);
    expect(report.warnings).toEqual(['λ=0.45 has no row for ifeval; its Think #R is read from the other benchmarks']);
  });

  test('a λ missing from the sweep leaves the others in their stages', () => {
    const report = stages(paper.filter((r) => r.lambda !== 0.5 && r.lambda !== 0.2));
    expect(stagesOf(report)).toEqual({ stage1: [0], stage2: [0.4, 0.45, 0.55, 0.6], stage3: [0.8, 1.0] });
  });

  test('a sweep that stops before saturation has no Stage 3', () => {
    const report = stages(paper.filter((r) => r.lambda <= 0.55));
    expect(stagesOf(report)).toEqual({ stage1: [0, 0.2], stage2: [0.4, 0.45, 0.5, 0.55], stage3: [] });
    expect(report.saturation).toBeNull();
    expect(report.recommended).toBe(0.55);
    expect(report.explanation).toContain('no λ reaches 99% on every benchmark, so there is no Stage 3');
  });

  test('a table whose Token #N is 0 (no token counts) states the values instead of a ratio (×NaN)', () => {
    const rows = parseMetricsCsv('benchmark,lambda,mean,tokens,think_ratio\na,0,50,0,0\na,0.5,60,0,50\na,0.8,70,0,100\na,1,75,0,100\n', 'z.csv');
    const { explanation } = stages(rows);
    expect(explanation).not.toMatch(/NaN|Infinity/);
    expect(explanation).toContain('from λ=0.8 to 1.0 Token #N goes from 0.0 to 0.0 while Mean@k changes by +5.0 points');
    expect(explanation).toContain('The most accurate λ overall is 1.0 (Stage 3, 75.0% vs 70.0%) at 0.0 tokens against 0.0.');
  });

  test('a sweep that starts after emergence has no Stage 1', () => {
    const report = stages(paper.filter((r) => r.lambda >= 0.45));
    expect(stagesOf(report)).toEqual({ stage1: [], stage2: [0.45, 0.5, 0.55, 0.6], stage3: [0.8, 1.0] });
    expect(report.explanation).toContain('There is no Stage 1');
  });
});

describe('stages on synthetic sweeps', () => {
  test('Stage 2 later, as the paper reports for Qwen3-30B-A3B', () => {
    const think = [
      [0, 0],
      [0.2, 0],
      [0.4, 0],
      [0.5, 0.3],
      [0.6, 5],
      [0.7, 60],
      [0.8, 99.5],
      [0.9, 100],
      [1, 100],
    ];
    const rows = table({
      aime25: think.map(([l, t]) => [l, t, 40 + 40 * l, 10000 + 10000 * l] as [number, number, number, number]),
      gpqa: think.map(([l, t]) => [l, Math.min(100, t * 1.1), 50 + 20 * l, 4000 + 3000 * l] as [number, number, number, number]),
    });
    const report = stages(rows);
    expect(stagesOf(report)).toEqual({ stage1: [0, 0.2, 0.4, 0.5], stage2: [0.6, 0.7, 0.8], stage3: [0.9, 1] });
    expect(report.recommended).toBe(0.8);
  });

  test('thinking that never emerges: everything is Stage 1 and nothing is recommended', () => {
    const report = stages(
      table({
        x: [
          [0, 0, 50, 100],
          [0.2, 0.5, 55, 120],
          [0.3, 1, 56, 130],
        ],
      }),
    );
    expect(stagesOf(report)).toEqual({ stage1: [0, 0.2, 0.3], stage2: [], stage3: [] });
    expect(report).toMatchObject({ recommended: null, emergence: null, saturation: null });
    expect(report.explanation).toContain('Thinking never emerges');
  });

  test('a jump from zero straight to saturation makes Stage 2 a single λ and asks for a finer sweep', () => {
    const report = stages(
      table({
        x: [
          [0, 0, 50, 100],
          [0.5, 0, 52, 100],
          [0.6, 100, 70, 300],
          [1, 100, 72, 500],
        ],
      }),
    );
    expect(stagesOf(report)).toEqual({ stage1: [0, 0.5], stage2: [0.6], stage3: [1] });
    expect(report.recommended).toBe(0.6);
    expect(report.warnings).toEqual(['Think #R jumps from ≤ 1% to saturation between λ=0.5 and λ=0.6; sample λ more finely there to see Stage 2']);
  });

  test('a single λ: before emergence it is Stage 1, when saturated it closes Stage 2', () => {
    const before = stages(table({ x: [[0, 0, 50, 100]] }));
    expect(stagesOf(before)).toEqual({ stage1: [0], stage2: [], stage3: [] });
    expect(before.warnings).toContain('only one λ: a single point cannot show a transition; sweep λ from 0 to 1');
    const saturated = stages(table({ x: [[1, 100, 80, 900]], y: [[1, 99.5, 60, 300]] }));
    expect(stagesOf(saturated)).toEqual({ stage1: [], stage2: [1], stage3: [] });
    expect(saturated.recommended).toBe(1);
  });

  test('a Stage 2 tie on Mean@k goes to fewer tokens', () => {
    const report = stages(
      table({
        x: [
          [0, 0, 50, 100],
          [0.4, 10, 70, 900],
          [0.5, 60, 70, 400],
          [0.6, 100, 65, 500],
          [1, 100, 80, 2000],
        ],
      }),
    );
    expect(report.stage2).toEqual([0.4, 0.5, 0.6]);
    expect(report.recommended).toBe(0.5);
  });

  test('the recommendation compares λ on the benchmarks they share', () => {
    // At 0.5 the easy benchmark is missing; averaging what is there would favour 0.55 unfairly or hide it.
    const rows = table({
      hard: [
        [0, 0, 10, 100],
        [0.5, 50, 40, 100],
        [0.55, 99.5, 30, 100],
      ],
      easy: [
        [0, 0, 90, 100],
        [0.55, 99.5, 95, 100],
      ],
    });
    const report = stages(rows);
    expect(report.stage2).toEqual([0.5, 0.55]);
    expect(report.recommended).toBe(0.5);
    expect(report.explanation).toContain('(40.0% over hard)');
  });

  test('non-monotone Think #R is reported, the stages stay intervals', () => {
    const report = stages(
      table({
        x: [
          [0, 0, 50, 100],
          [0.4, 30, 60, 200],
          [0.5, 0, 55, 150],
          [0.6, 100, 70, 300],
          [0.8, 90, 72, 400],
        ],
      }),
    );
    expect(stagesOf(report)).toEqual({ stage1: [0], stage2: [0.4, 0.5, 0.6], stage3: [0.8] });
    expect(report.warnings).toEqual([
      'Think #R falls back to ≤ 1% at λ=0.5 after emerging at λ=0.4',
      'Think #R drops below 99% at λ=0.8 after saturating at λ=0.6',
    ]);
  });

  test('rejects duplicate rows, empty input and bad thresholds', () => {
    const dup = table({
      x: [
        [0.5, 10, 50, 100],
        [0.5, 20, 50, 100],
      ],
    });
    expect(() => stages(dup)).toThrow("two metrics rows for benchmark 'x' at λ=0.5");
    expect(() => stages([])).toThrow(WeightmixError);
    expect(() => stages(paper, { emergenceThreshold: 99, saturationThreshold: 50 })).toThrow(/must exceed emergenceThreshold/);
    expect(() => stages(paper, { saturationThreshold: 120 })).toThrow(/percentage in \[0, 100\]/);
    expect(() => stages(table({ x: [[0, NaN, 50, 100]] }))).toThrow(/metrics row 0 has an invalid thinkRatio/);
  });

  test('formatLambda writes λ as the paper does', () => {
    expect([0, 0.45, 1, 0.6].map(formatLambda)).toEqual(['0.0', '0.45', '1.0', '0.6']);
  });
});

describe('metrics tables', () => {
  const HEADER = 'benchmark,k,lambda,mean,best,tokens,think_ratio';

  test('CSV: comments, blank lines, CRLF, quoted cells, extra columns and optional k/best', () => {
    const rows = parseMetricsCsv(
      ['# a comment', '', `${HEADER},note`, 'aime25,64,0.4,55.8,90.0,12448,1.4,"x, y"', '"gpqa, diamond",,0.5,64.5,,7548,66.4,""', '  # trailing comment'].join(
        '\r\n',
      ),
      'm.csv',
    );
    expect(rows).toEqual([
      { benchmark: 'aime25', k: 64, lambda: 0.4, mean: 55.8, best: 90, tokens: 12448, thinkRatio: 1.4 },
      { benchmark: 'gpqa, diamond', lambda: 0.5, mean: 64.5, tokens: 7548, thinkRatio: 66.4 },
    ]);
  });

  test('JSON: an array of rows with the same keys (thinkRatio also accepted) reads the same as the CSV', async () => {
    const asJson = paper.map((r, i) => ({
      benchmark: r.benchmark,
      k: r.k,
      lambda: r.lambda,
      mean: r.mean,
      best: r.best,
      tokens: r.tokens,
      ...(i % 2 ? { think_ratio: r.thinkRatio } : { thinkRatio: r.thinkRatio }),
    }));
    const file = write('paper.json', JSON.stringify(asJson, null, 2));
    expect(await readMetricsTable(file)).toEqual(paper);
    expect(paper).toHaveLength(27);
    expect(paper[0]).toEqual({ benchmark: 'aime25', k: 64, lambda: 0, mean: 46.6, best: 76.7, tokens: 15097, thinkRatio: 0 });
  });

  test('JSON Lines (.jsonl, .ndjson, or sniffed from a leading "{") read as the same rows as the JSON array', async () => {
    const lines = paper.map((r) =>
      JSON.stringify({ benchmark: r.benchmark, k: r.k, lambda: r.lambda, mean: r.mean, best: r.best, tokens: r.tokens, think_ratio: r.thinkRatio }),
    );
    const text = `${lines.slice(0, 10).join('\n')}\n\n${lines.slice(10).join('\r\n')}\n`;
    for (const name of ['paper.jsonl', 'paper.NDJSON', 'paper-lines']) expect(await readMetricsTable(write(name, text))).toEqual(paper);
    await expectReadError(write('broken.jsonl', `${lines[0]}\n{"benchmark": "a",\n`), /broken\.jsonl:2: not valid JSON/);
    await expectReadError(write('scalar.jsonl', `${lines[0]}\n\n7\n`), /scalar\.jsonl:3: row 2: expected an object, got 7/);
    await expectReadError(
      write('twice.jsonl', `${lines[0]}\n${lines[0]}\n`),
      /twice\.jsonl:2: second row for benchmark 'aime25' at lambda 0 \(first at line 1\)/,
    );
    await expectReadError(write('empty.jsonl', '\n\n'), /empty\.jsonl: no data rows/);
    await expectReadError(write('lines.json', text), /lines\.json:2: not valid JSON \(.*\); one object per line is JSON Lines: name the file \.jsonl$/);
    await expectReadError(write('line.json', `${lines[0]}\n`), /line\.json:1: expected a JSON array of metrics rows; one object per line is JSON Lines/);
  });

  test('a file without a known extension is sniffed', async () => {
    expect(await readMetricsTable(write('paper.txt', fs.readFileSync(PAPER_FIXTURE, 'utf8')))).toEqual(paper);
    expect(await readMetricsTable(write('rows', '[{"benchmark":"a","lambda":0,"mean":1,"tokens":2,"think_ratio":0}]'))).toHaveLength(1);
  });

  test('CSV errors name file and line', async () => {
    await expectReadError(
      write('nocol.csv', '# c\n# c\nbenchmark,k,lambda,mean,best,tokens\naime25,64,0,46.6,76.7,15097\n'),
      /nocol\.csv:3: missing column 'think_ratio'/,
    );
    await expectReadError(
      write('nan.csv', `${HEADER}\naime25,64,0,46.6,76.7,15097,0\naime25,64,0.2,52.2,86.7,lots,0\n`),
      /nan\.csv:3: column 'tokens' is not a number: "lots"/,
    );
    await expectReadError(write('empty-cell.csv', `${HEADER}\naime25,64,0,,76.7,15097,0\n`), /empty-cell\.csv:2: empty cell in column 'mean'/);
    await expectReadError(write('cells.csv', `${HEADER}\naime25,64,0,46.6,76.7,15097\n`), /cells\.csv:2: 6 cells but the header at line 1 has 7 columns/);
    await expectReadError(
      write('range.csv', `${HEADER}\naime25,64,0,46.6,76.7,15097,150\n`),
      /range\.csv:2: column 'think_ratio' must be a percentage in \[0, 100\], got 150/,
    );
    await expectReadError(write('k.csv', `${HEADER}\naime25,6.5,0,46.6,76.7,15097,0\n`), /k\.csv:2: column 'k' must be a positive integer/);
    await expectReadError(
      write('dup.csv', `${HEADER}\naime25,64,0.5,46.6,76.7,15097,0\naime25,64,0.50,47,76.7,15097,0\n`),
      /dup\.csv:3: second row for benchmark 'aime25' at lambda 0\.5 \(first at line 2\)/,
    );
    await expectReadError(write('quote.csv', `${HEADER}\n"aime25,64,0,46.6,76.7,15097,0\n`), /quote\.csv:2: unterminated quoted cell/);
    await expectReadError(write('onlycomments.csv', '# nothing\n'), /onlycomments\.csv: no header line/);
    await expectReadError(write('headeronly.csv', `${HEADER}\n`), /headeronly\.csv: no data rows/);
    await expectReadError(path.join(tmp, 'absent.csv'), /cannot read metrics table/);
    await expect(readMetricsTable(tmp)).rejects.toMatchObject({ code: 'NotAFile', message: expect.stringMatching(/is not a file$/) });
  });

  test('JSON errors name file and line', async () => {
    await expectReadError(write('syntax.json', '[\n  {"benchmark": "a",\n   "lambda": 0,,\n  }\n]'), /syntax\.json:3: not valid JSON/);
    await expectReadError(write('notarray.json', '{"rows": []}'), /notarray\.json:1: expected a JSON array/);
    const rows = [
      { benchmark: 'a', lambda: 0, mean: 1, tokens: 2, think_ratio: 0 },
      { benchmark: 'a', lambda: 0.5, mean: 1, tokens: 2 },
    ];
    await expectReadError(write('missing.json', JSON.stringify(rows, null, 2)), /missing\.json:9: row 2: missing field 'think_ratio' \(or 'thinkRatio'\)/);
    await expectReadError(
      write('type.json', '[{"benchmark": "a", "lambda": "0.5", "mean": 1, "tokens": 2, "think_ratio": 0}]'),
      /type\.json:1: row 1: field 'lambda' is not a number: "0\.5"/,
    );
    expect(() => parseMetricsJson('[1]', 'x.json')).toThrow(/x\.json:1: row 1: expected an object/);
    // A field is named as the file spells it (thinkRatio, the API's name, as well as think_ratio).
    await expectReadError(
      write('camel.jsonl', '{"benchmark": "a", "lambda": 0, "mean": 1, "tokens": 2, "thinkRatio": "x"}\n'),
      /camel\.jsonl:1: row 1: field 'thinkRatio' is not a number: "x"/,
    );
  });
});

describe('weightmix stages (command)', () => {
  const run = (args: string[]) => runCommand(register, ['stages', ...args]);

  test('--json prints stage1/stage2/stage3/recommended/explanation', async () => {
    const report = JSON.parse(await run([PAPER_FIXTURE, '--json']));
    expect(report).toMatchObject({ ...PAPER_STAGES, recommended: 0.6 });
    expect(typeof report.explanation).toBe('string');
    expect(Object.keys(report).slice(0, 5)).toEqual(['stage1', 'stage2', 'stage3', 'recommended', 'explanation']);
  });

  test('prints a table, the stages and the explanation', async () => {
    const out = await run([PAPER_FIXTURE]);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^λ\s+stage\s+Think #R min\s+max\s+Mean@k\s+Token #N \(geo\)\s+benchmarks$/);
    expect(lines[4]).toMatch(/^0\.4\s+2\s+1\.4\s+4\.0\s+62\.4\s+7693\s+3$/);
    expect(out).toContain('Stage 1 (Instruct-dominated): 0.0, 0.2\n');
    expect(out).toContain('Stage 2 (thinking emerges):   0.4, 0.45, 0.5, 0.55, 0.6\n');
    expect(out).toContain('Stage 3 (over-thinking):      0.8, 1.0\n');
    expect(out).toContain('Recommended λ: 0.6\n');
  });

  test('--plot writes the chart; thresholds are options', async () => {
    const chart = path.join(tmp, 'stages.svg');
    const out = await run([PAPER_FIXTURE, '--plot', chart, '--saturation-threshold', '99.7']);
    expect(fs.readFileSync(chart, 'utf8')).toMatch(/^<svg/);
    expect(out).toContain('Stage 3 (over-thinking):      1.0\n');
    expect(out).toContain(`chart: ${chart}`);
  });

  test('bad options fail before any work', async () => {
    await expect(run([PAPER_FIXTURE, '--plot', path.join(tmp, 'chart.pdf')])).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/must end in \.svg or \.png/),
    });
    await expect(run([PAPER_FIXTURE, '--emergence-threshold', 'low'])).rejects.toMatchObject({ code: 'Usage', exitCode: 2 });
    // Named as flags, not as the library's options.
    await expect(run([PAPER_FIXTURE, '--emergence-threshold', '50', '--saturation-threshold', '40'])).rejects.toMatchObject({
      code: 'Usage',
      message: '--saturation-threshold (40) must exceed --emergence-threshold (50)',
    });
    await expect(run([path.join(tmp, 'absent.csv')])).rejects.toMatchObject({ code: 'FileNotFound' });
  });
});
