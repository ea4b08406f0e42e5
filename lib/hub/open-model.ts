/** A model argument opened as a checkpoint: a local folder, or a hub id resolved through the cache (lib/hub). */
import * as fs from 'node:fs';
import { Checkpoint, openCheckpointWith, openSidecarFolder, SidecarFolder } from '../model/checkpoint';
import { OpenMemo } from '../model/open-memo';
import { checkOptions, OptionKeys } from '../api/validate-options';
import { checkModelReference, HubSource, ModelSource, resolveReference, ResolveOptions } from './resolve';
import { bareNameHint } from './reference';
import { WeightmixError } from '../errors';
import { withGuardedCallbacks } from '../api/guarded-callbacks';

/** A checkpoint opened from a model argument. */
export interface ModelCheckpoint extends Checkpoint {
  /** Set when the argument was a hub id: the repo, the revision asked for and the commit it named. */
  hub?: HubSource;
}

const OPEN_KEYS: OptionKeys<ResolveOptions> = { purpose: 'optional', env: 'optional', onDownload: 'optional', onNotice: 'optional', signal: 'optional' };

/**
 * Opens a model argument as a checkpoint: a local folder, or a hub id resolved as
 * `resolveModelReference` does (the cache, or a download); `hub` records the commit it named.
 *
 * @example
 * ```ts
 * import { openModel } from 'weightmix';
 * const model = await openModel('Qwen/Qwen3-0.6B@main');
 * console.log(model.names.length, model.hub?.commit);
 * ```
 * @throws {@link WeightmixError} `Usage`, `ModelNotFound`, a hub code (see `resolveModelReference`), a safetensors code for a malformed shard (docs/errors.md).
 */
export async function openModel(reference: string, options: ResolveOptions = {}): Promise<ModelCheckpoint> {
  checkModelReference('openModel', reference);
  checkOptions<ResolveOptions>('openModel', options, OPEN_KEYS);
  return withGuardedCallbacks(options, (guarded) => openModelAs(reference, guarded));
}

/** `openModel` for callers that checked their own options (the merges pass theirs through); `decided` as resolveReference takes it. */
export async function openModelAs(reference: string, options: ResolveOptions = {}, decided = false, memo?: OpenMemo): Promise<ModelCheckpoint> {
  const source = await resolveReference(reference, options, decided);
  refuseBareName(reference, source);
  const checkpoint = await openCheckpointWith(source.dir, memo);
  // Added to the checkpoint itself: a spread would read its `tensors` getter (a Map of every tensor, built for nothing).
  return source.hub ? Object.assign(checkpoint, { hub: source.hub }) : checkpoint;
}

/**
 * Opens several model arguments one after the other (one download at a time, one progress bar each); models saved alike
 * are read and checked once (open-memo.ts).
 */
export async function openModels(references: string[], options: ResolveOptions = {}, decided = false): Promise<ModelCheckpoint[]> {
  const out: ModelCheckpoint[] = [];
  const memo = new OpenMemo();
  for (const r of references) out.push(await openModelAs(r, options, decided, memo));
  return out;
}

/** A tokenizer-only source (a recipe's `tokenizer_source` outside the merge): its files beside any weights. */
export interface TokenizerFolder extends SidecarFolder {
  /** Set when the argument was a hub id (only its tokenizer files and config were downloaded). */
  hub?: HubSource;
}

/** Opens a model argument for its tokenizer alone: a folder, or a hub id whose tokenizer files and config come from the cache or a download. */
export async function openTokenizerAs(reference: string, options: ResolveOptions = {}, decided = false): Promise<TokenizerFolder> {
  const source = await resolveReference(reference, { ...options, purpose: 'tokenizer' }, decided);
  refuseBareName(reference, source);
  const folder = await openSidecarFolder(source.dir);
  return source.hub ? { ...folder, hub: source.hub } : folder;
}

/** A name that would be a hub id but for its organization, and no folder: says why it was not looked up on the hub. */
function refuseBareName(reference: string, source: ModelSource): void {
  const hint = source.hub === undefined ? bareNameHint(reference) : '';
  if (hint !== '' && !fs.existsSync(source.dir)) throw new WeightmixError('ModelNotFound', `model folder not found: ${reference}${hint}`);
}

/** What recipe metadata records of a source: its hub id and commit when it came from the hub. */
export function hubProvenance(model: { hub?: HubSource }): { repo: string; revision: string; commit: string } | undefined {
  return model.hub ? { repo: model.hub.repo, revision: model.hub.revision, commit: model.hub.commit } : undefined;
}
