/** An async map that runs a few calls at once and still fails as a loop over the items would. */

/**
 * `fn` over `items`, at most `limit` calls at once, the results in item order. Fails with the failure of the first item
 * (in item order) that fails, as a loop awaiting one call at a time would, once every call started has settled; items after
 * a failed one are not started.
 */
export async function mapInOrder<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const settled: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  let firstFailed = items.length;
  const worker = async () => {
    for (let i = next++; i < items.length && i < firstFailed; i = next++) {
      try {
        settled[i] = { status: 'fulfilled', value: await fn(items[i]) };
      } catch (reason) {
        settled[i] = { status: 'rejected', reason };
        firstFailed = Math.min(firstFailed, i);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (firstFailed < items.length) throw (settled[firstFailed] as PromiseRejectedResult).reason;
  return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
}
