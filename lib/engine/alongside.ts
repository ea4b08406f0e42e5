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
