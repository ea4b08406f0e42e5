/**
 * SIGINT / SIGTERM / SIGHUP (a closed terminal, a dropped SSH session) become an AbortSignal; the exit status after cleanup
 * is 130 / 143 / 129 (`interruptedStatus`) where the run
 * stopped, 0 where it had finished (its output published) before it could stop; a second one
 * ends the process at once. A closed standard output (`| head -1`) stops the run the same way, as
 * SIGPIPE would (141), instead of merging on for nobody.
 */
export interface SignalAbort {
  signal: AbortSignal;
  dispose(): void;
}

let stoppedWith: number | undefined;

/** The exit status of the signal that stopped this process's run (130, 143, 129, or 141 for a closed stdout); undefined when none came. */
export function interruptedStatus(): number | undefined {
  return stoppedWith;
}

export function abortOnSignals(): SignalAbort {
  stoppedWith = undefined; // a new run (the tests run several in one process)
  const controller = new AbortController();
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', () => stop('SIGINT', 130)],
    ['SIGTERM', () => stop('SIGTERM', 143)],
    // Its default ended the process at once, leaving a sweep's temporary folders (GBs each) until a run on the same outputs.
    ['SIGHUP', () => stop('SIGHUP', 129)],
  ];
  function stop(name: NodeJS.Signals, status: number) {
    if (controller.signal.aborted) {
      if (name === 'SIGPIPE') return;
      // A second signal ends the process at once, as signals do by default: the first may wait on a
      // read that blocks (a hung network disk), which process.exit() would wait for too. The next run
      // on the same output removes the temporary folder left then.
      dispose();
      process.kill(process.pid, name);
      return;
    }
    // Not process.exitCode: a run that finishes anyway (its output already published) exits 0.
    stoppedWith = status;
    controller.abort(new Error(`interrupted by ${name}`));
  }
  const onStdoutError = (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') stop('SIGPIPE', 141);
  };
  function dispose() {
    for (const [name, fn] of handlers) process.off(name, fn);
    process.stdout.off('error', onStdoutError);
  }
  for (const [name, fn] of handlers) process.on(name, fn);
  process.stdout.on('error', onStdoutError);
  return { signal: controller.signal, dispose };
}
