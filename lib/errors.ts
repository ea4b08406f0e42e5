import type { WeightmixErrorCode } from './error-codes';

export type { WeightmixErrorCode } from './error-codes';

/** The codes whose exit status is 2, as a usage error's (docs/errors.md). */
const USAGE_CODES: ReadonlySet<WeightmixErrorCode> = new Set<WeightmixErrorCode>(['Usage', 'UnsupportedChartFormat']);

/**
 * An error a user can cause (bad input, a full disk, an abort), never a bug. `code` is stable and
 * documented in docs/errors.md; the CLI prints `message` as one line and exits with `exitCode`.
 *
 * @example
 * ```ts
 * try { await interpolate(options); }
 * catch (e) { if (isWeightmixError(e) && e.code === 'OutputExists') console.error('pass force: true'); else throw e; }
 * ```
 */
export class WeightmixError extends Error {
  /** Which kind of failure this is; see docs/errors.md. */
  readonly code: WeightmixErrorCode;
  /** The command line's exit status for it: 2 for `Usage` and `UnsupportedChartFormat` (the caller's words are wrong), else 1. */
  readonly exitCode: number;

  constructor(code: WeightmixErrorCode, message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    // An abort is named as the platform names one (DOMException's 'AbortError'), so `e.name === 'AbortError'` checks work.
    this.name = code === 'Aborted' ? 'AbortError' : 'WeightmixError';
    this.code = code;
    this.exitCode = options.exitCode ?? (USAGE_CODES.has(code) ? 2 : 1);
  }
}

/** A usage error: bad flags or option values (exit status 2). */
export function usageError(message: string): WeightmixError {
  return new WeightmixError('Usage', message);
}

/** The error an aborted run rejects with: name 'AbortError', code 'Aborted', cause the signal's reason. */
export function abortError(message: string, signal: AbortSignal | undefined): WeightmixError {
  return new WeightmixError('Aborted', message, signal?.aborted ? { cause: signal.reason } : {});
}

/** Whether `e` is a WeightmixError (narrows it, so `e.code` is typed). */
export function isWeightmixError(e: unknown): e is WeightmixError {
  return e instanceof WeightmixError;
}

/**
 * A file-system failure (a full disk, an I/O error, a path the system refuses) is the user's environment, not a bug: it becomes a
 * one-line `NoSpace` or `IoError` that says what was being done. Anything else (a WeightmixError, a bug) is returned as it is.
 */
export function environmentError(e: unknown, doing: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (e instanceof WeightmixError || typeof err?.code !== 'string' || typeof err.syscall !== 'string') return e;
  const code = err.code === 'ENOSPC' || err.code === 'EDQUOT' ? 'NoSpace' : 'IoError';
  return new WeightmixError(code, `${doing}: ${err.message}`, { cause: e });
}
