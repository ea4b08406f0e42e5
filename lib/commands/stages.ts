/** `weightmix stages METRICS.csv|json`: assign each λ to the paper's Stage 1, 2 or 3 and recommend one. */
import type { Command } from 'commander';
import { readMetricsTable } from '../analysis/metrics-table';
import { chartFormat, plotStages } from '../analysis/plot';
import { formatLambda, parseThreshold, stages, DEFAULT_STAGE_OPTIONS, type StageReport } from '../analysis/stages';
import { textTable } from '../analysis/text-table';
import { usageError } from '../errors';

interface StagesCliOptions {
  json?: boolean;
  plot?: string;
  emergenceThreshold?: string;
  saturationThreshold?: string;
}

export function register(program: Command): void {
  program
    .command('stages')
    .description("assign each λ of a sweep to the paper's three stages (from Think #R) and recommend a λ")
    .argument('<metrics>', 'per-λ metrics table: CSV (benchmark,k,lambda,mean,best,tokens,think_ratio), a JSON array, or JSON Lines (one row object per line)')
    .option('--json', 'print the report as JSON')
    .option('--plot <file>', 'also draw the stage chart to FILE (.svg or .png)')
    .option('--emergence-threshold <pct>', `Think #R (%) above which thinking has emerged on a benchmark (default ${DEFAULT_STAGE_OPTIONS.emergenceThreshold})`)
    .option('--saturation-threshold <pct>', `Think #R (%) every benchmark must reach for saturation (default ${DEFAULT_STAGE_OPTIONS.saturationThreshold})`)
    .action(async (file: string, opts: StagesCliOptions) => {
      if (opts.plot !== undefined) chartFormat(opts.plot);
      const thresholds = {
        emergenceThreshold: opts.emergenceThreshold === undefined ? undefined : parseThreshold('--emergence-threshold', opts.emergenceThreshold),
        saturationThreshold: opts.saturationThreshold === undefined ? undefined : parseThreshold('--saturation-threshold', opts.saturationThreshold),
      };
      // Checked here too, before the table is read, so that the message names the flags (the library's names its options).
      const emergence = thresholds.emergenceThreshold ?? DEFAULT_STAGE_OPTIONS.emergenceThreshold;
      const saturation = thresholds.saturationThreshold ?? DEFAULT_STAGE_OPTIONS.saturationThreshold;
      if (saturation <= emergence) throw usageError(`--saturation-threshold (${saturation}) must exceed --emergence-threshold (${emergence})`);
      const rows = await readMetricsTable(file);
      const report = stages(rows, thresholds);
      if (opts.plot !== undefined) await plotStages(rows, report, opts.plot);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatStageReport(report, opts.plot));
    });
}

/** The human-readable table `stages` prints. */
export function formatStageReport(report: StageReport, plotFile?: string): string {
  const head = ['λ', 'stage', 'Think #R min', 'max', 'Mean@k', 'Token #N (geo)', 'benchmarks'];
  const body = report.lambdas.map((l) => [
    formatLambda(l.lambda),
    String(l.stage),
    l.thinkRatio.min.toFixed(1),
    l.thinkRatio.max.toFixed(1),
    l.mean.toFixed(1),
    l.tokens.toFixed(0),
    String(l.benchmarks.length),
  ]);
  const list = (ls: number[]) => (ls.length ? ls.map(formatLambda).join(', ') : '(none)');
  const out = [
    ...textTable(head, body),
    '',
    `Stage 1 (Instruct-dominated): ${list(report.stage1)}`,
    `Stage 2 (thinking emerges):   ${list(report.stage2)}`,
    `Stage 3 (over-thinking):      ${list(report.stage3)}`,
    `Recommended λ: ${report.recommended === null ? '(none)' : formatLambda(report.recommended)}`,
    '',
    report.explanation,
    ...report.warnings.map((w) => `warning: ${w}`),
    ...(plotFile ? [`chart: ${plotFile}`] : []),
  ];
  return `${out.join('\n')}\n`;
}
