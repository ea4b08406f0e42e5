/**
 * A snapshot of a hub repo in the cache with the files a merge needs: missing ones downloaded several at
 * a time, each behind its blob's lock, verified, then linked into `snapshots/<commit>/`; `refs/<branch>`
 * written last.
 */
import * as fs from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { WeightmixError } from '../errors';
import { blobName, listRepoFiles, RepoFile, resolveCommit } from './api';
import { writeTreeCache } from './tree-cache';
import { blobPath, cacheWrite, linkIntoSnapshot, lockFolder, repoFolder, snapshotFolder, snapshotHas, writeRef } from './cache';
import type { HubEnvironment } from './environment';
import { LOCK_TIMING, withBlobLock } from './blob-lock';
import { fetchBlob, TransferInterrupted } from './fetch-blob';
import { HUB_INDEX_FILE, HubPurpose, missingWeights, neededFiles, readIndexShards } from './model-files';
import { formatReference, HubReference } from './reference';
import * as path from 'node:path';
import { makeFolders } from '../make-folders';

/** Files transferred at once: enough to fill a link, few enough not to thrash a disk. */
const PARALLEL_FILES = 4;
/** Tries per file within one run; each resumes where the last broke off. */
const ATTEMPTS = 3;

/** A hub download's progress: one series per repo, about every 100 ms and once at the end. */
export interface DownloadProgress {
  /** The repo being downloaded, `ORG/NAME`. */
  repo: string;
  /** Bytes in the cache so far (resumed bytes included). */
  bytesDone: number;
  /** Bytes received from the hub in this run, so far: bytesDone without what a resumed partial file or another process had put in the cache (a transfer rate divides this by `seconds`). */
  bytesReceived: number;
  /** Bytes of the files this download fetches (those not yet in the cache). */
  bytesTotal: number;
  /** Files complete. */
  filesDone: number;
  /** Files this download fetches. */
  filesTotal: number;
  /** Seconds since this repo's download started. */
  seconds: number;
}

/** The callbacks and cancellation of a hub download. */
export interface DownloadHooks {
  /** Progress of the download (nothing is called when the cache already has every file). */
  onDownload?: (p: DownloadProgress) => void;
  /** One-line notices (the cache used because the hub is unreachable, …); one that throws, or whose promise rejects, fails the run with its error while it can still stop. */
  onNotice?: (message: string) => void;
  /** Cancels the download: rejects with an 'AbortError' (code 'Aborted'); the partial files stay for a resume. */
  signal?: AbortSignal;
}

export async function downloadSnapshot(
  env: HubEnvironment,
  ref: HubReference,
  purpose: HubPurpose,
  hooks: DownloadHooks,
): Promise<{ dir: string; commit: string }> {
  const commit = await resolveCommit(env, ref, hooks.signal);
  const listing = await listRepoFiles(env, ref, commit, hooks.signal);
  const repoDir = repoFolder(env.cacheDir, ref.repo);
  // Before any file, as huggingface_hub: a download that breaks off leaves the ref and the listing, so that offline the revision
  // is found and its snapshot named as partial, with what it lacks (resolve.ts), not as absent from the cache.
  await writeTreeCache(repoDir, commit, listing);
  const dir = snapshotFolder(repoDir, commit);
  const fetch = (files: RepoFile[]) => fetchFiles(env, ref, commit, files, hooks);

  let needed = neededFiles(listing, purpose);
  if (needed.length === 0) throw new WeightmixError('HubNoModel', `${formatReference(ref)} has no safetensors weights or tokenizer files a merge could use`);
  // Refused before any download: config and tokenizer alone would end in a folder error that hides the reason.
  const holds = missingWeights(listing, purpose);
  if (holds !== null) {
    const wanted = purpose === 'adapter' ? 'adapter_model.safetensors' : 'safetensors weights (model.safetensors, shards or their index)';
    throw new WeightmixError('HubNoModel', `${formatReference(ref)} has no ${wanted} on ${env.endpoint}: it holds ${holds}`);
  }
  await writeRef(repoDir, ref.revision, commit);
  const index = needed.find((f) => f.path === HUB_INDEX_FILE);
  if (index) {
    // The index alone first, without a bar of its own: it names the shards, and so the bytes the one bar counts.
    await fetchFiles(env, ref, commit, [index], { ...hooks, onDownload: undefined });
    const shards = readIndexShards(path.join(dir, HUB_INDEX_FILE));
    const listed = new Set(listing.map((f) => f.path));
    const missing = [...shards].filter((s) => !listed.has(s));
    if (missing.length > 0) throw new WeightmixError('HubError', `${formatReference(ref)}: its index names ${missing[0]}, which is not in the repo`);
    needed = neededFiles(listing, purpose, shards);
  }
  await fetch(needed);
  return { dir, commit };
}

async function fetchFiles(env: HubEnvironment, ref: HubReference, commit: string, files: RepoFile[], hooks: DownloadHooks): Promise<void> {
  const repoDir = repoFolder(env.cacheDir, ref.repo);
  const snapshot = snapshotFolder(repoDir, commit);
  const todo = files.filter((f) => !snapshotHas(snapshot, f.path, f.size));
  if (todo.length === 0) return;
  const blobs = path.join(repoDir, 'blobs');
  await cacheWrite(blobs, () => makeFolders(blobs));
  const started = process.hrtime.bigint();
  const progress: DownloadProgress = {
    repo: ref.repo,
    bytesDone: 0,
    bytesReceived: 0,
    bytesTotal: todo.reduce((n, f) => n + f.size, 0),
    filesDone: 0,
    filesTotal: todo.length,
    seconds: 0,
  };
  let lastReport = 0;
  const report = (force: boolean) => {
    const now = Date.now();
    if (!force && now - lastReport < 100) return;
    lastReport = now;
    progress.seconds = Number(process.hrtime.bigint() - started) / 1e9;
    hooks.onDownload?.({ ...progress });
  };
  report(true);
  const queue = [...todo].sort((a, b) => b.size - a.size);
  // The first failure stops the other files at once (no new one starts, those under way keep their partial files for a
  // resume): the user hears of it now, not after the rest of a many-gigabyte repo.
  const stop = new AbortController();
  const signal = hooks.signal ? AbortSignal.any([hooks.signal, stop.signal]) : stop.signal;
  let failure: { reason: unknown } | undefined;
  const isNoSpace = (e: unknown) => e instanceof WeightmixError && e.code === 'NoSpace';
  const worker = async () => {
    for (let file = queue.shift(); file && !failure; file = queue.shift()) {
      try {
        await fetchOne(
          env,
          ref,
          commit,
          file,
          { ...hooks, signal },
          (n) => {
            progress.bytesDone += n;
            report(false);
          },
          (n) => (progress.bytesReceived += n),
          () => failure !== undefined && isNoSpace(failure.reason),
        );
        await linkIntoSnapshot(repoDir, commit, file.path, blobName(file));
      } catch (e) {
        failure ??= { reason: e };
        stop.abort();
        return;
      }
      progress.filesDone++;
      report(progress.filesDone === progress.filesTotal);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_FILES, todo.length) }, worker));
  if (failure) throw failure.reason;
}

async function fetchOne(
  env: HubEnvironment,
  ref: HubReference,
  commit: string,
  file: RepoFile,
  hooks: DownloadHooks,
  onBytes: (n: number) => void,
  onReceived: (n: number) => void,
  diskFull: () => boolean,
): Promise<void> {
  const repoDir = repoFolder(env.cacheDir, ref.repo);
  const blob = blobPath(repoDir, blobName(file));
  const lock = path.join(lockFolder(env.cacheDir, ref.repo), `${blobName(file)}.weightmix.lock`);
  const onWait = (seconds: number) =>
    hooks.onNotice?.(
      `waiting for another process that downloads ${ref.repo}: ${file.path}${seconds > 0 ? ` (${seconds} s so far; its lock is taken over once untouched for ${LOCK_TIMING.staleMs / 60_000} min)` : ''}`,
    );
  await withBlobLock(lock, onWait, hooks.signal, async () => {
    if (isCompleteBlob(blob, file.size)) return onBytes(file.size);
    for (let attempt = 1; ; attempt++) {
      let counted = 0;
      try {
        return await fetchBlob({
          env,
          ref,
          commit,
          file,
          blob,
          signal: hooks.signal,
          onReceived,
          onBytes: (n) => {
            counted += n;
            onBytes(n);
          },
        });
      } catch (e) {
        onBytes(-counted);
        // Another file found the disk full: this one's partial blob goes too, while its lock is held (kept for a resume, it
        // would keep the disk full for the next run).
        if (diskFull()) await fs.promises.rm(`${blob}.incomplete`, { force: true }).catch(() => {});
        if (!(e instanceof TransferInterrupted) || hooks.signal?.aborted) throw e;
        if (attempt === ATTEMPTS) throw new TransferInterrupted(`${e.message}; run again to resume`, e);
        hooks.onNotice?.(`${e.message}; resuming (try ${attempt + 1} of ${ATTEMPTS})${e.retryAfterMs > 0 ? ` in ${Math.ceil(e.retryAfterMs / 1000)} s` : ''}`);
        await pause(e.retryAfterMs, hooks.signal);
      }
    }
  });
}

function isCompleteBlob(blob: string, size: number): boolean {
  try {
    return fs.statSync(blob).size === size;
  } catch {
    return false;
  }
}

/** Waits `ms` (not at all for 0); an abort ends the wait at once, and the next try then stops on it. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms > 0) await delay(ms, undefined, { signal }).catch(() => {});
}
