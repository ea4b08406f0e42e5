/**
 * A library caller's notification callbacks (`onNotice`, `onDownload`) made safe to call from anywhere in a run: one that
 * throws, or an async one whose promise rejects, stops the run (through the run's own cancellation, so nothing is published
 * and the temporary folders go) and the run rejects with what the callback threw. Called bare, a throw would escape from
 * wherever the notice was given (an event handler among them) and a rejection would end the process unhandled.
 */

/** Whether a callback returned a promise (or another thenable), whose rejection is then the run's to handle. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** Runs a caller's callback (`call`) so that its failure reaches `fail`: a throw, or the rejection of a promise it returns. */
export function callGuarded(call: () => unknown, fail: (error: unknown) => void): void {
  try {
    const returned = call();
    if (isThenable(returned)) returned.then(undefined, fail);
  } catch (e) {
    fail(e);
  }
}

/** The options a guarded front door hands its callbacks and signal in. */
export interface NotifyingOptions {
  onNotice?: (message: string) => void;
  onDownload?: (progress: never) => void;
  signal?: AbortSignal;
}

/**
 * Runs `run` with `options`' notification callbacks guarded and its signal replaced by one that also fires when a callback
 * fails: a run that this stops rejects with the callback's error, not an abort. One that had passed its last check (a merge
 * that publishes: its output is there) resolves as it would have, and the failure is dropped, as one after it settled is. The
 * caller's own abort keeps its reason and its 'Aborted' error.
 */
export async function withGuardedCallbacks<O extends NotifyingOptions, T>(options: O, run: (guarded: O) => Promise<T>): Promise<T> {
  if (options.onNotice === undefined && options.onDownload === undefined) return run(options);
  const controller = new AbortController();
  const caller = options.signal;
  let failed: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    if (failed !== undefined || controller.signal.aborted) return;
    failed = { error };
    controller.abort(error);
  };
  const follow = () => controller.abort(caller?.reason);
  if (caller?.aborted) follow();
  else caller?.addEventListener('abort', follow, { once: true });
  const guard = <A extends unknown[]>(callback: ((...args: A) => void) | undefined) =>
    callback === undefined
      ? undefined
      : (...args: A) => {
          if (failed === undefined) callGuarded(() => callback(...args), fail);
        };
  try {
    return await run({ ...options, onNotice: guard(options.onNotice), onDownload: guard(options.onDownload), signal: controller.signal });
  } catch (e) {
    if (failed !== undefined) throw failed.error;
    throw e;
  } finally {
    caller?.removeEventListener('abort', follow);
  }
}
