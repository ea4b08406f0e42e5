/**
 * The hub's metadata API: which commit a revision names and which files it holds. The requests
 * themselves come from `@huggingface/hub` (`modelInfo`, `listFiles` with its pagination); this file
 * supplies the fetch they call, so that every refusal becomes one line with the repo, never the token.
 */
import { WeightmixError } from '../errors';
import { proxiedGet, proxyAgentFor } from './proxy';
import { bearerOf, endpointOrigin, type HubEnvironment } from './environment';
import { formatReference, HubReference } from './reference';

/** A file of the repo at one commit, as the tree listing describes it. */
export interface RepoFile {
  path: string;
  size: number;
  /** git blob sha1 of the file (for an LFS file: of its pointer). */
  gitOid: string;
  /** sha256 of the content of an LFS file. */
  sha256?: string;
}

/** The name of the file's blob in the cache: the sha256 for LFS files, else the git oid (huggingface_hub's etag). */
export function blobName(file: RepoFile): string {
  return file.sha256 ?? file.gitOid;
}

/** Why the hub refused a request about `ref`, as one line. */
export function refusal(env: HubEnvironment, ref: HubReference, status: number, errorCode: string | null, what = ''): WeightmixError {
  const name = formatReference(ref);
  const noAccess = env.token ? 'the token in HF_TOKEN (or the token file) has no access to it' : 'no token is set (HF_TOKEN or the token file under HF_HOME)';
  if (errorCode === 'GatedRepo')
    return new WeightmixError('HubGated', `${ref.repo} is a gated repo on ${env.endpoint}: accept its conditions there, and ${noAccess}`);
  if (errorCode === 'RevisionNotFound')
    return new WeightmixError('HubRevisionNotFound', `${ref.repo} has no revision ${JSON.stringify(ref.revision)} on ${env.endpoint}`);
  if (errorCode === 'EntryNotFound') return new WeightmixError('HubFileNotFound', `${name}: ${what || 'a file'} is not in the repo on ${env.endpoint}`);
  if (errorCode === 'RepoNotFound' || status === 404) {
    return new WeightmixError('HubRepoNotFound', `${ref.repo} is neither a folder here nor a model repo on ${env.endpoint} (or it is private and ${noAccess})`);
  }
  if (status === 401 || status === 403)
    return new WeightmixError('HubUnauthorized', `${env.endpoint} refused access to ${ref.repo} (HTTP ${status}): ${noAccess}`);
  return new WeightmixError('HubError', `${env.endpoint} answered HTTP ${status} for ${name}${what ? ` (${what})` : ''}`);
}

export function unreachable(env: HubEnvironment, e: unknown, what?: string): WeightmixError {
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  const why = what ?? cause?.code ?? cause?.message ?? (e as Error)?.message ?? String(e);
  return new WeightmixError('HubUnreachable', `cannot reach the hub at ${env.endpoint} (${why}); set HF_HUB_OFFLINE=1 to use the cache only`, { cause: e });
}

/** What an answer of the metadata API must be: the model info is an object, a listing page an array of objects. */
type Expected = { what: string; array: boolean };
const MODEL_INFO: Expected = { what: 'model information (a JSON object)', array: false };
const LISTING: Expected = { what: 'a file listing (a JSON array)', array: true };

/**
 * The fetch the library calls: the token as a header (to the hub's own origin only), refusals and
 * network failures as WeightmixError, the body read and checked here so that a broken connection or
 * an answer of the wrong shape never reaches the library's `res.json()`.
 */
function hubFetch(env: HubEnvironment, ref: HubReference, expected: Expected, signal?: AbortSignal): typeof fetch {
  const hubOrigin = endpointOrigin(env);
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers);
    // A pagination Link may name another host: the token goes to the endpoint's origin only.
    if (env.token && url.origin === hubOrigin) headers.set('authorization', bearerOf(env.token));
    else headers.delete('authorization');
    let res: Response;
    let text: string;
    // As huggingface_hub's HF_HUB_ETAG_TIMEOUT: a hub that never answers is unreachable (then the cache may stand in), not a hang.
    const timeout = AbortSignal.timeout(env.metadataTimeoutSeconds * 1000);
    try {
      const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
      // Node's fetch reads no proxy variables: a request that has a proxy goes through it on node:http.
      res = proxyAgentFor(url) ? await proxiedGet(url, headers, both) : await fetch(url, { ...init, headers, signal: both });
      if (!res.ok) {
        await res.body?.cancel();
        throw failure(env, ref, res);
      }
      text = await res.text();
    } catch (e) {
      if (signal?.aborted) throw new WeightmixError('Aborted', `the download of ${ref.repo} was aborted`);
      if (e instanceof WeightmixError) throw e;
      if (timeout.aborted) throw unreachable(env, e, `no answer within ${env.metadataTimeoutSeconds} s, HF_HUB_ETAG_TIMEOUT`);
      throw unreachable(env, e, readFailure(env, e));
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (expected.array ? !Array.isArray(body) || !body.every(isObject) : !isObject(body)) throw notExpected(env, ref, expected, res, text);
    return new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/** A refusal; a server error or rate limit is a hub that cannot serve now, which the cache may stand in for (as in huggingface_hub). */
function failure(env: HubEnvironment, ref: HubReference, res: Response): WeightmixError {
  if (res.status >= 500 || res.status === 429) {
    const why = res.status === 429 ? 'too many requests' : 'a server error';
    return new WeightmixError(
      'HubUnreachable',
      `the hub at ${env.endpoint} answered HTTP ${res.status} (${why}) for ${formatReference(ref)}; try again later, or set HF_HUB_OFFLINE=1 to use the cache only`,
    );
  }
  return refusal(env, ref, res.status, res.headers.get('x-error-code'));
}

/** Why reading an answer failed: undici says `terminated` for a connection dropped mid-body. */
function readFailure(env: HubEnvironment, e: unknown): string | undefined {
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  if ((e as Error)?.message === 'terminated') return `the connection broke off mid-answer${cause?.message ? `: ${cause.message}` : ''}`;
  // huggingface_hub connects to any port; Node's fetch refuses the Fetch standard's blocked ones (6000, 6665-6669, 10080, ...) itself.
  if (cause?.message === 'bad port')
    return `Node's fetch refuses port ${new URL(env.endpoint).port}, one of the Fetch standard's blocked ports: serve the hub on another port`;
  return undefined;
}

function notExpected(env: HubEnvironment, ref: HubReference, expected: Expected, res: Response, text: string): WeightmixError {
  const type = res.headers.get('content-type') ?? 'no content type';
  const start = JSON.stringify(text.slice(0, 40));
  return new WeightmixError(
    'HubError',
    `the hub at ${env.endpoint} answered something that is not ${expected.what} for ${formatReference(ref)} (HTTP ${res.status}, ${type}, starting ${start}); is HF_ENDPOINT right?`,
  );
}

/** Anything else the library throws (a field of the wrong type) as one line; ours pass through. */
function libraryFailure(env: HubEnvironment, ref: HubReference, expected: Expected, e: unknown, signal?: AbortSignal): WeightmixError {
  if (e instanceof WeightmixError) return e;
  if (signal?.aborted) return new WeightmixError('Aborted', `the download of ${ref.repo} was aborted`);
  return new WeightmixError(
    'HubError',
    `the hub at ${env.endpoint} answered something that is not ${expected.what} for ${formatReference(ref)} (${(e as Error)?.message ?? String(e)})`,
    { cause: e },
  );
}

/** The commit sha that `ref.revision` names on the hub now. */
export async function resolveCommit(env: HubEnvironment, ref: HubReference, signal?: AbortSignal): Promise<string> {
  // Loaded on first use: the library costs ~0.4 s to load, which a run on local folders should not pay.
  const { modelInfo } = await import('@huggingface/hub');
  let sha: unknown;
  try {
    const info = await modelInfo({
      name: ref.repo,
      revision: ref.revision,
      hubUrl: env.endpoint,
      additionalFields: ['sha'],
      fetch: hubFetch(env, ref, MODEL_INFO, signal),
    });
    sha = info.sha;
  } catch (e) {
    throw libraryFailure(env, ref, MODEL_INFO, e, signal);
  }
  if (typeof sha !== 'string' || !/^[0-9a-f]{40}$/.test(sha)) {
    throw new WeightmixError('HubError', `${env.endpoint} gave no commit sha for ${formatReference(ref)}`);
  }
  return sha;
}

/** Every file of the repo at `commit`. */
export async function listRepoFiles(env: HubEnvironment, ref: HubReference, commit: string, signal?: AbortSignal): Promise<RepoFile[]> {
  const { listFiles } = await import('@huggingface/hub');
  const entries = [];
  try {
    const pages = listFiles({
      repo: { type: 'model', name: ref.repo },
      revision: commit,
      recursive: true,
      hubUrl: env.endpoint,
      fetch: hubFetch(env, ref, LISTING, signal),
    });
    for await (const entry of pages) entries.push(entry);
  } catch (e) {
    throw libraryFailure(env, ref, LISTING, e, signal);
  }
  const files: RepoFile[] = [];
  for (const entry of entries) {
    if (entry.type !== 'file') continue;
    const file = { path: entry.path, size: entry.lfs?.size ?? entry.size, gitOid: entry.oid as string, sha256: entry.lfs?.oid };
    // The hashes name files in blobs/ and the size bounds a transfer: nothing else may pass.
    if (
      typeof file.path !== 'string' ||
      !/^[0-9a-f]{40}$/.test(file.gitOid ?? '') ||
      (file.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(file.sha256)) ||
      !Number.isSafeInteger(file.size) ||
      file.size < 0
    ) {
      throw new WeightmixError(
        'HubError',
        `${env.endpoint}: the listing of ${ref.repo} describes ${JSON.stringify(entry.path)} with an invalid path, oid, sha256 or size`,
      );
    }
    files.push(file);
  }
  return files;
}
