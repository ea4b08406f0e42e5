/**
 * The packed job format (lib/engine/packed-jobs.ts → native/packed_jobs.cc): every field of every
 * kind of job survives the trip into the executor's structs (the addon's decodeJobsForTest reads
 * them back), and a malformed array is refused with a one-line message instead of being guessed at.
 * WEIGHTMIX_SEED=<seed> replays the random plans.
 */
import { loadNative, NativeDest, NativeJob } from '../lib/engine/native';
import { packJobs, PackedJobWriter, unpackJobs } from '../lib/engine/packed-jobs';
import { NativeDtype } from '../lib/format/dtypes';
import { rng } from './helpers/models';

const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log('seed', seed);

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** What the executor sees of a job: defaults filled in, params only on linear (its open moments), sparse, nearswap, ram, row_linear, della, sce and arcee_fusion dests, w rounded to float32. */
function expected(job: NativeJob) {
  return {
    count: job.count,
    moments: job.moments === true,
    stat: job.stat,
    statParams: job.stat !== undefined ? (job.statParams ?? []) : [],
    sources: job.sources.map((s) => ({ ...s })),
    dests: job.dests.map((d: NativeDest) => ({
      output: d.output,
      offset: d.offset,
      dtype: d.dtype,
      op: d.op,
      w: d.w.map((x) => Math.fround(x)),
      params:
        d.op === 'linear' ||
        d.op === 'sparse' ||
        d.op === 'nearswap' ||
        d.op === 'ram' ||
        d.op === 'row_linear' ||
        d.op === 'della' ||
        d.op === 'sce' ||
        d.op === 'arcee_fusion'
          ? (d.params ?? [])
          : [],
    })),
  };
}

const roundTrip = (jobs: NativeJob[]) => loadNative().decodeJobsForTest(packJobs(jobs));

/** One job of every kind, with the extreme values each field may take. */
const EVERY_KIND: NativeJob[] = [
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'BF16' },
      { input: 1, offset: MAX_SAFE, dtype: 'F16' },
    ],
    dests: [{ output: 0, offset: 16, dtype: 'BF16', op: 'lerp', w: [0.8] }],
  },
  { count: MAX_SAFE, sources: [{ input: 3, offset: 24, dtype: 'F32' }], dests: [{ output: 2, offset: MAX_SAFE, dtype: 'F16', op: 'copy', w: [0] }] },
  {
    count: 1,
    sources: [
      { input: 0, offset: 8, dtype: 'BF16' },
      { input: 1, offset: 8, dtype: 'BF16' },
    ],
    dests: [
      { output: 0, offset: 0, dtype: 'F32', op: 'lerp_mi', w: [-0.25] },
      { output: 1, offset: 0, dtype: 'BF16', op: 'lerp_mi', w: [1.5] },
    ],
  },
  {
    count: 5,
    sources: [
      { input: 0, offset: 0, dtype: 'F32' },
      { input: 1, offset: 0, dtype: 'F16' },
      { input: 2, offset: 0, dtype: 'BF16' },
    ],
    dests: [{ output: 0, offset: 0, dtype: 'F32', op: 'linear', w: [1 / 3, 0, -2e-7] }],
  },
  {
    count: 9,
    sources: [
      { input: 0, offset: 0, dtype: 'BF16' },
      { input: 1, offset: 0, dtype: 'BF16' },
    ],
    dests: [{ output: 0, offset: 0, dtype: 'BF16', op: 'sparse', w: [], params: [0, 0, 1, 4, 0, 1, 1, 1, 0, 0, 4294967295, 4294967295, 1, 0, 0, 0.1 + 0.2] }],
  },
  { count: 16, sources: [{ input: 0, offset: 0, dtype: 'U8' }], dests: [{ output: 0, offset: 4, dtype: 'U8', op: 'copy', w: [0] }] },
  {
    count: 7,
    sources: [
      { input: 0, offset: 0, dtype: 'BF16' },
      { input: 1, offset: 0, dtype: 'F32' },
      { input: 2, offset: 0, dtype: 'F16' },
    ],
    dests: [
      { output: 0, offset: 0, dtype: 'BF16', op: 'nearswap', w: [], params: [2, 0, 0.1 + 0.2] },
      { output: 1, offset: 0, dtype: 'F32', op: 'ram', w: [], params: [1, 1e-5, 0, 1, 2, 1.02] },
      { output: 2, offset: 0, dtype: 'F16', op: 'row_linear', w: [], params: [7, -1, 2, 2, 1, 0.25, 1 / 3] },
      { output: 3, offset: 0, dtype: 'BF16', op: 'della', w: [], params: [1, 1, 0.9, 0, 7, 1, 1, 2, 0.5, 0.4, 0.1, 4294967295, 12345, 1.25] },
      { output: 4, offset: 0, dtype: 'F32', op: 'sce', w: [], params: [0, 1, 4294967295, 3, 2, 1, 0.25, 2, 0.75] },
      { output: 5, offset: 0, dtype: 'F16', op: 'arcee_fusion', w: [], params: [7, 2, 0, 0.001] },
    ],
  },
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'BF16' },
      { input: 1, offset: 0, dtype: 'BF16' },
      { input: 2, offset: 0, dtype: 'BF16' },
    ],
    dests: [],
    stat: 'ram_counts',
    statParams: [0, 1e-5, 1, 1, 2, 1],
  },
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'F16' },
      { input: 1, offset: 0, dtype: 'BF16' },
    ],
    dests: [],
    stat: 'row_moments',
    statParams: [4],
  },
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'F16' },
      { input: 1, offset: 0, dtype: 'BF16' },
    ],
    dests: [],
    stat: 'della_l1',
    statParams: [4, 2, 0.5, 0.15, 7, 8],
  },
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'F16' },
      { input: 1, offset: 0, dtype: 'BF16' },
      { input: 2, offset: 0, dtype: 'F32' },
    ],
    dests: [],
    stat: 'sce_histogram',
    statParams: [0, 2, 1, 2, 3, 24, 12, 0, 5],
  },
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'F16' },
      { input: 1, offset: 0, dtype: 'BF16' },
    ],
    dests: [],
    stat: 'sce_sum_squares',
    statParams: [0, 1, 1, 0, 7, 3],
  },
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'F16' },
      { input: 1, offset: 0, dtype: 'BF16' },
    ],
    dests: [],
    stat: 'arcee_histogram',
    statParams: [4, 0, 1, 20, 12, 1, 2, 3],
  },
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'BF16' },
      { input: 1, offset: 0, dtype: 'BF16' },
    ],
    dests: [],
    stat: 'histogram',
    statParams: [3, 53, 11, 0, 0],
  },
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'BF16' },
      { input: 1, offset: 0, dtype: 'BF16' },
    ],
    dests: [],
    stat: 'l1',
    statParams: [3, 1, 1, 0, 0, 4294967295, 4294967295, 1, 0, 0, 1],
  },
  {
    count: 8,
    sources: [
      { input: 0, offset: 0, dtype: 'BF16' },
      { input: 1, offset: 0, dtype: 'BF16' },
    ],
    dests: [],
    moments: true,
  },
  { count: 0, sources: [], dests: [], moments: false },
];

test('every kind of job round-trips field for field', () => {
  expect(roundTrip(EVERY_KIND)).toEqual(EVERY_KIND.map(expected));
});

test('an empty plan packs to no words and decodes to no jobs', () => {
  expect(packJobs([])).toHaveLength(0);
  expect(roundTrip([])).toEqual([]);
});

test('random plans round-trip field for field', () => {
  const random = rng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]) => xs[int(xs.length)];
  const dtypes: NativeDtype[] = ['F32', 'F16', 'BF16', 'U8'];
  const numbers = (n: number) => Array.from({ length: n }, () => (random() - 0.5) * 10 ** int(12));
  const offset = () => (random() < 0.1 ? MAX_SAFE - int(1000) : int(2 ** 40));
  const jobs: NativeJob[] = Array.from({ length: 500 }, () => {
    const sources = Array.from({ length: int(5) }, () => ({ input: int(64), offset: offset(), dtype: pick(dtypes) }));
    const dests: NativeDest[] = Array.from({ length: int(4) }, () => {
      const op = pick(['copy', 'lerp', 'lerp_mi', 'linear', 'sparse', 'nearswap', 'ram', 'row_linear', 'della', 'sce', 'arcee_fusion'] as const);
      return { output: int(64), offset: offset(), dtype: pick(dtypes), op, w: numbers(int(4)), params: random() < 0.5 ? numbers(int(30)) : undefined };
    });
    const stat = pick([
      undefined,
      undefined,
      'histogram',
      'l1',
      'ram_counts',
      'row_moments',
      'della_l1',
      'sce_histogram',
      'sce_sum_squares',
      'arcee_histogram',
    ] as const);
    return { count: int(2 ** 33), sources, dests, moments: random() < 0.3, stat, statParams: random() < 0.8 ? numbers(int(12)) : undefined };
  });
  expect(roundTrip(jobs)).toEqual(jobs.map(expected));
});

describe('a malformed packed array is refused with one line', () => {
  const one = () => packJobs([EVERY_KIND[0]]);
  // Word positions in EVERY_KIND[0]: count 0, moments 1, stat 2, statParams 3, sources 4, source 0 at 5..7, source 1 at 8..10, dests 11, dest 0 at 12.. (dtype 14, op 15, w 16..17, params 18).
  const cases: [string, (w: Float64Array) => Float64Array, string][] = [
    ['the array ends inside a job', (w) => w.subarray(0, w.length - 1), 'plan: packed jobs end early'],
    ['a count that is not an integer', (w) => ((w[0] = 1.5), w), 'plan: bad element count'],
    ['a NaN offset', (w) => ((w[6] = NaN), w), 'plan: bad source offset'],
    ['an offset of 2^53', (w) => ((w[6] = 2 ** 53), w), 'plan: bad source offset'],
    ['a negative input index', (w) => ((w[5] = -1), w), 'plan: bad input index'],
    ['an unknown dtype code', (w) => ((w[14] = 4), w), 'plan: unsupported dtype'],
    ['an unknown op code', (w) => ((w[15] = 11), w), 'plan: unknown op'],
    ['an unknown statistic code', (w) => ((w[2] = 9), w), 'plan: unknown statistic'],
    ['a length past the end', (w) => ((w[4] = 1e9), w), 'plan: bad source count'],
  ];
  test.each(cases)('%s', (_what, breakIt, message) => {
    expect(() => loadNative().decodeJobsForTest(breakIt(one()))).toThrow(message);
  });

  test('jobs that are not a Float64Array', () => {
    expect(() => loadNative().decodeJobsForTest([1, 0, 0, 0, 0, 0] as unknown as Float64Array)).toThrow('plan: jobs must be packed into a Float64Array');
  });

  test('packJobs refuses an unknown dtype, op or statistic by name', () => {
    const job = EVERY_KIND[0];
    expect(() => packJobs([{ ...job, sources: [{ input: 0, offset: 0, dtype: 'I8' as NativeDtype }] }])).toThrow('plan: unsupported dtype I8');
    expect(() => packJobs([{ ...job, dests: [{ ...job.dests[0], op: 'nope' as 'copy' }] }])).toThrow('plan: unknown op nope');
    expect(() => packJobs([{ ...job, stat: 'max' as 'l1' }])).toThrow('plan: unknown statistic max');
  });
});

describe('PackedJobWriter.plainJob joins a tensor stored right after the last into its job', () => {
  // Two sources (BF16, F32) and two dests (a lerp in BF16, a copy of source 1 in F16), the first tensor of 10 elements.
  const first = () => ({
    src: { input: Int32Array.of(0, 1), offset: Float64Array.of(100, 200), code: Uint8Array.of(2, 0) },
    dst: { output: Int32Array.of(0, 1), offset: Float64Array.of(8, 16), code: Uint8Array.of(2, 1), op: Uint8Array.of(1, 0), w: [[0.25], [1]] },
  });
  // The second tensor, of 3 elements, right after the first everywhere: 10 elements × (2, 4) source bytes and × (2, 2) dest bytes on.
  const second = () => ({
    src: { input: Int32Array.of(0, 1), offset: Float64Array.of(120, 240), code: Uint8Array.of(2, 0) },
    dst: { output: Int32Array.of(0, 1), offset: Float64Array.of(28, 36), code: Uint8Array.of(2, 1), op: Uint8Array.of(1, 0), w: [[0.25], [1]] },
  });
  const written = (change: (s: ReturnType<typeof second>) => void) => {
    const writer = new PackedJobWriter();
    const a = first();
    writer.plainJob(10, 2, a.src, 2, a.dst);
    const b = second();
    change(b);
    writer.plainJob(3, 2, b.src, 2, b.dst);
    return writer.finish();
  };

  test('joined: one job of 13 elements, and each tensor keeps its progress weight', () => {
    const packed = written(() => {});
    expect(packed.count).toBe(1);
    expect(unpackJobs(packed.words).map((j) => j.count)).toEqual([13]);
    expect(Array.from(packed.work)).toEqual([10 * 4, 3 * 4]);
  });

  const breaks: [string, (s: ReturnType<typeof second>) => void][] = [
    ['a source elsewhere in its file', (s) => (s.src.offset[1] += 4)],
    ['a source in another file', (s) => (s.src.input[0] = 2)],
    ['a source of another dtype', (s) => (s.src.code[0] = 1)],
    ['a dest elsewhere in its file', (s) => (s.dst.offset[0] += 2)],
    ['a dest in another file', (s) => (s.dst.output[1] = 2)],
    ['a dest of another dtype', (s) => (s.dst.code[1] = 2)],
    ['a dest of another op', (s) => (s.dst.op[0] = 2)],
    ['a dest of another weight', (s) => (s.dst.w[0] = [0.5])],
  ];
  test.each(breaks)('not joined: %s', (_, change) => {
    const packed = written(change);
    expect(packed.count).toBe(2);
    expect(unpackJobs(packed.words).map((j) => j.count)).toEqual([10, 3]);
  });

  test('not joined after a job written field by field, nor past 2^30 elements', () => {
    const writer = new PackedJobWriter();
    writer.job(10, 2);
    const a = first();
    for (let s = 0; s < 2; s++) writer.sourceOfCode(a.src.input[s], a.src.offset[s], a.src.code[s]);
    writer.destCount(2);
    for (let d = 0; d < 2; d++) writer.destOfCodes(a.dst.output[d], a.dst.offset[d], a.dst.code[d], a.dst.op[d], a.dst.w[d], []);
    const b = second();
    writer.plainJob(3, 2, b.src, 2, b.dst);
    expect(writer.finish().count).toBe(2);
    const big = new PackedJobWriter();
    const c = first();
    big.plainJob(2 ** 30 - 2, 2, c.src, 2, c.dst);
    const d = first();
    for (let s = 0; s < 2; s++) d.src.offset[s] += (2 ** 30 - 2) * [2, 4][s];
    for (let k = 0; k < 2; k++) d.dst.offset[k] += (2 ** 30 - 2) * 2;
    big.plainJob(3, 2, d.src, 2, d.dst);
    expect(big.finish().count).toBe(2);
  });
});
