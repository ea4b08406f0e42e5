/**
 * mergekit's `modules:` (config.py's OutputModuleDefinition): per module of the architecture, its own
 * `models` or `slices` and `parameters`. An architecture of one module (every text-only decoder mergekit
 * defines in one JSON file: Llama, Qwen, Mistral, …) names it `default`, and mergekit turns top-level
 * `models`/`slices` into `modules: {default: …}`; weightmix knows that one module (the decoder of the
 * architectures lib/model/tensor-names.ts knows), so `modules: {default: …}` is the recipe written
 * without `modules`, its parameters a level between the slice's and the recipe's. Other module names
 * (a multimodal architecture's vision tower, text decoder, projector) are refused with the reason.
 */
import { WeightmixError } from '../errors';
import { unknownKeys } from './ignored-keys';

/** mergekit's name of a one-module architecture's module. */
export const DECODER_MODULE = 'default';
const MODULE_KEYS = ['models', 'slices', 'parameters'];

/** Where the recipe's `models` or `slices` are: the top level, or the `default` module's. */
export interface RecipeBody {
  models: unknown;
  slices: unknown;
  /** The module's `parameters` (undefined at the top level). */
  moduleParameters: unknown;
  /** Prefix of messages' key paths: '' or 'modules.default.'. */
  at: string;
}

/** `ignored` receives a note for each key of the module that mergekit ignores (ignored-keys.ts). */
export function recipeBody(top: Record<string, unknown>, ignored: string[]): RecipeBody {
  if (top.modules === undefined || top.modules === null) return { models: top.models, slices: top.slices, moduleParameters: undefined, at: '' };
  const modules = top.modules;
  if (typeof modules !== 'object' || Array.isArray(modules))
    throw new WeightmixError('InvalidRecipe', 'modules: expected a mapping of module name → {models | slices, parameters}');
  if (top.models !== undefined || top.slices !== undefined)
    throw new WeightmixError('InvalidRecipe', "recipe: give exactly one of 'models', 'slices' or 'modules' (as mergekit)");
  const names = Object.keys(modules);
  if (names.length === 0) throw new WeightmixError('InvalidRecipe', `modules: names no module; give '${DECODER_MODULE}' with its models or slices`);
  const other = names.find((n) => n !== DECODER_MODULE);
  if (other !== undefined) {
    throw new WeightmixError(
      'UnsupportedRecipe',
      `modules: '${other}' is not supported: weightmix merges one module, mergekit's '${DECODER_MODULE}' (the decoder layers of a text-only architecture); ` +
        'modules of a multimodal architecture (a vision tower beside the decoder) need its per-module definitions, which weightmix does not have',
    );
  }
  const module = (modules as Record<string, unknown>)[DECODER_MODULE];
  const at = `modules.${DECODER_MODULE}.`;
  if (typeof module !== 'object' || module === null || Array.isArray(module))
    throw new WeightmixError('InvalidRecipe', `${at.slice(0, -1)}: expected a mapping`);
  const body = module as Record<string, unknown>;
  unknownKeys(body, MODULE_KEYS, at.slice(0, -1), ignored);
  return { models: body.models, slices: body.slices, moduleParameters: body.parameters, at };
}
