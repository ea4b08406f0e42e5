/** A model argument opened as a checkpoint: a local folder, or a hub id resolved through the cache (lib/hub). */
import { Checkpoint, openCheckpoint } from '../model/checkpoint';
import { HubSource, resolveModelReference, ResolveOptions } from './resolve';

export interface ModelCheckpoint extends Checkpoint {
  /** Set when the argument was a hub id: the repo, the revision asked for and the commit it named. */
  hub?: HubSource;
}

export async function openModel(reference: string, options: ResolveOptions = {}): Promise<ModelCheckpoint> {
  const source = await resolveModelReference(reference, options);
  const checkpoint = await openCheckpoint(source.dir);
  return source.hub ? { ...checkpoint, hub: source.hub } : checkpoint;
}

/** Opens several model arguments one after the other (one download at a time, one progress bar each). */
export async function openModels(references: string[], options: ResolveOptions = {}): Promise<ModelCheckpoint[]> {
  const out: ModelCheckpoint[] = [];
  for (const r of references) out.push(await openModel(r, options));
  return out;
}

/** What recipe metadata records of a source: its hub id and commit when it came from the hub. */
export function hubProvenance(model: { hub?: HubSource }): { repo: string; revision: string; commit: string } | undefined {
  return model.hub ? { repo: model.hub.repo, revision: model.hub.revision, commit: model.hub.commit } : undefined;
}
