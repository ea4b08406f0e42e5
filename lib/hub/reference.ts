/** `ORG/NAME` and `ORG/NAME@REVISION` (mergekit's syntax): a Hugging Face Hub model repo at a branch, tag or commit. */
import { usageError } from '../errors';

/** A hub model repo at a revision, as `parseHubReference` reads it. */
export interface HubReference {
  /** `ORG/NAME`. */
  repo: string;
  /** A branch, tag or full commit sha; `main` when the reference names none. */
  revision: string;
}

/** The hub's own repo-name rule: letters, digits, `-`, `_`, `.`; no `--` or `..`; at most 96 characters. */
const NAME_PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Branch and tag names as git allows them here; `refs/pr/N` included. */
const REVISION = /^[A-Za-z0-9._][A-Za-z0-9._/-]*$/;

export const COMMIT_SHA = /^[0-9a-f]{40}$/;

/**
 * The hub reference `text` names, or null when it is not one (then it can only be a folder).
 * @throws {@link WeightmixError} `Usage` when `text` is not a string.
 */
export function parseHubReference(text: string): HubReference | null {
  if (typeof text !== 'string') throw usageError(`parseHubReference: the reference must be a string, got ${typeof text}`);
  const at = text.indexOf('@');
  const repo = at === -1 ? text : text.slice(0, at);
  const revision = at === -1 ? 'main' : text.slice(at + 1);
  const parts = repo.split('/');
  if (parts.length !== 2 || repo.length > 96) return null;
  if (!parts.every((p) => NAME_PART.test(p) && !p.includes('--') && !p.includes('..') && !p.endsWith('.'))) return null;
  if (!REVISION.test(revision) || revision.includes('..') || revision.endsWith('/') || revision.includes('//')) return null;
  return { repo, revision };
}

/**
 * The hint a not-found message adds where `text` would be a hub id but for its organization (`gpt2`, `bert-base-uncased@main`):
 * weightmix looks such a name up as a local folder only (a bare name would send every misspelt folder name to the hub). '' otherwise.
 */
export function bareNameHint(text: string): string {
  if (text.includes('/') || parseHubReference(`org/${text}`) === null) return '';
  return ' (a hub id needs its organization, ORG/NAME[@REVISION]; a name without one is looked for as a local folder only)';
}

export function formatReference(ref: HubReference): string {
  return ref.revision === 'main' ? ref.repo : `${ref.repo}@${ref.revision}`;
}
