/**
 * The paper's metrics (Think #R, Token #N, Mean@k, Pass@k, Vote@k) from sampled generations.
 *
 * Input is JSONL, streamed line by line. Each record is one sample, or (OpenCompass style) one
 * question whose per-sample fields are arrays. Field names come from a preset plus overrides;
 * a field path may be dotted (`outputs.0.text`). All rates are percentages, as in the paper.
 */
import { API_NAMES, checkOptions, type OptionKeys, type OptionNamer } from '../api/validate-options';
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';
import { abortError, WeightmixError, usageError } from '../errors';
import { loadTokenCounter } from './tokenizer';
import { lookup, MISSING, resolveFields, type FieldMap, type FieldName, type FieldPreset } from './score-fields';
import { extremes } from './extremes';
import type { DownloadHooks } from '../hub/snapshot-download';
import { withGuardedCallbacks } from '../api/guarded-callbacks';

/** How Vote@k breaks ties between equally frequent answers. */
export type VoteTies = 'expected' | 'first';

/** The options of `score` (the download hooks apply to a hub `tokenizer`). */
export interface ScoreOptions extends DownloadHooks {
  /** JSONL file of generations */
  file: string;
  /** field overrides, applied over the preset */
  fields?: Partial<FieldMap>;
  /** field preset (default `default`) */
  preset?: FieldPreset;
  /** k values for Pass@k and Vote@k; default per benchmark: 1 and n (samples per question) */
  k?: number[];
  /** count whitespace-separated words as the token count, instead of any recorded one (labelled as such) */
  whitespaceTokens?: boolean;
  /** count each response's tokens with this model's tokenizer.json (a folder or a hub id) */
  tokenizer?: string;
  /** benchmark name for records without a benchmark field (default: the file name without extension) */
  benchmark?: string;
  /** Vote@k tie rule: `expected` (default) = accuracy under a uniformly random pick among the tied answers; `first` = the tied answer sampled first */
  voteTies?: VoteTies;
}

/** Where Token #N came from: a recorded count, whitespace words, the model's tokenizer, or nowhere. */
export type TokenSource = 'field' | 'whitespace' | 'tokenizer' | 'missing';

/** One benchmark's figures. */
export interface BenchmarkScore {
  /** The benchmark's name. */
  benchmark: string;
  /** Questions scored. */
  questions: number;
  /** responses scored */
  samples: number;
  /** smallest and largest number of samples per question */
  samplesPerQuestion: { min: number; max: number };
  /** Think #R: % of responses containing `</think>`; null when there is no response field */
  thinkRatio: number | null;
  /** Token #N: mean tokens per response; null when `tokensSource` is `missing` */
  tokens: number | null;
  /** Where `tokens` came from. */
  tokensSource: TokenSource;
  /** Mean@n: accuracy (%) averaged over all samples of a question, then over questions */
  mean: number;
  /** The k values of `passAtK` and `voteAtK`. */
  k: number[];
  /** Pass@k (%) by k, Chen et al. (2021) unbiased estimator */
  passAtK: Record<string, number>;
  /** Vote@k (%) by k; null when there is no answer field */
  voteAtK: Record<string, number> | null;
  /** votes whose winning answer was graded both correct and incorrect in different samples */
  inconsistentVotes: number;
}

/** What `score` computed from a generations file. */
export interface ScoreReport {
  /** The generations file. */
  file: string;
  /** The field names used. */
  fields: FieldMap;
  /** The tie rule used. */
  voteTies: VoteTies;
  /** One entry per benchmark, by name. */
  benchmarks: BenchmarkScore[];
}

/**
 * Pass@k = 1 − C(n−c, k)/C(n, k), the probability that k samples drawn without replacement from
 * n (c of them correct) contain a correct one; computed as 1 − Π over i from n−c+1 to n of (1 − k/i).
 * @throws {@link WeightmixError} `InvalidArgument` unless n ≥ 1, 0 ≤ c ≤ n and k ≥ 1 are integers; `KTooLarge` when k exceeds n.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k) || n < 1 || c < 0 || c > n || k < 1) {
    throw new WeightmixError('InvalidArgument', `passAtK needs integers n ≥ 1, 0 ≤ c ≤ n, k ≥ 1 (got n=${n}, c=${c}, k=${k})`);
  }
  if (k > n) throw new WeightmixError('KTooLarge', `Pass@${k} needs at least ${k} samples per question, got ${n}`);
  if (n - c < k) return 1;
  let allWrong = 1;
  for (let i = n - c + 1; i <= n; i++) allWrong *= 1 - k / i;
  return 1 - allWrong;
}

/**
 * Majority vote over the first k samples: 1 if the most frequent extracted answer is correct,
 * else 0. Samples with a null answer do not vote (none voting = 0). Ties: `expected` returns the
 * share of correct answers among the tied ones; `first` takes the tied answer sampled first.
 * `inconsistent` reports a winner that was graded both ways.
 */
export function voteAtK(
  samples: readonly { answer: string | null; correct: boolean }[],
  k: number,
  ties: VoteTies = 'expected',
): { value: number; inconsistent: boolean } {
  if (!Number.isInteger(k) || k < 1) throw new WeightmixError('InvalidArgument', `Vote@k needs an integer k ≥ 1, got ${k}`);
  if (k > samples.length) throw new WeightmixError('KTooLarge', `Vote@${k} needs at least ${k} samples per question, got ${samples.length}`);
  const groups = new Map<string, { count: number; first: number; correct: number; graded: number }>();
  samples.slice(0, k).forEach((s, i) => {
    if (s.answer === null) return;
    const g = groups.get(s.answer) ?? { count: 0, first: i, correct: 0, graded: 0 };
    g.count++;
    g.graded++;
    if (s.correct) g.correct++;
    groups.set(s.answer, g);
  });
  if (groups.size === 0) return { value: 0, inconsistent: false };
  const top = extremes([...groups.values()].map((g) => g.count)).max;
  const tied = [...groups.values()].filter((g) => g.count === top).sort((a, b) => a.first - b.first);
  // A group is correct when most of its samples were graded correct (they should all agree).
  const isCorrect = (g: { correct: number; graded: number }) => g.correct * 2 > g.graded;
  const mixed = (g: { correct: number; graded: number }) => g.correct !== 0 && g.correct !== g.graded;
  if (ties === 'first') return { value: isCorrect(tied[0]) ? 1 : 0, inconsistent: mixed(tied[0]) };
  return { value: tied.filter(isCorrect).length / tied.length, inconsistent: tied.some(mixed) };
}

/** Parses `--k 1,8,64` into sorted, distinct positive integers. */
export function parseKList(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const ks = parts.map((p) => (/^[1-9][0-9]*$/.test(p) ? Number(p) : NaN));
  if (parts.length === 0 || ks.some((k) => !Number.isSafeInteger(k))) {
    throw usageError(`--k expects comma-separated positive integers such as 1,8,64, got '${text}'`);
  }
  return [...new Set(ks)].sort((a, b) => a - b);
}

export function parseVoteTies(text: string): VoteTies {
  if (text === 'expected' || text === 'first') return text;
  throw usageError(`--vote-ties expects expected or first, got '${text}'`);
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

interface QuestionState {
  samples: Map<number, { correct: boolean; answer: string | null; line: number }>;
  nextAuto: number;
}

interface BenchmarkState {
  questions: Map<string, QuestionState>;
  responses: number;
  thinking: number;
  tokenSum: number;
}

const SCORE_KEYS: OptionKeys<ScoreOptions> = {
  file: 'required',
  fields: 'optional',
  preset: 'optional',
  k: 'optional',
  whitespaceTokens: 'optional',
  tokenizer: 'optional',
  benchmark: 'optional',
  voteTies: 'optional',
  onDownload: 'optional',
  onNotice: 'optional',
  signal: 'optional',
};

/**
 * Scores a generations JSONL file; see `ScoreOptions`. Rejects the first malformed line with `file:line: reason`.
 * @throws {@link WeightmixError} `FileNotFound`, `NotAFile`, `MalformedGenerations`, `KTooLarge`, `InvalidArgument`, `Aborted` (`signal`).
 */
export async function score(options: ScoreOptions): Promise<ScoreReport> {
  checkOptions<ScoreOptions>('score', options, SCORE_KEYS);
  return withGuardedCallbacks(options, (guarded) => scoreAs(guarded, API_NAMES));
}

/** `score` for a front door that names options its own way (`name`: the command line's flags, `fields` being `--field`). */
export async function scoreAs(options: ScoreOptions, name: OptionNamer): Promise<ScoreReport> {
  checkOptions<ScoreOptions>('score', options, SCORE_KEYS);
  const fieldHint = (field: FieldName) => (name('fields') === 'fields' ? `fields: { ${field}: 'KEY' }` : `${name('fields')} ${field}=KEY`);
  const fields = resolveFields(options.preset ?? 'default', options.fields ?? {});
  const voteTies = options.voteTies ?? 'expected';
  if (voteTies !== 'expected' && voteTies !== 'first') throw usageError(`voteTies must be expected or first, got '${String(voteTies)}'`);
  if (options.k !== undefined && (!Array.isArray(options.k) || options.k.length === 0 || options.k.some((k) => !Number.isSafeInteger(k) || k < 1))) {
    throw usageError(`k must be a non-empty list of positive integers, got ${show(options.k)}`);
  }
  if (options.benchmark !== undefined && (typeof options.benchmark !== 'string' || options.benchmark === ''))
    throw usageError(`benchmark must be a non-empty name, got ${show(options.benchmark)}`);
  const file = options.file;
  if (typeof file !== 'string' || file === '') throw usageError(`file must be the path of a generations file, got ${show(file)}`);
  if (options.signal?.aborted) throw abortError(`score of ${file} was stopped`, options.signal);
  const defaultBenchmark = options.benchmark ?? path.basename(file).replace(/\.jsonl?$/i, '');
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch {
    throw new WeightmixError('FileNotFound', `cannot read generations file '${file}'`);
  }
  if (!stat.isFile()) throw new WeightmixError('NotAFile', `generations path '${file}' is not a file`);
  if (options.tokenizer !== undefined && options.whitespaceTokens)
    throw usageError(`${name('tokenizer')} and ${name('whitespaceTokens')} are two ways to count tokens: pass one`);
  const counter =
    options.tokenizer === undefined
      ? undefined
      : await loadTokenCounter(options.tokenizer, { onDownload: options.onDownload, onNotice: options.onNotice, signal: options.signal });

  const benchmarks = new Map<string, BenchmarkState>();
  // Optional fields must be present in every record or in none; the first record decides.
  const presence = new Map<FieldName, { present: boolean; line: number }>();
  function fail(line: number, msg: string): never {
    throw new WeightmixError('MalformedGenerations', `${file}:${line}: ${msg}`);
  }

  const input = fs.createReadStream(file, { encoding: 'utf8' });
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  let records = 0;
  try {
    for await (let text of lines) {
      lineNo++;
      // The signal stops the reading too, not only a hub tokenizer's download (Ctrl-C on a large file).
      if ((lineNo & 4095) === 0 && options.signal?.aborted) throw abortError(`score of ${file} was stopped`, options.signal);
      if (lineNo === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.trim() === '') continue;
      let record: unknown;
      try {
        record = JSON.parse(text);
      } catch (e) {
        fail(lineNo, `not valid JSON (${(e as Error).message.split('\n')[0]})`);
      }
      if (record === null || typeof record !== 'object' || Array.isArray(record)) fail(lineNo, `expected a JSON object, got ${show(record)}`);
      records++;
      ingest(record as Record<string, unknown>, lineNo);
    }
  } finally {
    lines.close();
    input.destroy();
  }
  if (records === 0) throw new WeightmixError('MalformedGenerations', `${file}: no records (expected one JSON object per line)`);

  function get(record: Record<string, unknown>, field: FieldName, line: number, required: boolean): unknown {
    const v = lookup(record, fields[field]);
    const present = v !== MISSING;
    if (required) {
      if (!present) fail(line, `missing field '${fields[field]}' (${field}); map it with ${fieldHint(field)}`);
      return v;
    }
    const seen = presence.get(field);
    if (!seen) presence.set(field, { present, line });
    else if (seen.present !== present) {
      fail(
        line,
        `field '${fields[field]}' (${field}) is ${present ? 'present' : 'missing'} here but ${seen.present ? 'present' : 'missing'} at line ${seen.line}; it must be in every record or in none`,
      );
    }
    return present ? v : undefined;
  }

  function ingest(record: Record<string, unknown>, line: number): void {
    const qRaw = get(record, 'question', line, true);
    if (!(typeof qRaw === 'string' || (typeof qRaw === 'number' && Number.isFinite(qRaw)))) {
      fail(line, `field '${fields.question}' (question) must be a string or number, got ${show(qRaw)}`);
    }
    const question = String(qRaw);
    const bRaw = get(record, 'benchmark', line, false);
    if (bRaw !== undefined && (typeof bRaw !== 'string' || bRaw === ''))
      fail(line, `field '${fields.benchmark}' (benchmark) must be a non-empty string, got ${show(bRaw)}`);
    const benchmark = (bRaw as string | undefined) ?? defaultBenchmark;

    const correctRaw = get(record, 'correct', line, true);
    const multi = Array.isArray(correctRaw);
    const n = multi ? (correctRaw as unknown[]).length : 1;
    if (multi && n === 0) fail(line, `field '${fields.correct}' (correct) is an empty array`);
    // In a multi-sample record every per-sample field is an array of the same length.
    const perSample = (field: FieldName, raw: unknown): unknown[] | undefined => {
      if (raw === undefined) return undefined;
      if (!multi) return [raw];
      if (!Array.isArray(raw) || raw.length !== n) {
        fail(line, `field '${fields[field]}' (${field}) must be an array of ${n} values like '${fields.correct}', got ${show(raw)}`);
      }
      return raw as unknown[];
    };
    const corrects = perSample('correct', correctRaw)!;
    const sampleIdx = perSample('sample', get(record, 'sample', line, false));
    const responses = perSample('response', get(record, 'response', line, false));
    const tokenVals = perSample('tokens', get(record, 'tokens', line, false));
    const answers = perSample('answer', get(record, 'answer', line, false));

    let state = benchmarks.get(benchmark);
    if (!state) {
      state = { questions: new Map(), responses: 0, thinking: 0, tokenSum: 0 };
      benchmarks.set(benchmark, state);
    }
    let q = state.questions.get(question);
    if (!q) {
      q = { samples: new Map(), nextAuto: 0 };
      state.questions.set(question, q);
    }
    for (let i = 0; i < n; i++) {
      const at = multi ? `[${i}]` : '';
      const c = corrects[i];
      let correct: boolean;
      if (typeof c === 'boolean') correct = c;
      else if (c === 0 || c === 1) correct = c === 1;
      else fail(line, `field '${fields.correct}${at}' (correct) must be true/false or 1/0, got ${show(c)}`);

      let index: number;
      if (sampleIdx) {
        const s = sampleIdx[i];
        if (!Number.isSafeInteger(s) || (s as number) < 0) fail(line, `field '${fields.sample}${at}' (sample) must be a non-negative integer, got ${show(s)}`);
        index = s as number;
      } else {
        index = q.nextAuto;
      }
      q.nextAuto = Math.max(q.nextAuto, index + 1);
      const dup = q.samples.get(index);
      if (dup) fail(line, `sample ${index} of question '${question}' (${benchmark}) already appeared at line ${dup.line}`);

      let answer: string | null = null;
      if (answers) {
        const a = answers[i];
        if (typeof a === 'string') answer = a.trim() === '' ? null : a.trim();
        else if (typeof a === 'number' && Number.isFinite(a)) answer = String(a);
        else if (a !== null) fail(line, `field '${fields.answer}${at}' (answer) must be a string, number or null, got ${show(a)}`);
      }

      let response: string | undefined;
      if (responses) {
        const r = responses[i];
        if (typeof r !== 'string') fail(line, `field '${fields.response}${at}' (response) must be a string, got ${show(r)}`);
        response = r as string;
      }

      let tokens: number | undefined;
      if (counter) {
        if (response === undefined) fail(line, `tokenizer token counts need the response text, but field '${fields.response}' (response) is missing`);
        tokens = counter.count(response!);
      } else if (options.whitespaceTokens) {
        if (response === undefined) fail(line, `whitespace token counts need the response text, but field '${fields.response}' (response) is missing`);
        tokens = response!.split(/\s+/).filter((w) => w !== '').length;
      } else if (tokenVals) {
        const t = tokenVals[i];
        if (Array.isArray(t)) tokens = t.length;
        else if (Number.isSafeInteger(t) && (t as number) >= 0) tokens = t as number;
        else fail(line, `field '${fields.tokens}${at}' (tokens) must be a non-negative integer or an array of token ids, got ${show(t)}`);
      }

      q.samples.set(index, { correct, answer, line });
      state.responses++;
      // Qwen3 Thinking templates open <think> in the prompt, so a response shows only the closing tag.
      if (response !== undefined && response.includes('</think>')) state.thinking++;
      if (tokens !== undefined) state.tokenSum += tokens;
    }
  }

  const hasResponse = presence.get('response')?.present ?? false;
  const hasAnswer = presence.get('answer')?.present ?? false;
  const tokensSource: TokenSource = counter ? 'tokenizer' : options.whitespaceTokens ? 'whitespace' : presence.get('tokens')?.present ? 'field' : 'missing';

  const out: BenchmarkScore[] = [];
  for (const [benchmark, state] of benchmarks) {
    const perQuestion = [...state.questions.entries()].map(([id, q]) => ({
      id,
      samples: [...q.samples.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s),
    }));
    const sizes = perQuestion.map((q) => q.samples.length);
    const { min: nMin, max: nMax } = extremes(sizes);
    // As the command's --k: each k once, ascending.
    const ks = options.k ? [...new Set(options.k)].sort((a, b) => a - b) : [...new Set([1, nMin])];
    for (const k of ks) {
      if (k > nMin) {
        const q = perQuestion.find((p) => p.samples.length === nMin)!;
        throw new WeightmixError(
          'KTooLarge',
          `k=${k} exceeds the ${nMin} samples of question '${q.id}' in benchmark '${benchmark}' (Pass@k and Vote@k need k ≤ n); use ${name('k')} values ≤ ${nMin} or score benchmarks separately`,
        );
      }
    }
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const pass: Record<string, number> = {};
    const vote: Record<string, number> | null = hasAnswer ? {} : null;
    let inconsistentVotes = 0;
    for (const k of ks) {
      pass[k] = 100 * avg(perQuestion.map((q) => passAtK(q.samples.length, q.samples.filter((s) => s.correct).length, k)));
      if (vote) {
        vote[k] =
          100 *
          avg(
            perQuestion.map((q) => {
              const v = voteAtK(q.samples, k, voteTies);
              if (v.inconsistent) inconsistentVotes++;
              return v.value;
            }),
          );
      }
    }
    out.push({
      benchmark,
      questions: perQuestion.length,
      samples: state.responses,
      samplesPerQuestion: { min: nMin, max: nMax },
      thinkRatio: hasResponse ? (100 * state.thinking) / state.responses : null,
      tokens: tokensSource === 'missing' ? null : state.tokenSum / state.responses,
      tokensSource,
      mean: 100 * avg(perQuestion.map((q) => q.samples.filter((s) => s.correct).length / q.samples.length)),
      k: ks,
      passAtK: pass,
      voteAtK: vote,
      inconsistentVotes,
    });
  }
  return { file, fields, voteTies, benchmarks: out };
}
