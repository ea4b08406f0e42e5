/**
 * A test file's imitation hub: a tiny pair's Instruct model served as `Org/Model` (or the repos `repos(pair)` names), started
 * before the file's tests and closed after them, and a fresh isolated cache per call of `envOf`.
 */
import * as path from 'node:path';
import { cachedPair } from './cli';
import { filesFromFolder, HubRepo, HubServer, isolatedHubEnv, repoOf, startHubServer } from './hub-server';

type Pair = { instruct: string; thinking: string };

export interface HubSuite {
  /** The running hub (set once the file's beforeAll has run). */
  readonly server: HubServer;
  /** The tiny pair its repos were made from. */
  readonly pair: Pair;
  /** A fresh HF_HOME under `home()` per call, every HF_* and proxy variable set (isolatedHubEnv), with `extra` on top. */
  envOf(extra?: Record<string, string>): Record<string, string>;
}

export function useHubSuite(seed: number, home: () => string, repos: (pair: Pair) => Record<string, HubRepo> = defaultRepos): HubSuite {
  let server: HubServer | undefined;
  let pair: Pair | undefined;
  let n = 0;
  beforeAll(async () => {
    pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed });
    server = await startHubServer(repos(pair));
  }, 120_000);
  afterAll(() => server?.close());
  return {
    get server() {
      if (!server) throw new Error('the hub suite has not started (useHubSuite at the top level of a test file)');
      return server;
    },
    get pair() {
      if (!pair) throw new Error('the hub suite has not started (useHubSuite at the top level of a test file)');
      return pair;
    },
    envOf(extra = {}) {
      return isolatedHubEnv(this.server.endpoint, path.join(home(), `home-${++n}`), extra);
    },
  };
}

function defaultRepos(pair: Pair): Record<string, HubRepo> {
  return { 'Org/Model': repoOf(filesFromFolder(pair.instruct)) };
}
