/** SIGINT / SIGTERM become an AbortSignal; the exit status after cleanup is 130 / 143. */
export interface SignalAbort {
  signal: AbortSignal;
  dispose(): void;
}

export function abortOnSignals(): SignalAbort {
  const controller = new AbortController();
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', () => stop('SIGINT', 130)],
    ['SIGTERM', () => stop('SIGTERM', 143)],
  ];
  function stop(name: NodeJS.Signals, status: number) {
    if (controller.signal.aborted) return;
    process.exitCode = status;
    controller.abort(new Error(`interrupted by ${name}`));
  }
  for (const [name, fn] of handlers) process.on(name, fn);
  return {
    signal: controller.signal,
    dispose() {
      for (const [name, fn] of handlers) process.off(name, fn);
    },
  };
}
