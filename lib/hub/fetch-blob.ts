/**
 * One file of a hub repo into the cache's blobs/: resumed with an HTTP range from `<blob>.incomplete`,
 * its hash checked (sha256 for LFS files, the git blob sha1 otherwise) before the rename that makes it
 * a blob. An interrupted transfer keeps the partial file for the next try; a failed check or a full
 * disk removes it.
 */
import { createHash, Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { WeightmixError } from '../errors';
import { refusal, RepoFile } from './api';
import { proxyAgentFor } from './proxy';
import { cacheFsError, cacheWrite } from './cache';
import { bearerOf, type HubEnvironment } from './environment';
import type { HubReference } from './reference';

const MAX_REDIRECTS = 5;
/** Received bytes are written in batches of this size: fewer system calls than one per socket chunk. */
const WRITE_BATCH = 4 << 20;

export interface BlobRequest {
  env: HubEnvironment;
  ref: HubReference;
  commit: string;
  file: RepoFile;
  /** Final path of the blob; the transfer goes to `${blob}.incomplete`. */
  blob: string;
  /** Called with each count of bytes that became part of the blob (resumed bytes included). */
  onBytes: (n: number) => void;
  /** Called with each count of bytes received over the network (never taken back: a transfer rate's numerator). */
  onReceived?: (n: number) => void;
  signal?: AbortSignal;
}

/** Thrown when the connection broke mid-transfer; the partial file stays for a resume. */
export class TransferInterrupted extends WeightmixError {
  /** How long to wait before the next try (a server that asked for a pause: HTTP 429, 503 with Retry-After). */
  readonly retryAfterMs: number;
  constructor(message: string, cause?: unknown, retryAfterMs = 0) {
    super('HubDownloadInterrupted', message, { cause });
    this.retryAfterMs = retryAfterMs;
  }
}

/** The most a Retry-After is waited for before a try: longer pauses are the next run's to wait out. */
const MAX_RETRY_AFTER_MS = 30_000;

/** The pause a busy server's answer asks for (Retry-After in seconds or as a date), else one second; at most MAX_RETRY_AFTER_MS. */
function retryAfter(res: http.IncomingMessage): number {
  const value = headerValue(res, 'retry-after');
  const seconds = value === null ? NaN : /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Math.min(MAX_RETRY_AFTER_MS, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 1000);
}

/** A resume the server refused (HTTP 416: it holds no byte past the partial file's): the partial file is removed and the transfer starts over. */
class ResumeRefused extends TransferInterrupted {}

function newHash(file: RepoFile): Hash {
  if (file.sha256) return createHash('sha256');
  // git's blob id: sha1 over "blob <size>\0" and the content.
  return createHash('sha1').update(`blob ${file.size}\0`);
}

export async function fetchBlob(req: BlobRequest): Promise<void> {
  const { file } = req;
  const partial = `${req.blob}.incomplete`;
  let have = 0;
  try {
    have = (await fs.promises.stat(partial)).size;
  } catch {
    have = 0;
  }
  if (have > file.size) {
    await fs.promises.rm(partial, { force: true });
    have = 0;
  }
  let hash = newHash(file);
  if (have > 0) {
    for await (const chunk of fs.createReadStream(partial, { end: have - 1 })) hash.update(chunk as Buffer);
  }
  req.onBytes(have);

  const url = `${req.env.endpoint}/${req.ref.repo}/resolve/${req.commit}/${file.path.split('/').map(encodeURIComponent).join('/')}`;
  const res =
    have === file.size
      ? null
      : await openTransfer(req, url, have).catch(async (e) => {
          if (e instanceof ResumeRefused) await fs.promises.rm(partial, { force: true });
          if (e instanceof WeightmixError) throw e;
          if (req.signal?.aborted) throw new WeightmixError('Aborted', `the download of ${req.ref.repo} was aborted`);
          throw new TransferInterrupted(`${req.ref.repo}: cannot fetch ${file.path} from ${req.env.endpoint} (${transferFailure(e)})`, e);
        });
  // A 200 to a range request: the server ignored the range; start over from an empty file and a fresh hash.
  const fromScratch = res !== null && res.statusCode === 200 && have > 0;
  if (fromScratch) {
    req.onBytes(-have);
    hash = newHash(file);
    have = 0;
  }
  const fh = await fs.promises.open(partial, fromScratch ? 'w' : 'a').catch((e) => {
    res?.destroy();
    throw cacheFsError(e, partial);
  });
  let written = have;
  let onDisk: number;
  try {
    if (res) written = await receive(req, res, fh, hash, written, (n) => (written = n));
    await fh.sync();
    onDisk = (await fh.stat()).size;
  } catch (e) {
    res?.destroy();
    await fh.close();
    throw await asTransferError(req, e, partial, written);
  }
  await fh.close();
  await verifyAndPublish(req, partial, hash, written, onDisk);
}

/** Publishes the partial file as the blob if what was received and what the file holds are the file the listing names. */
async function verifyAndPublish(req: BlobRequest, partial: string, hash: Hash, written: number, onDisk: number): Promise<void> {
  const { file } = req;
  const digest = hash.digest('hex');
  const expected = file.sha256 ?? file.gitOid;
  if (written !== file.size || digest !== expected) {
    await fs.promises.rm(partial, { force: true });
    const what =
      written !== file.size ? `${written} bytes instead of ${file.size}` : `${file.sha256 ? 'sha256' : 'git sha1'} ${digest}, the hub says ${expected}`;
    throw new WeightmixError('HubVerificationFailed', `${req.ref.repo}: ${file.path} failed verification (${what}); the partial download was removed`);
  }
  // The hash covers the bytes received, not the file: another writer (huggingface_hub locks with its own lock file) may have appended to it.
  if (onDisk !== written) {
    await fs.promises.rm(partial, { force: true });
    throw new WeightmixError(
      'HubError',
      `${req.ref.repo}: ${file.path}: the partial file ${partial} was changed by another process while it downloaded (${onDisk} bytes instead of ${written}); it was removed, run again`,
    );
  }
  await cacheWrite(req.blob, () => fs.promises.rename(partial, req.blob));
}

/** GET with a range from `have`, following redirects by hand: the hub's first answer carries the sha256 (X-Linked-Etag). */
async function openTransfer(req: BlobRequest, start: string, have: number): Promise<http.IncomingMessage> {
  let url = new URL(start);
  const origin = url.origin;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'weightmix' };
    if (have > 0) headers.range = `bytes=${have}-`;
    // The token goes to the hub only, never to the storage it redirects to.
    if (req.env.token && url.origin === origin) headers.authorization = bearerOf(req.env.token);
    const res = await get(req, url, headers);
    const status = res.statusCode ?? 0;
    if (hop === 0) checkAnnouncedHash(req, res);
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      url = new URL(res.headers.location, url);
      continue;
    }
    if (status === 200 || (status === 206 && rangeStart(res) === have)) return res;
    res.resume();
    // A server that cannot serve now (as huggingface_hub retries them): tried again, after the pause it asks for.
    if (status === 408 || status === 429 || status >= 500) {
      const why = status === 429 ? 'too many requests' : status === 408 ? 'request timeout' : 'a server error';
      throw new TransferInterrupted(`${req.ref.repo}: ${req.file.path}: ${url.host} answered HTTP ${status} (${why})`, undefined, retryAfter(res));
    }
    if (status === 416 && have > 0)
      throw new ResumeRefused(
        `${req.ref.repo}: ${req.file.path}: ${url.host} refused to resume from byte ${have} (HTTP 416); the partial file was removed to start over`,
      );
    if (status === 206)
      throw new WeightmixError(
        'HubError',
        `${req.env.endpoint}: ${req.file.path}: the server answered a range request from byte ${have} with ${res.headers['content-range']}`,
      );
    // The storage the hub redirected to answered: neither the token nor the repo is the matter.
    if (url.origin !== origin) {
      const what = [401, 403, 404, 410].includes(status) ? 'refused the signed download URL' : 'failed';
      throw new WeightmixError(
        'HubError',
        `${req.ref.repo}: ${req.file.path}: ${url.host}, where ${req.env.endpoint} redirected the download, ${what} (HTTP ${status}); run again for a fresh URL`,
      );
    }
    throw refusal(req.env, req.ref, status, headerValue(res, 'x-error-code'), req.file.path);
  }
  throw new WeightmixError('HubError', `${req.env.endpoint}: ${req.file.path}: more than ${MAX_REDIRECTS} redirects`);
}

/** The hub names an LFS file's sha256 in X-Linked-Etag (the CDN's ETag after the redirect is something else). */
function checkAnnouncedHash(req: BlobRequest, res: http.IncomingMessage): void {
  const linked = headerValue(res, 'x-linked-etag') ?? (req.file.sha256 ? null : headerValue(res, 'etag'));
  if (linked === null || res.statusCode! >= 400) return;
  const announced = linked.replace(/^W\//, '').replace(/"/g, '');
  const expected = req.file.sha256 ?? req.file.gitOid;
  if (announced !== expected) {
    res.resume();
    throw new WeightmixError(
      'HubVerificationFailed',
      `${req.ref.repo}: ${req.file.path}: the hub announces ${announced} but its file listing says ${expected}`,
    );
  }
}

function headerValue(res: http.IncomingMessage, name: string): string | null {
  const v = res.headers[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : null;
}

function rangeStart(res: http.IncomingMessage): number {
  const m = /^bytes (\d+)-/.exec(headerValue(res, 'content-range') ?? '');
  return m ? Number(m[1]) : -1;
}

/** Why a transfer failed, in brief: the error's code, or for a silent connection how long it was silent (the setting that says so). */
function transferFailure(e: unknown): string {
  const err = e as NodeJS.ErrnoException | undefined;
  return (err?.message?.startsWith(SILENT) ? err.message : err?.code) ?? err?.message ?? String(e);
}
const SILENT = 'no data for ';

function get(req: BlobRequest, url: URL, headers: Record<string, string>): Promise<http.IncomingMessage> {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const r = client.get(url, { headers, signal: req.signal, agent: proxyAgentFor(url) }, resolve);
    // A connection that stalls is a broken transfer (resumed like one), not a hang.
    const seconds = req.env.downloadTimeoutSeconds;
    r.setTimeout(seconds * 1000, () => r.destroy(Object.assign(new Error(`${SILENT}${seconds} s, HF_HUB_DOWNLOAD_TIMEOUT`), { code: 'ETIMEDOUT' })));
    r.on('error', reject);
  });
}

async function receive(
  req: BlobRequest,
  res: http.IncomingMessage,
  fh: fs.promises.FileHandle,
  hash: Hash,
  written: number,
  onWritten: (n: number) => void,
): Promise<number> {
  let batch: Buffer[] = [];
  let batchBytes = 0;
  // What is on disk (not merely received): a resume starts there.
  let flushed = written;
  const flush = async () => {
    if (batchBytes === 0) return;
    const chunks = batch;
    const bytes = batchBytes;
    batch = [];
    batchBytes = 0;
    await writeWhole(fh, chunks, bytes);
    onWritten((flushed += bytes));
  };
  const limit = req.file.size;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (written + chunk.length > limit)
        throw new WeightmixError('HubVerificationFailed', `${req.ref.repo}: ${req.file.path}: the server sent more than the ${limit} bytes the listing gives`);
      hash.update(chunk);
      batch.push(chunk);
      batchBytes += chunk.length;
      written += chunk.length;
      req.onBytes(chunk.length);
      req.onReceived?.(chunk.length);
      if (batchBytes >= WRITE_BATCH) await flush();
    }
  } catch (e) {
    // What arrived before the connection broke is good data (TCP keeps order): keep it for the resume.
    if (!(e instanceof WeightmixError)) await flush();
    throw e;
  }
  await flush();
  if (!res.complete) throw new TransferInterrupted(`${req.ref.repo}: the transfer of ${req.file.path} broke off`);
  return written;
}

/**
 * Writes every byte of `chunks`: on a nearly full disk writev takes part of a batch (a short write, which was counted whole and
 * then read as the file changed by another process); the write after it says ENOSPC.
 */
export async function writeWhole(fh: fs.promises.FileHandle, chunks: Buffer[], bytes: number): Promise<void> {
  let done = (await fh.writev(chunks)).bytesWritten;
  if (done === bytes) return;
  const rest = Buffer.concat(chunks);
  while (done < bytes) {
    const { bytesWritten } = await fh.write(rest, done, bytes - done);
    if (bytesWritten === 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    done += bytesWritten;
  }
}

/** Full disk: the partial blob goes. Connection lost: it stays for the resume. Verification: already removed. */
async function asTransferError(req: BlobRequest, e: unknown, partial: string, written: number): Promise<unknown> {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOSPC' || err?.code === 'EDQUOT') {
    await fs.promises.rm(partial, { force: true });
    return new WeightmixError('NoSpace', `no space left for ${req.ref.repo}: ${req.file.path} in ${req.env.cacheDir}; the partial files were removed`, {
      cause: e,
    });
  }
  if (e instanceof WeightmixError && e.code === 'HubVerificationFailed') {
    await fs.promises.rm(partial, { force: true });
    return e;
  }
  if (req.signal?.aborted)
    return new WeightmixError('Aborted', `the download of ${req.ref.repo} was aborted (${written} bytes of ${req.file.path} kept for a resume)`);
  if (e instanceof WeightmixError) return e;
  if (typeof err?.syscall === 'string' && err.syscall !== 'read' && !/^E(CONN|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH)/.test(err.code ?? '')) {
    return new WeightmixError('IoError', `${req.env.cacheDir}: ${err.message}`, { cause: e });
  }
  return new TransferInterrupted(
    `${req.ref.repo}: the transfer of ${req.file.path} broke off after ${written} of ${req.file.size} bytes (${transferFailure(e)})`,
    e,
  );
}
