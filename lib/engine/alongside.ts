/**
 * The engine's write pass and the writing of an output's other files (index, config, tokenizer, model card) side by
 * side: the main thread waits idle while the engine runs, so those files cost the run no time of their own.
 */

/**
 * Resolves to `run`'s value once both have settled; rejects with `run`'s failure first, else `files`'. Neither failure is
 * thrown before the other promise settles, so that a caller's abort never removes a folder still being written.
 */
export async function alongside<T>(run: Promise<T>, files: Promise<unknown>): Promise<T> {
  const [ran, wrote] = await Promise.allSettled([run, files]);
  if (ran.status === 'rejected') throw ran.reason;
  if (wrote.status === 'rejected') throw wrote.reason;
  return ran.value;
}

/**
 * `alongside`, with the other files started once the engine has reserved the shards' space: the engine reserves while
 * its workers start (native/output_reservations.h), and the small files must not take a nearly full disk's last pages
 * first — the shards' reservation is what fails, naming the bytes missing. A run that settles without saying so (an
 * older engine) starts them then if it succeeded; a failed one writes none.
 */
export function besideReserved<T>(run: (onReserved: () => void) => Promise<T>, files: () => Promise<unknown>): Promise<T> {
  let decide!: (write: boolean) => void;
  const ready = new Promise<boolean>((resolve) => (decide = resolve));
  const running = run(() => decide(true));
  running.then(
    () => decide(true),
    () => decide(false),
  );
  return alongside(
    running,
    ready.then((write) => (write ? files() : undefined)),
  );
}
