/** A recipe's models opened for merging, with each `model+lora` adapter applied (into a temporary folder beside the output), and an outside tokenizer source. */
import * as path from 'node:path';
import { ModelCheckpoint, openModels, openTokenizerAs, TokenizerFolder } from '../../hub/open-model';
import { HubSource, resolveReference, ResolveOptions } from '../../hub/resolve';
import type { Recipe } from '../recipe-types';
import { readLoraAdapter } from './lora-adapter';
import { applyLoraAdapter } from './apply-lora';
import { workingFolderBeside } from '../../engine/output-leftovers';

/** A model with its adapter applied: `adapterHub` is where the adapter came from when it was a hub id. */
export interface AdaptedCheckpoint extends ModelCheckpoint {
  adapterHub?: HubSource;
}

export interface RecipeModels {
  /** Per recipe model: its checkpoint, adapted where the recipe names an adapter. */
  ckpts: ModelCheckpoint[];
  /** The tokenizer source outside the merge (`recipe.outsideTokenizer`), opened for its tokenizer files; null without one. */
  tokenizer: TokenizerFolder | null;
  /** Removes the adapted tensors' folder (call once the merge has read them). */
  cleanup(): Promise<void>;
}

/**
 * Opens the recipe's models; for each with an adapter, the tensors it changes are written to a folder
 * beside `output` (engine/output-leftovers.ts's workingFolderBeside), removed by `cleanup`.
 */
export async function openRecipeModels(
  recipe: Recipe,
  output: string,
  options: ResolveOptions,
  check: (ckpts: ModelCheckpoint[]) => void,
): Promise<RecipeModels> {
  // parseRecipe resolved folders against the recipe's own folder: what is left are hub ids.
  const ckpts = await openModels(recipe.models, options, true);
  check(ckpts); // refusals that need only the models, before any adapter is applied
  const tokenizer = recipe.outsideTokenizer ? await openTokenizerAs(recipe.outsideTokenizer.model, options, true) : null;
  if (recipe.adapters.every((a) => a === null)) return { ckpts, tokenizer, cleanup: async () => {} };
  const { dir, remove: cleanup } = await workingFolderBeside(output, 'lora');
  try {
    for (const [i, reference] of recipe.adapters.entries()) {
      if (reference === null) continue;
      const source = await resolveReference(reference, { ...options, purpose: 'adapter' }, true);
      const adapter = await readLoraAdapter(source.dir);
      const adapted = await applyLoraAdapter(ckpts[i], recipe.modelNames[i], adapter, path.join(dir, `model-${i}.safetensors`), undefined, options.signal);
      const withAdapter: AdaptedCheckpoint = { ...adapted, hub: ckpts[i].hub, adapterHub: source.hub };
      ckpts[i] = withAdapter;
    }
  } catch (e) {
    await cleanup();
    throw e;
  }
  return { ckpts, tokenizer, cleanup };
}
