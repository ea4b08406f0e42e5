/**
 * How every long command talks to its user: a progress bar on a TTY, JSON lines with --json,
 * nothing with --quiet; notices as one line; Ctrl-C / SIGTERM abort cleanly.
 */
import type * as CliProgress from 'cli-progress';
import { abortOnSignals } from './signals';
import type { DownloadProgress } from '../hub/snapshot-download';

export interface ByteProgress {
  bytesDone: number;
  bytesTotal: number;
  seconds: number;
  tensorsDone?: number;
  tensorsTotal?: number;
}

export interface RunHooks {
  onProgress: (p: ByteProgress) => void;
  /** A hub download before the run: its own bar, `{"event":"download",…}` lines with --json. */
  onDownload: (p: DownloadProgress) => void;
  onNotice: (message: string) => void;
  signal: AbortSignal;
}

export interface Reporter<S> {
  run(fn: (hooks: RunHooks) => Promise<S>): Promise<S>;
  /** Prints the final summary: a JSON `done` event, or `describe(summary)` as text. */
  done(summary: S): void;
}

export function createReporter<S extends object>(opts: { json?: unknown; quiet?: unknown }, label: string, describe: (summary: S) => string): Reporter<S> {
  const json = Boolean(opts.json);
  const quiet = Boolean(opts.quiet);
  const tty = process.stderr.isTTY && !json && !quiet;
  // The bars' library, loaded by run() on a TTY only (a third of the CLI's start-up when every command loaded it).
  let cliProgress: typeof CliProgress | undefined;
  let bar: CliProgress.SingleBar | undefined;
  let lastJson = 0;
  const onProgress = (p: ByteProgress) => {
    if (json) {
      const now = Date.now();
      if (now - lastJson < 500 && p.bytesDone < p.bytesTotal) return;
      lastJson = now;
      process.stdout.write(JSON.stringify({ event: 'progress', ...p }) + '\n');
    } else if (cliProgress) {
      if (!bar) {
        const tensors = p.tensorsTotal === undefined ? '' : ' | {tensors}/{tensorsTotal} tensors';
        bar = new cliProgress.SingleBar(
          { format: `${label} {bar} {percentage}% | {done}/{all} GB${tensors} | {rate} GB/s | ETA {eta}s`, hideCursor: true, stream: process.stderr },
          cliProgress.Presets.shades_classic,
        );
      }
      const payload = {
        done: (p.bytesDone / 1e9).toFixed(2),
        all: (p.bytesTotal / 1e9).toFixed(2),
        tensors: p.tensorsDone,
        tensorsTotal: p.tensorsTotal,
        rate: (p.bytesDone / 1e9 / Math.max(p.seconds, 1e-3)).toFixed(2),
      };
      // Started with its payload: start() draws a first frame at once, which showed the format's {placeholders}.
      if (!bar.isActive) bar.start(p.bytesTotal, p.bytesDone, payload);
      // A new pass (statistics before the write): the same bar, refilled.
      else if (bar.getTotal() !== p.bytesTotal) bar.setTotal(p.bytesTotal);
      bar.update(p.bytesDone, payload);
    }
  };
  let downloadBar: CliProgress.SingleBar | undefined;
  let lastDownloadJson = 0;
  const onDownload = (p: DownloadProgress) => {
    const finished = p.filesDone === p.filesTotal;
    if (json) {
      const now = Date.now();
      if (now - lastDownloadJson < 500 && !finished && p.bytesDone > 0) return;
      lastDownloadJson = now;
      process.stdout.write(JSON.stringify({ event: 'download', ...p }) + '\n');
    } else if (cliProgress) {
      if (!downloadBar) {
        downloadBar = new cliProgress.SingleBar(
          {
            format: `download ${p.repo} {bar} {percentage}% | {done}/{all} GB | {files}/{filesTotal} files | {rate} MB/s`,
            hideCursor: true,
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        );
      }
      const payload = {
        done: (p.bytesDone / 1e9).toFixed(2),
        all: (p.bytesTotal / 1e9).toFixed(2),
        files: p.filesDone,
        filesTotal: p.filesTotal,
        rate: (p.bytesReceived / 1e6 / Math.max(p.seconds, 1e-3)).toFixed(0),
      };
      if (!downloadBar.isActive) downloadBar.start(p.bytesTotal, p.bytesDone, payload);
      downloadBar.update(p.bytesDone, payload);
      if (finished) {
        downloadBar.stop();
        downloadBar = undefined;
      }
    }
  };
  const onNotice = (message: string) => {
    if (json) process.stdout.write(JSON.stringify({ event: 'notice', message }) + '\n');
    else if (!quiet) process.stderr.write(`weightmix: ${message}\n`);
  };
  return {
    async run(fn) {
      if (tty) cliProgress = await import('cli-progress');
      const signals = abortOnSignals();
      try {
        return await fn({ onProgress, onDownload, onNotice, signal: signals.signal });
      } finally {
        downloadBar?.stop();
        bar?.stop();
        signals.dispose();
      }
    },
    done(summary) {
      if (json) process.stdout.write(JSON.stringify({ event: 'done', ...summary }) + '\n');
      else if (!quiet) process.stdout.write(describe(summary) + '\n');
    },
  };
}
