/**
 * Where a model argument points: an existing local folder wins; otherwise `ORG/NAME[@REVISION]` is a hub
 * repo, taken from the cache (offline, or when the hub is unreachable) or downloaded into it.
 */
import * as fs from 'node:fs';
import { WeightmixError } from '../errors';
import { cachedSnapshot } from './cache';
import { hubEnvironment } from './environment';
import type { HubPurpose } from './model-files';
import { formatReference, parseHubReference } from './reference';
import { DownloadHooks, downloadSnapshot } from './snapshot-download';

/** A hub model as resolved: what was asked for and the commit it named. */
export interface HubSource {
  repo: string;
  revision: string;
  commit: string;
}

export interface ModelSource {
  /** The folder to read: the argument itself, or a cache snapshot `…/snapshots/<commit>`. */
  dir: string;
  /** Set when the argument was a hub id. */
  hub?: HubSource;
}

export interface ResolveOptions extends DownloadHooks {
  /** What the folder must hold (default 'model': weights, config and tokenizer). */
  purpose?: HubPurpose;
  /** The environment the HF_* variables come from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export async function resolveModelReference(reference: string, options: ResolveOptions = {}): Promise<ModelSource> {
  const ref = parseHubReference(reference);
  if (ref === null || isDirectory(reference)) return { dir: reference };
  const env = hubEnvironment(options.env);
  const cached = cachedSnapshot(env.cacheDir, ref);
  const source = (s: { dir: string; commit: string }): ModelSource => ({ dir: s.dir, hub: { repo: ref.repo, revision: ref.revision, commit: s.commit } });
  if (env.offline) {
    if (cached) return source(cached);
    throw new WeightmixError('HubOffline', `${formatReference(ref)} is neither a folder here nor in the Hugging Face cache (${env.cacheDir}), and HF_HUB_OFFLINE=1 forbids downloading it`);
  }
  try {
    return source(await downloadSnapshot(env, ref, options.purpose ?? 'model', options));
  } catch (e) {
    // As huggingface_hub does: no network, but the cache has the revision — use it, and say so.
    if (e instanceof WeightmixError && e.code === 'HubUnreachable' && cached) {
      options.onNotice?.(`${e.message.split(';')[0]}; using the cached ${formatReference(ref)} (${cached.commit})`);
      return source(cached);
    }
    throw e;
  }
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
