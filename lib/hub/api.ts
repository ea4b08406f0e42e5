/**
 * The hub's metadata API: which commit a revision names and which files it holds. The requests
 * themselves come from `@huggingface/hub` (`modelInfo`, `listFiles` with its pagination); this file
 * supplies the fetch they call, so that every refusal becomes one line with the repo, never the token.
 */
import { WeightmixError } from '../errors';
import type { HubEnvironment } from './environment';
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

export function unreachable(env: HubEnvironment, e: unknown): WeightmixError {
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  const why = cause?.code ?? cause?.message ?? (e as Error)?.message ?? String(e);
  return new WeightmixError('HubUnreachable', `cannot reach the hub at ${env.endpoint} (${why}); set HF_HUB_OFFLINE=1 to use the cache only`, { cause: e });
}

/** The fetch the library calls: the token as a header, refusals and network failures as WeightmixError. */
function hubFetch(env: HubEnvironment, ref: HubReference, signal?: AbortSignal): typeof fetch {
  return async (input, init) => {
    const headers = new Headers(init?.headers);
    if (env.token) headers.set('authorization', `Bearer ${env.token}`);
    let res: Response;
    try {
      res = await fetch(input, { ...init, headers, signal });
    } catch (e) {
      if (signal?.aborted) throw new WeightmixError('Aborted', `the download of ${ref.repo} was aborted`);
      throw unreachable(env, e);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw refusal(env, ref, res.status, res.headers.get('x-error-code'));
    }
    return res;
  };
}

/** The commit sha that `ref.revision` names on the hub now. */
export async function resolveCommit(env: HubEnvironment, ref: HubReference, signal?: AbortSignal): Promise<string> {
  // Loaded on first use: the library costs ~0.4 s to load, which a run on local folders should not pay.
  const { modelInfo } = await import('@huggingface/hub');
  const info = await modelInfo({ name: ref.repo, revision: ref.revision, hubUrl: env.endpoint, additionalFields: ['sha'], fetch: hubFetch(env, ref, signal) });
  if (typeof info.sha !== 'string' || !/^[0-9a-f]{40}$/.test(info.sha)) {
    throw new WeightmixError('HubError', `${env.endpoint} gave no commit sha for ${formatReference(ref)}`);
  }
  return info.sha;
}

/** Every file of the repo at `commit`. */
export async function listRepoFiles(env: HubEnvironment, ref: HubReference, commit: string, signal?: AbortSignal): Promise<RepoFile[]> {
  const { listFiles } = await import('@huggingface/hub');
  const files: RepoFile[] = [];
  for await (const entry of listFiles({
    repo: { type: 'model', name: ref.repo },
    revision: commit,
    recursive: true,
    hubUrl: env.endpoint,
    fetch: hubFetch(env, ref, signal),
  })) {
    if (entry.type !== 'file') continue;
    const file = { path: entry.path, size: entry.lfs?.size ?? entry.size, gitOid: entry.oid as string, sha256: entry.lfs?.oid };
    // The hashes name files in blobs/ and the size bounds a transfer: nothing else may pass.
    if (
      !/^[0-9a-f]{40}$/.test(file.gitOid ?? '') ||
      (file.sha256 !== undefined && !/^[0-9a-f]{64}$/.test(file.sha256)) ||
      !Number.isSafeInteger(file.size) ||
      file.size < 0
    ) {
      throw new WeightmixError(
        'HubError',
        `${env.endpoint}: the listing of ${ref.repo} describes ${JSON.stringify(entry.path)} with an invalid oid, sha256 or size`,
      );
    }
    files.push(file);
  }
  return files;
}
