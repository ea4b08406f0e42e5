/**
 * A library caller's onNotice and onDownload that throw or reject (lib/api/guarded-callbacks.ts): the run stops and rejects
 * with the callback's error, nothing is published and nothing is left. An async callback's rejection was unhandled: the
 * process ended (Node's default), and before that the run went on and published.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withGuardedCallbacks, type NotifyingOptions } from '../lib/api/guarded-callbacks';
import { abortError } from '../lib/errors';
import { tempFolderName } from '../lib/engine/output-leftovers';
import { interpolate, merge, mergeBatch, resolveModelReference, sweep, type CheckpointPair } from '../lib/index';
import { cachedPair, leftoversBeside } from './helpers/cli';
import { filesFromFolder, HubServer, isolatedHubEnv, repoOf, startHubServer } from './helpers/hub-server';
import { dir as root, useTempDir } from './helpers/temp-dir';
import { deadPid } from './helpers/transaction-cases';

useTempDir('wm-guarded-callbacks-');

/** Settles once `signal` fires, rejecting as a run's abort check does. */
const abortOf = (signal: AbortSignal) =>
  new Promise<never>((_, reject) => {
    const fire = () => reject(abortError('the merge was aborted', signal));
    if (signal.aborted) fire();
    else signal.addEventListener('abort', fire, { once: true });
  });

/** Unhandled rejections seen while `body` runs and a moment after. */
async function unhandledDuring(body: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const listener = (e: unknown) => seen.push(e);
  process.on('unhandledRejection', listener);
  try {
    await body();
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    process.off('unhandledRejection', listener);
  }
  return seen;
}

describe('withGuardedCallbacks', () => {
  const failure = new Error('notice sink failed');

  test('without callbacks the run gets the options as given', async () => {
    const options = { signal: new AbortController().signal };
    await expect(withGuardedCallbacks(options, async (o) => o)).resolves.toBe(options);
  });

  test("a callback that rejects, or throws, fires the run's signal and the run rejects with its error", async () => {
    const callbacks = {
      rejects: async () => {
        throw failure;
      },
      throws: () => {
        throw failure;
      },
    };
    for (const [how, onNotice] of Object.entries(callbacks)) {
      let fired = false;
      const options: NotifyingOptions = { onNotice };
      const run = withGuardedCallbacks(options, async (o) => {
        o.signal!.addEventListener('abort', () => (fired = true));
        o.onNotice!('stale folder removed');
        return abortOf(o.signal!);
      });
      await expect(run).rejects.toBe(failure);
      expect({ how, fired }).toEqual({ how, fired: true });
    }
  });

  test('a run past its last check resolves as it would (a merge has published then: rejecting would say it had not); a failure then, or after it settled, is dropped, never unhandled', async () => {
    const options: NotifyingOptions = {
      onNotice: async () => {
        throw failure;
      },
    };
    let late: ((m: string) => void) | undefined;
    const unhandled = await unhandledDuring(async () => {
      await expect(
        withGuardedCallbacks(options, async (o) => {
          o.onNotice!('x');
          await new Promise((r) => setTimeout(r, 10));
          return 'published';
        }),
      ).resolves.toBe('published');
      await expect(withGuardedCallbacks(options, async (o) => ((late = o.onNotice), 'done'))).resolves.toBe('done');
      late!('after the end');
    });
    expect(unhandled).toEqual([]);
  });

  test("the caller's abort keeps its reason, and a callback's later failure does not replace it", async () => {
    const caller = new AbortController();
    const reason = new Error('user stopped it');
    const options: NotifyingOptions = { signal: caller.signal, onNotice: () => Promise.reject(failure) };
    const run = withGuardedCallbacks(options, async (o) => {
      caller.abort(reason);
      o.onNotice!('after the abort');
      return abortOf(o.signal!);
    });
    await expect(run).rejects.toMatchObject({ code: 'Aborted', cause: reason });
    // Aborted before the run starts: its signal is already aborted, with the same reason.
    const before = new AbortController();
    before.abort(reason);
    await expect(withGuardedCallbacks({ signal: before.signal, onNotice: () => undefined }, async (o) => o.signal!.reason)).resolves.toBe(reason);
  });
});

describe('the merges, with a stale temporary folder beside the output (its removal is a notice)', () => {
  let pair: CheckpointPair;
  let n = 0;
  beforeAll(async () => {
    pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 21 });
  });
  /** A fresh output path with a dead run's temporary folder beside it (in `within`, for a sweep's λ folders). */
  function outputWithStale(within = ''): string {
    const out = path.join(root, `out-${++n}`);
    const beside = path.join(out, within);
    const stale = tempFolderName(path.basename(beside), false).replace(`-${process.pid}-`, `-${deadPid()}-`);
    fs.mkdirSync(path.join(path.dirname(beside), stale), { recursive: true });
    return out;
  }
  const rejected = new Error('async notice sink failed');
  const onNotice = async () => {
    throw rejected;
  };
  const recipe = () => ({ merge_method: 'linear', models: [pair.instruct, pair.thinking].map((model) => ({ model, parameters: { weight: 0.5 } })) });

  test.each([
    ['interpolate', (output: string) => interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.5, output, threads: 1, onNotice })],
    ['merge', (output: string) => merge(recipe(), { output, threads: 1, onNotice })],
    ['mergeBatch', (output: string) => mergeBatch([{ name: 'a', recipe: recipe() }], { output: path.dirname(output), threads: 1, onNotice })],
  ])('%s: an async onNotice that rejects fails the run, nothing published or left', async (name, run) => {
    const out = name === 'mergeBatch' ? path.join(outputWithStale('a'), 'a') : outputWithStale();
    const unhandled = await unhandledDuring(async () => {
      await expect(run(out)).rejects.toBe(rejected);
    });
    expect({ unhandled, published: fs.existsSync(path.join(out, 'config.json')), left: leftoversBeside(out) }).toEqual({
      unhandled: [],
      published: false,
      left: [],
    });
  });

  test('sweep: the same, for a stale folder beside one of its λ folders', async () => {
    const out = outputWithStale('lambda-0.5');
    await expect(sweep({ instruct: pair.instruct, thinking: pair.thinking, lambdas: [0.5], output: out, threads: 1, onNotice })).rejects.toBe(rejected);
    expect({ published: fs.existsSync(path.join(out, 'lambda-0.5', 'config.json')), left: leftoversBeside(path.join(out, 'lambda-0.5')) }).toEqual({
      published: false,
      left: [],
    });
  });
});

describe('a download', () => {
  let server: HubServer;
  beforeAll(async () => {
    const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 21 });
    server = await startHubServer({ 'Org/Model': repoOf(filesFromFolder(pair.instruct)) });
  });
  afterAll(() => server?.close());

  test('an async onDownload that rejects stops it with its error, and the next run downloads the model whole', async () => {
    const env = isolatedHubEnv(server.endpoint, path.join(root, 'home'));
    const rejected = new Error('async download sink failed');
    const unhandled = await unhandledDuring(async () => {
      await expect(
        resolveModelReference('Org/Model', {
          env,
          onDownload: async () => {
            throw rejected;
          },
        }),
      ).rejects.toBe(rejected);
    });
    expect(unhandled).toEqual([]);
    const source = await resolveModelReference('Org/Model', { env });
    expect(fs.readdirSync(source.dir).filter((f) => f.endsWith('.safetensors')).length).toBe(2);
  });
});
