/**
 * Where a model argument points: an existing local folder wins; otherwise `ORG/NAME[@REVISION]` is a hub
 * repo, taken from the cache (offline, or when the hub is unreachable) or downloaded into it.
 */
import * as fs from 'node:fs';
import { usageError, WeightmixError } from '../errors';
import { checkOptions, OptionKeys } from '../api/validate-options';
import { showValue } from '../options';
import { cachedSnapshot, repoFolder } from './cache';
import { hubEnvironment } from './environment';
import { HubPurpose, missingFromSnapshot } from './model-files';
import { readTreeCache } from './tree-cache';
import { formatReference, parseHubReference } from './reference';
import type { DownloadHooks } from './snapshot-download';
import { withGuardedCallbacks } from '../api/guarded-callbacks';

/** A hub model as resolved: what was asked for and the commit it named. */
export interface HubSource {
  /** The repo id, `ORG/NAME`. */
  repo: string;
  /** The revision asked for (`main` when none was given). */
  revision: string;
  /** The commit sha the revision named when it was resolved. */
  commit: string;
}

/** Where a model argument points. */
export interface ModelSource {
  /** The folder to read: the argument itself, or a cache snapshot `…/snapshots/<commit>`. */
  dir: string;
  /** Set when the argument was a hub id. */
  hub?: HubSource;
}

/** The options of `resolveModelReference` (and of `openModel`, `loadTokenCounter`, less `purpose`). */
export interface ResolveOptions extends DownloadHooks {
  /** What the folder must hold (default 'model': weights, config and tokenizer). */
  purpose?: HubPurpose;
  /** The environment the HF_* variables come from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const RESOLVE_KEYS: OptionKeys<ResolveOptions> = { purpose: 'optional', env: 'optional', onDownload: 'optional', onNotice: 'optional', signal: 'optional' };

/** A public hub function's check of its model argument: a non-empty string. */
export function checkModelReference(fn: string, reference: unknown): asserts reference is string {
  if (typeof reference !== 'string' || reference === '')
    throw usageError(`${fn}: the model must be a folder path or a hub id ORG/NAME[@REVISION], got ${showValue(reference)}`);
}

/**
 * Resolves a model argument as every command does: an existing folder is itself; otherwise
 * `ORG/NAME[@REVISION]` is a Hugging Face Hub repo, taken from the Hugging Face cache (shared with
 * Python's `huggingface_hub`; `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `HF_TOKEN` apply) or
 * downloaded into it (resumable, verified).
 *
 * @example
 * ```ts
 * import { resolveModelReference } from 'weightmix';
 * const { dir, hub } = await resolveModelReference('Qwen/Qwen3-0.6B', { onDownload: (p) => console.log(p.bytesDone) });
 * console.log(dir, hub?.commit);
 * ```
 * @throws {@link WeightmixError} `Usage`, `HubRepoNotFound`, `HubRevisionNotFound`, `HubFileNotFound`, `HubGated`,
 * `HubUnauthorized`, `HubOffline`, `HubUnreachable`, `HubNoModel`, `HubVerificationFailed`,
 * `HubDownloadInterrupted`, `HubError`, `NoSpace`, `Aborted` (docs/errors.md).
 */
export async function resolveModelReference(reference: string, options: ResolveOptions = {}): Promise<ModelSource> {
  checkModelReference('resolveModelReference', reference);
  checkOptions<ResolveOptions>('resolveModelReference', options, RESOLVE_KEYS);
  return withGuardedCallbacks(options, (guarded) => resolveReference(reference, guarded));
}

/**
 * `resolveModelReference` for callers that checked their own options (the merges pass theirs through). `decided`: the caller
 * already looked for a folder of that name (a recipe, against its own folder), so one in the working directory does not stand in for the hub id.
 */
export async function resolveReference(reference: string, options: ResolveOptions = {}, decided = false): Promise<ModelSource> {
  if (isLocalReference(reference, decided)) return { dir: reference };
  const ref = parseHubReference(reference)!;
  const env = hubEnvironment(options.env);
  const cached = cachedSnapshot(env.cacheDir, ref);
  const source = (s: { dir: string; commit: string }): ModelSource => ({ dir: s.dir, hub: { repo: ref.repo, revision: ref.revision, commit: s.commit } });
  const purpose = options.purpose ?? 'model';
  // Without the network a cached snapshot is all there is: one that a broken-off download left half-filled is refused, never merged.
  const complete = (s: { dir: string; commit: string }, why: string): { dir: string; commit: string } => {
    // A file where the snapshot's folder goes: no download fills that in (it would need the folder).
    if (!isDirectory(s.dir)) {
      throw new WeightmixError(
        'HubError',
        `${why}the Hugging Face cache is damaged: ${formatReference(ref)}'s snapshot (commit ${s.commit}), ${s.dir}, is not a folder; remove it and run again`,
      );
    }
    const missing = missingFromSnapshot(s.dir, purpose, readTreeCache(repoFolder(env.cacheDir, ref.repo), s.commit));
    if (missing === undefined) return s;
    throw new WeightmixError(
      'HubError',
      `${why}${formatReference(ref)} (commit ${s.commit}) is only partly in the Hugging Face cache (missing ${missing}); run again with the network to finish it`,
    );
  };
  if (env.offline) {
    if (cached) return source(complete(cached, ''));
    throw new WeightmixError(
      'HubOffline',
      `${formatReference(ref)} is neither a folder here nor in the Hugging Face cache (${env.cacheDir}), and HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) forbids downloading it`,
    );
  }
  try {
    // Loaded on use: the downloader's HTTP, proxy and hub-client modules cost a local run 20–30 ms of start-up (test/cli-startup.test.ts).
    const { downloadSnapshot } = await import('./snapshot-download');
    return source(await downloadSnapshot(env, ref, purpose, options));
  } catch (e) {
    // As huggingface_hub does: no network (or the hub failing), but the cache has the revision — use it, and say so.
    if (e instanceof WeightmixError && e.code === 'HubUnreachable' && cached) {
      const usable = complete(cached, `${e.message.split(';')[0]}, and `);
      options.onNotice?.(`${e.message.split(';')[0]}; using the cached ${formatReference(ref)} (${usable.commit})`);
      return source(usable);
    }
    throw e;
  }
}

/** Whether resolveReference reads `reference` as a local folder (not a hub id), without opening it; `decided` as there. */
export function isLocalReference(reference: string, decided = false): boolean {
  return parseHubReference(reference) === null || (!decided && isDirectory(reference));
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
