/** `weightmix diff A B`: relative distance, cosine and max |B−A| per tensor, layer and module class, and σ for the pair. */
import type { Command } from 'commander';
import * as cliProgress from 'cli-progress';
import { diff, formatDiffReport, plotDiff, type DiffProgress } from '../analysis/diff';
import { chartFormat } from '../analysis/plot';
import { parseThreads } from '../options';
import { abortOnSignals } from './signals';

interface DiffCliOptions {
  json?: boolean;
  tensors?: boolean;
  plot?: string;
  threads?: string;
}

export function register(program: Command): void {
  program
    .command('diff')
    .description('how far apart two models are: ‖B−A‖/‖A‖, cosine and max |B−A| per tensor, layer and module class, and σ for the pair')
    .argument('<a>', 'first model folder (A; distances are relative to its norm, e.g. the Instruct model)')
    .argument('<b>', 'second model folder (B, e.g. the Thinking model)')
    .option('--json', 'print the whole report as JSON')
    .option('--tensors', 'also list every tensor in the table')
    .option('--plot <file>', 'also draw the per-layer profile by module class to FILE (.svg or .png)')
    .option('--threads <n>', 'worker threads (default: number of cores)')
    .action(async (a: string, b: string, opts: DiffCliOptions) => {
      // Bad options fail before any bytes are read.
      if (opts.plot !== undefined) chartFormat(opts.plot);
      const threads = parseThreads(opts.threads);
      const signals = abortOnSignals();
      const progress = process.stderr.isTTY ? progressBar() : undefined;
      let report;
      try {
        report = await diff({ a, b, threads, onProgress: progress?.update, signal: signals.signal });
      } finally {
        progress?.stop();
        signals.dispose();
      }
      if (opts.plot !== undefined) await plotDiff(report, opts.plot);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatDiffReport(report, { tensors: opts.tensors, plotFile: opts.plot }));
    });
}

/** A bytes bar on stderr (only used when stderr is a terminal). */
function progressBar(): { update(p: DiffProgress): void; stop(): void } {
  let bar: cliProgress.SingleBar | undefined;
  return {
    update(p) {
      if (!bar) {
        bar = new cliProgress.SingleBar(
          { format: 'diff {bar} {percentage}% | {done}/{all} GB | {rate} GB/s | ETA {eta}s', hideCursor: true, stream: process.stderr },
          cliProgress.Presets.shades_classic,
        );
        bar.start(p.bytesTotal, 0);
      }
      bar.update(p.bytesDone, {
        done: (p.bytesDone / 1e9).toFixed(2),
        all: (p.bytesTotal / 1e9).toFixed(2),
        rate: (p.bytesDone / 1e9 / Math.max(p.seconds, 1e-3)).toFixed(2),
      });
    },
    stop() {
      bar?.stop();
    },
  };
}
