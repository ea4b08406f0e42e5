/** `weightmix diff A B`: relative distance, cosine and max |B−A| per tensor, layer and module class, and σ and the paper's σ for the pair. */
import type { Command } from 'commander';
import type { DiffReport } from '../analysis/diff';
import { chartFormat } from '../analysis/plot';
import { parseThreads } from '../options';
import { createReporter } from './reporter';

interface DiffCliOptions {
  json?: boolean;
  tensors?: boolean;
  plot?: string;
  threads?: string;
}

export function register(program: Command): void {
  program
    .command('diff')
    .description("how far apart two models are: ‖B−A‖/‖A‖, cosine and max |B−A| per tensor, layer and module class; σ and the paper's Table 1 σ for the pair")
    .argument('<a>', 'first model, a folder or a hub id ORG/NAME[@REVISION] (A; distances are relative to its norm, e.g. the Instruct model)')
    .argument('<b>', 'second model, a folder or a hub id (B, e.g. the Thinking model)')
    .option('--json', 'print the whole report as JSON')
    .option('--tensors', 'also list every tensor in the table')
    .option('--plot <file>', 'also draw the per-layer profile by module class to FILE (.svg or .png)')
    .option('--threads <n>', 'worker threads (default: number of cores)')
    .action(async (a: string, b: string, opts: DiffCliOptions) => {
      // Bad options fail before any bytes are read.
      if (opts.plot !== undefined) chartFormat(opts.plot);
      const threads = parseThreads(opts.threads);
      // Loaded on use (cli.ts): the engine and the report's writers cost every other command's start-up.
      const [{ diff }, { formatDiffReport, plotDiff }] = await Promise.all([import('../analysis/diff'), import('../analysis/diff-output')]);
      // Progress bars on a TTY only (the reporter's rule), notices always; the report itself goes to stdout (as text or --json).
      const reporter = createReporter<DiffReport>({}, 'diff', () => '');
      const report = await reporter.run((hooks) =>
        diff({ a, b, threads, onProgress: hooks.onProgress, onDownload: hooks.onDownload, onNotice: hooks.onNotice, signal: hooks.signal }),
      );
      if (opts.plot !== undefined) await plotDiff(report, opts.plot);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatDiffReport(report, { tensors: opts.tensors, plotFile: opts.plot }));
    });
}
