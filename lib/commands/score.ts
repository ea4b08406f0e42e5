/** `weightmix score GENERATIONS.jsonl`: Think #R, Token #N, Mean@n, Pass@k, Vote@k per benchmark. */
import type { Command } from 'commander';
import type { ScoreReport } from '../analysis/score';
import { CLI_FLAGS, type OptionNamer } from '../api/validate-options';
import { parseFieldAssignments, parseFieldPreset } from '../analysis/score-fields';
import { textTable } from '../analysis/text-table';
import { usageError } from '../errors';
import { createReporter } from './reporter';

interface ScoreCliOptions {
  k?: string;
  field?: string[];
  preset: string;
  benchmark?: string;
  whitespaceTokens?: boolean;
  tokenizer?: string;
  voteTies: string;
  json?: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function register(program: Command): void {
  program
    .command('score')
    .description("the paper's metrics from sampled generations (JSONL, one sample per line)")
    .argument('<generations>', 'JSONL file of graded generations')
    .option('--k <list>', 'k values for Pass@k and Vote@k, comma-separated (default: 1 and n per benchmark)')
    .option(
      '--field <name=key>',
      'where a field lives: question, sample, response, correct, tokens, answer, benchmark (repeatable; dotted paths allowed)',
      collect,
    )
    .option('--preset <name>', 'field names: default, vllm or opencompass', 'default')
    .option('--benchmark <name>', 'benchmark name for records without one (default: the file name)')
    .option('--whitespace-tokens', 'count whitespace-separated words as Token #N, instead of any recorded token count (labelled as such)')
    .option(
      '--tokenizer <model>',
      "count Token #N with this model's tokenizer.json: a folder or a hub id ORG/NAME[@REVISION] (only its tokenizer files are downloaded)",
    )
    .option('--vote-ties <rule>', 'Vote@k ties: expected (share of correct tied answers) or first (earliest sampled)', 'expected')
    .option('--json', 'print the report as JSON')
    .action(async (file: string, opts: ScoreCliOptions) => {
      if (opts.benchmark === '') throw usageError("--benchmark expects a non-empty name, got ''");
      // Loaded on use (cli.ts): the scorer and its tokenizers cost every other command's start-up.
      const { parseKList, parseVoteTies, scoreAs } = await import('../analysis/score');
      // A hub --tokenizer's download: a progress bar on a TTY, its notices always.
      const reporter = createReporter<ScoreReport>({}, 'score', () => '');
      const report = await reporter.run((hooks) =>
        scoreAs(
          {
            file,
            preset: parseFieldPreset(opts.preset),
            fields: parseFieldAssignments(opts.field ?? []),
            k: opts.k === undefined ? undefined : parseKList(opts.k),
            benchmark: opts.benchmark,
            whitespaceTokens: opts.whitespaceTokens === true,
            tokenizer: opts.tokenizer,
            voteTies: parseVoteTies(opts.voteTies),
            onDownload: hooks.onDownload,
            onNotice: hooks.onNotice,
            signal: hooks.signal,
          },
          SCORE_FLAGS,
        ),
      );
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatScoreReport(report));
    });
}

/** The command's spelling of score's options: the field map is the repeatable `--field`. */
const SCORE_FLAGS: OptionNamer = (key) => (key === 'fields' ? '--field' : CLI_FLAGS(key));

/** The human-readable table `score` prints. */
export function formatScoreReport(report: ScoreReport): string {
  const ks = [...new Set(report.benchmarks.flatMap((b) => b.k))].sort((a, b) => a - b);
  const hasVote = report.benchmarks.some((b) => b.voteAtK !== null);
  const source = report.benchmarks[0]?.tokensSource ?? 'missing';
  const tokenHead = source === 'whitespace' ? 'Token #N (words)' : source === 'tokenizer' ? 'Token #N (tokenizer)' : 'Token #N';
  const head = [
    'benchmark',
    'questions',
    'samples',
    'Think #R',
    tokenHead,
    'Mean@n',
    ...ks.map((k) => `Pass@${k}`),
    ...(hasVote ? ks.map((k) => `Vote@${k}`) : []),
  ];
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x.toFixed(1));
  const body = report.benchmarks.map((b) => [
    b.benchmark,
    String(b.questions),
    b.samplesPerQuestion.min === b.samplesPerQuestion.max
      ? `${b.samples} (${b.samplesPerQuestion.min}/q)`
      : `${b.samples} (${b.samplesPerQuestion.min}-${b.samplesPerQuestion.max}/q)`,
    pct(b.thinkRatio),
    b.tokens === null ? '-' : b.tokens.toFixed(0),
    pct(b.mean),
    ...ks.map((k) => pct(b.passAtK[k])),
    ...(hasVote ? ks.map((k) => pct(b.voteAtK?.[k])) : []),
  ]);
  const notes: string[] = ['rates in %; Mean@n averages all n samples per question; Pass@k is the unbiased estimator of Chen et al. (2021)'];
  if (report.benchmarks.some((b) => b.thinkRatio === null)) notes.push(`Think #R: no response field ('${report.fields.response}')`);
  if (source === 'missing')
    notes.push(`Token #N: no token count field ('${report.fields.tokens}'); map one with --field tokens=KEY or pass --tokenizer MODEL or --whitespace-tokens`);
  if (source === 'whitespace') notes.push('Token #N counts whitespace-separated words, not tokenizer tokens');
  if (!hasVote) notes.push(`Vote@k: no extracted answer field ('${report.fields.answer}')`);
  else notes.push(`Vote@k ties: ${report.voteTies === 'expected' ? 'share of correct answers among the tied ones' : 'the tied answer sampled first'}`);
  const inconsistent = report.benchmarks.reduce((a, b) => a + b.inconsistentVotes, 0);
  if (inconsistent) notes.push(`${inconsistent} vote(s) picked an answer graded both correct and incorrect; a majority of its grades decided`);
  return `${textTable(head, body).join('\n')}\n\n${notes.map((n) => `note: ${n}`).join('\n')}\n`;
}
