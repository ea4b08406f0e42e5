/**
 * The paper's three stages of Instruct → Thinking interpolation, read off Think #R.
 *
 * Stage 1 (Instruct-dominated): no benchmark shows explicit thinking yet (Think #R ≤ the
 * emergence threshold everywhere). Stage 2 (thinking emerges): from the first λ where any
 * benchmark's Think #R leaves zero, up to and including the first λ where every benchmark is
 * saturated (Think #R ≥ the saturation threshold). Stage 3 (over-thinking): every λ after that.
 * The recommendation is the most accurate Stage 2 λ. See docs/stages.md for the derivation.
 */
import { checkOptions, type OptionKeys } from '../api/validate-options';
import { WeightmixError, usageError } from '../errors';
import { showValue } from '../options';
import type { MetricsRow } from './metrics-table';
import { extremes } from './extremes';
import { plural } from '../plural';

export type { MetricsRow } from './metrics-table';

/** The thresholds `stages` applies. */
export interface StageOptions {
  /** Think #R (%) a benchmark must exceed for thinking to count as emerged (default 1) */
  emergenceThreshold?: number;
  /** Think #R (%) every benchmark must reach for thinking to count as saturated (default 99) */
  saturationThreshold?: number;
}

export const DEFAULT_STAGE_OPTIONS: Readonly<Required<StageOptions>> = { emergenceThreshold: 1, saturationThreshold: 99 };

/** The paper's three stages: 1 no thinking, 2 thinking emerges, 3 thinking saturated. */
export type Stage = 1 | 2 | 3;

/** One λ's row of a stage report. */
export interface LambdaSummary {
  /** The λ. */
  lambda: number;
  /** Its stage. */
  stage: Stage;
  /** benchmarks with a row at this λ */
  benchmarks: string[];
  /** Think #R (%) across those benchmarks */
  thinkRatio: { min: number; max: number; mean: number };
  /** Mean@k (%) averaged over those benchmarks */
  mean: number;
  /** Token #N, geometric mean over those benchmarks (scale-free across benchmarks) */
  tokens: number;
}

/** Which λ fall in which stage, and the λ to use. */
export interface StageReport {
  /** λ values in Stage 1 (thinking has not emerged). */
  stage1: number[];
  /** λ values in Stage 2 (thinking emerges; accuracy is usually best here). */
  stage2: number[];
  /** λ values in Stage 3 (thinking saturated). */
  stage3: number[];
  /** the most accurate Stage 2 λ; null when thinking never emerges */
  recommended: number | null;
  /** Why, in a sentence. */
  explanation: string;
  /** first λ of Stage 2 (null: thinking never emerges) */
  emergence: number | null;
  /** first λ where every benchmark is saturated, the last of Stage 2 (null: never saturates) */
  saturation: number | null;
  /** λ with the highest Mean@k averaged over the benchmarks present at every λ */
  mostAccurate: number;
  /** The thresholds applied. */
  thresholds: Required<StageOptions>;
  /** The benchmarks in the table. */
  benchmarks: string[];
  /** One row per λ, ascending. */
  lambdas: LambdaSummary[];
  /** Data problems worth a look (a benchmark missing at some λ, …). */
  warnings: string[];
}

/** Formats λ the way the paper writes it (0.0, 0.45, 1.0). */
export function formatLambda(x: number): string {
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}

function checkThreshold(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100) throw usageError(`${name} must be a percentage in [0, 100], got ${String(v)}`);
  return v;
}

/** Parses a `--*-threshold` value (percent). */
export function parseThreshold(option: string, text: string): number {
  const x = /^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(x) || x < 0 || x > 100) throw usageError(`${option} expects a percentage in [0, 100], got '${text}'`);
  return x;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const geoMean = (xs: number[]) => (xs.some((x) => x <= 0) ? mean(xs) : Math.exp(mean(xs.map(Math.log))));
const fmt1 = (x: number) => x.toFixed(1);
// Token #N as a ratio, or as both values where the first is 0 (a table without token counts), which has no ratio.
const tokenChange = (to: number, from: number) => (from > 0 ? `changes ×${(to / from).toFixed(2)}` : `goes from ${fmt1(from)} to ${fmt1(to)}`);
const tokenShare = (of: number, against: number) => (against > 0 ? `×${(of / against).toFixed(2)} the tokens` : `${fmt1(of)} tokens against ${fmt1(against)}`);

const STAGE_KEYS: OptionKeys<StageOptions> = { emergenceThreshold: 'optional', saturationThreshold: 'optional' };

/**
 * Assigns every λ to a stage and recommends one; rows may come in any order.
 * @throws {@link WeightmixError} `Usage` (rows not an array, bad options), `MalformedMetrics` (no rows, a value out of range, a repeated row).
 */
export function stages(rows: readonly MetricsRow[], opts: StageOptions = {}): StageReport {
  checkOptions<StageOptions>('stages', opts, STAGE_KEYS);
  const thresholds = {
    emergenceThreshold: checkThreshold('emergenceThreshold', opts.emergenceThreshold ?? DEFAULT_STAGE_OPTIONS.emergenceThreshold),
    saturationThreshold: checkThreshold('saturationThreshold', opts.saturationThreshold ?? DEFAULT_STAGE_OPTIONS.saturationThreshold),
  };
  if (thresholds.saturationThreshold <= thresholds.emergenceThreshold) {
    throw usageError(`saturationThreshold (${thresholds.saturationThreshold}) must exceed emergenceThreshold (${thresholds.emergenceThreshold})`);
  }
  // A path is the command line's habit: the function takes rows (readMetricsTable reads a file).
  if (!Array.isArray(rows)) throw usageError(`stages takes an array of metrics rows (readMetricsTable reads a file into one), got ${showValue(rows)}`);
  if (rows.length === 0) throw new WeightmixError('MalformedMetrics', 'stages needs at least one metrics row');

  const byLambda = new Map<number, Map<string, MetricsRow>>();
  const benchmarks: string[] = [];
  rows.forEach((r, i) => {
    if (r === null || typeof r !== 'object') throw new WeightmixError('MalformedMetrics', `metrics row ${i} is not an object: ${JSON.stringify(r)}`);
    for (const [key, ok] of [
      ['lambda', Number.isFinite(r.lambda)],
      // A percentage, as readMetricsTable reads it.
      ['mean', Number.isFinite(r.mean) && r.mean >= 0 && r.mean <= 100],
      ['tokens', Number.isFinite(r.tokens) && r.tokens >= 0],
      ['thinkRatio', Number.isFinite(r.thinkRatio) && r.thinkRatio >= 0 && r.thinkRatio <= 100],
      ['benchmark', typeof r.benchmark === 'string' && r.benchmark !== ''],
    ] as const) {
      if (!ok)
        throw new WeightmixError(
          'MalformedMetrics',
          `metrics row ${i} has an invalid ${key}: ${JSON.stringify((r as unknown as Record<string, unknown>)[key])}`,
        );
    }
    let at = byLambda.get(r.lambda);
    if (!at) byLambda.set(r.lambda, (at = new Map()));
    if (at.has(r.benchmark)) throw new WeightmixError('MalformedMetrics', `two metrics rows for benchmark '${r.benchmark}' at λ=${formatLambda(r.lambda)}`);
    at.set(r.benchmark, r);
    if (!benchmarks.includes(r.benchmark)) benchmarks.push(r.benchmark);
  });

  const lambdas = [...byLambda.keys()].sort((a, b) => a - b);
  const warnings: string[] = [];
  for (const l of lambdas) {
    const missing = benchmarks.filter((b) => !byLambda.get(l)!.has(b));
    if (missing.length) warnings.push(`λ=${formatLambda(l)} has no row for ${missing.join(', ')}; its Think #R is read from the other benchmarks`);
  }
  if (lambdas.length === 1) warnings.push('only one λ: a single point cannot show a transition; sweep λ from 0 to 1');

  const think = (l: number) => [...byLambda.get(l)!.values()].map((r) => r.thinkRatio);
  const emerged = (l: number) => extremes(think(l)).max > thresholds.emergenceThreshold;
  const saturated = (l: number) => extremes(think(l)).min >= thresholds.saturationThreshold;

  const eIdx = lambdas.findIndex(emerged);
  const sIdx = eIdx < 0 ? -1 : lambdas.findIndex((l, i) => i >= eIdx && saturated(l));
  const stageOf = (i: number): Stage => (eIdx < 0 || i < eIdx ? 1 : sIdx < 0 || i <= sIdx ? 2 : 3);

  // The stages are intervals of λ; say so when the data are not monotone enough to be read that way.
  lambdas.forEach((l, i) => {
    if (eIdx >= 0 && i > eIdx && !emerged(l))
      warnings.push(`Think #R falls back to ≤ ${thresholds.emergenceThreshold}% at λ=${formatLambda(l)} after emerging at λ=${formatLambda(lambdas[eIdx])}`);
    if (sIdx >= 0 && i > sIdx && !saturated(l))
      warnings.push(`Think #R drops below ${thresholds.saturationThreshold}% at λ=${formatLambda(l)} after saturating at λ=${formatLambda(lambdas[sIdx])}`);
  });
  if (eIdx > 0 && eIdx === sIdx) {
    warnings.push(
      `Think #R jumps from ≤ ${thresholds.emergenceThreshold}% to saturation between λ=${formatLambda(lambdas[eIdx - 1])} and λ=${formatLambda(lambdas[eIdx])}; sample λ more finely there to see Stage 2`,
    );
  }

  const summaries: LambdaSummary[] = lambdas.map((l, i) => {
    const rs = [...byLambda.get(l)!.values()];
    const t = rs.map((r) => r.thinkRatio);
    return {
      lambda: l,
      stage: stageOf(i),
      benchmarks: rs.map((r) => r.benchmark),
      thinkRatio: { ...extremes(t), mean: mean(t) },
      mean: mean(rs.map((r) => r.mean)),
      tokens: geoMean(rs.map((r) => r.tokens)),
    };
  });

  // Compare λ values on the benchmarks they all share, so a missing row cannot tilt the choice.
  const compare = (ls: number[]) => {
    const common = benchmarks.filter((b) => ls.every((l) => byLambda.get(l)!.has(b)));
    const use = common.length > 0 ? common : null;
    const acc = (l: number) => mean([...byLambda.get(l)!.values()].filter((r) => !use || use.includes(r.benchmark)).map((r) => r.mean));
    const cost = (l: number) => geoMean([...byLambda.get(l)!.values()].filter((r) => !use || use.includes(r.benchmark)).map((r) => r.tokens));
    const best = [...ls].sort((a, b) => acc(b) - acc(a) || cost(a) - cost(b) || a - b)[0];
    return { best, acc, cost, common: use ?? [] };
  };

  const stage1 = lambdas.filter((_, i) => stageOf(i) === 1);
  const stage2 = lambdas.filter((_, i) => stageOf(i) === 2);
  const stage3 = lambdas.filter((_, i) => stageOf(i) === 3);
  const overall = compare(lambdas);
  const pick = stage2.length ? compare(stage2) : null;
  const recommended = pick ? pick.best : null;

  const list = (ls: number[]) => (ls.length <= 3 ? ls.map(formatLambda).join(', ') : `${formatLambda(ls[0])} … ${formatLambda(ls[ls.length - 1])}`);
  const e = thresholds.emergenceThreshold;
  const s = thresholds.saturationThreshold;
  const parts: string[] = [];
  parts.push(`Think #R (share of responses containing </think>) decides the stages over ${plural(benchmarks.length, 'benchmark')} (${benchmarks.join(', ')}).`);
  if (stage1.length) parts.push(`Stage 1 (Instruct-dominated, no explicit thinking): λ ${list(stage1)}, where Think #R is at most ${e}% on every benchmark.`);
  else parts.push(`There is no Stage 1: Think #R already exceeds ${e}% at the smallest λ, ${formatLambda(lambdas[0])}.`);
  if (eIdx < 0) {
    parts.push(`Thinking never emerges (Think #R ≤ ${e}% everywhere), so there is no Stage 2 or 3 and no recommendation; try larger λ.`);
  } else {
    const le = summaries[eIdx];
    parts.push(
      `Stage 2 (thinking emerges) starts at λ=${formatLambda(le.lambda)}, the first λ where Think #R leaves zero (highest ${fmt1(le.thinkRatio.max)}%),`,
    );
    if (sIdx >= 0) {
      const ls = summaries[sIdx];
      parts.push(`and ends at λ=${formatLambda(ls.lambda)}, the first λ where every benchmark reaches ${s}% (lowest ${fmt1(ls.thinkRatio.min)}%).`);
    } else {
      parts.push(`and runs to the largest λ, ${formatLambda(lambdas[lambdas.length - 1])}: no λ reaches ${s}% on every benchmark, so there is no Stage 3.`);
    }
    if (stage3.length) {
      const from = stage2[stage2.length - 1];
      const to = stage3[stage3.length - 1];
      const c = compare([from, to]);
      const dAcc = c.acc(to) - c.acc(from);
      parts.push(
        `Stage 3 (thinking saturated, over-thinking): λ ${list(stage3)}; from λ=${formatLambda(from)} to ${formatLambda(to)} Token #N ${tokenChange(c.cost(to), c.cost(from))} while Mean@k changes by ${dAcc >= 0 ? '+' : ''}${fmt1(dAcc)} points.`,
      );
    }
    const p = pick!;
    const on = p.common.length === benchmarks.length ? '' : ` over ${p.common.join(', ')}`;
    parts.push(
      `Recommended λ=${formatLambda(recommended!)}: the highest Mean@k in Stage 2 (${fmt1(p.acc(recommended!))}%${on}), the paper's best quality/cost region.`,
    );
    if (overall.best !== recommended) {
      const c = compare([recommended!, overall.best]);
      parts.push(
        `The most accurate λ overall is ${formatLambda(overall.best)} (Stage ${summaries[lambdas.indexOf(overall.best)].stage}, ${fmt1(c.acc(overall.best))}% vs ${fmt1(c.acc(recommended!))}%) at ${tokenShare(c.cost(overall.best), c.cost(recommended!))}.`,
      );
    }
  }

  return {
    stage1,
    stage2,
    stage3,
    recommended,
    explanation: parts.join(' '),
    emergence: eIdx < 0 ? null : lambdas[eIdx],
    saturation: sIdx < 0 ? null : lambdas[sIdx],
    mostAccurate: overall.best,
    thresholds,
    benchmarks,
    lambdas: summaries,
    warnings,
  };
}
