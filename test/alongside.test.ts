import { alongside, besideReserved } from '../lib/engine/alongside';

/** A promise settled by hand, and whether it has settled. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('alongside: the engine run and the output files side by side', () => {
  test("resolves to the run's value once both have settled", async () => {
    const run = deferred<number>();
    const files = deferred<void>();
    let settled = false;
    const both = alongside(run.promise, files.promise).then((v) => ((settled = true), v));
    run.resolve(7);
    await tick();
    expect(settled).toBe(false);
    files.resolve();
    await expect(both).resolves.toBe(7);
  });

  test('a failed run is thrown only after the files settle (an abort must not remove a folder still being written)', async () => {
    const run = deferred<number>();
    const files = deferred<void>();
    let settled = false;
    const both = alongside(run.promise, files.promise).then(
      () => (settled = true),
      (e: Error) => ((settled = true), e.message),
    );
    run.reject(new Error('engine failed'));
    await tick();
    expect(settled).toBe(false);
    files.resolve();
    await expect(both).resolves.toBe('engine failed');
  });

  test("the run's failure comes before the files'; the files' failure alone is thrown", async () => {
    await expect(alongside(Promise.reject(new Error('run')), Promise.reject(new Error('files')))).rejects.toThrow('run');
    await expect(alongside(Promise.resolve(1), Promise.reject(new Error('files')))).rejects.toThrow('files');
  });
});

describe("besideReserved: the other files wait for the shards' reservation", () => {
  test('the files start when the engine says the shards are reserved, not before', async () => {
    const run = deferred<number>();
    let signal!: () => void;
    let started = false;
    const both = besideReserved(
      (onReserved) => ((signal = onReserved), run.promise),
      async () => {
        started = true;
      },
    );
    await tick();
    expect(started).toBe(false);
    signal();
    await tick();
    expect(started).toBe(true);
    run.resolve(3);
    await expect(both).resolves.toBe(3);
  });

  test('a run that settles without saying so: an older engine that succeeded writes them then, a failed run none', async () => {
    const ok = deferred<number>();
    let started = false;
    const done = besideReserved(
      () => ok.promise,
      async () => {
        started = true;
      },
    );
    await tick();
    expect(started).toBe(false);
    ok.resolve(1);
    await expect(done).resolves.toBe(1);
    expect(started).toBe(true);

    const failed = deferred<number>();
    started = false;
    const failure = besideReserved(
      () => failed.promise,
      async () => {
        started = true;
      },
    );
    failed.reject(new Error('no space'));
    await expect(failure).rejects.toThrow('no space');
    expect(started).toBe(false);
  });
});
