/** Errors a user can cause carry a stable `code`; the CLI prints them as one line and exits 1 (2 for usage). */
export class WeightmixError extends Error {
  readonly code: string;
  readonly exitCode: number;

  constructor(code: string, message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WeightmixError';
    this.code = code;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** A usage error: bad flags or option values (exit status 2). */
export function usageError(message: string): WeightmixError {
  return new WeightmixError('Usage', message, { exitCode: 2 });
}

export function isWeightmixError(e: unknown): e is WeightmixError {
  return e instanceof WeightmixError;
}
