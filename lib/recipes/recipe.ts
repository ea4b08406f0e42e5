/**
 * mergekit's YAML configuration → a validated recipe. Every key is understood, refused with a message naming it, or ignored as
 * mergekit ignores it and named in the recipe's `ignored` notes (never silently); nothing is downloaded.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bareNameHint, parseHubReference } from '../hub/reference';
import { isWeightmixError, usageError, WeightmixError } from '../errors';
import { checkEnvOption, showValue } from '../options';
import { checkOptions, type OptionKeys } from '../api/validate-options';
import { misspelt, unknownKeys } from './ignored-keys';
import { readRecipeYaml } from './recipe-yaml';
import { FLOAT_DTYPES, FloatDtype, TORCH_DTYPE_NAMES } from '../format/dtypes';
import { checkParameterKind, numbersOfStrings, ParameterMap, validateSetting } from './recipe-params';
import { methodFor } from './methods';
import { lacksBase } from './methods/method';
import type { Recipe, RecipeSlice } from './recipe-types';
import { parseChatTemplate } from './chat-template';
import { parseTokenizerBlock } from './tokenizer-block';
import { DECODER_MODULE, recipeBody } from './recipe-modules';

export type { Recipe, RecipeSlice, RecipeSource } from './recipe-types';

const TOP_KEYS = [
  'models',
  'slices',
  'merge_method',
  'base_model',
  'parameters',
  'dtype',
  'out_dtype',
  'tokenizer_source',
  'random_seed',
  'chat_template',
  'tokenizer',
  'modules',
];
const MODEL_KEYS = ['model', 'parameters'];
/** residual_weight: mergekit declares it on a slice and never reads it, so it is accepted and does nothing here either. */
const SLICE_KEYS = ['sources', 'parameters', 'residual_weight', 'base_model'];
const SOURCE_KEYS = ['model', 'layer_range', 'parameters'];
/** mergekit's dtype names (torch's) → ours. */
const DTYPES: Record<string, FloatDtype> = Object.fromEntries(FLOAT_DTYPES.map((d) => [TORCH_DTYPE_NAMES[d], d]));

function recipeError(message: string): WeightmixError {
  return new WeightmixError('InvalidRecipe', message);
}

function asObject(v: unknown, where: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw recipeError(`${where}: expected a mapping`);
  return v as Record<string, unknown>;
}

function asList(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v) || v.length === 0) throw recipeError(`${where}: expected a non-empty list`);
  return v;
}

function parameters(v: unknown, where: string): ParameterMap {
  if (v === undefined || v === null) return {};
  const obj = asObject(v, where);
  const out: ParameterMap = {};
  for (const [k, value] of Object.entries(obj)) out[k] = numbersOfStrings(k, validateSetting(value, `${where}.${k}`));
  return out;
}

function dtypeOf(v: unknown, key: string): FloatDtype | null {
  if (v === undefined || v === null) return null;
  // mergekit's dtype_from_name drops a leading `torch.` (torch.bfloat16).
  const name = typeof v === 'string' && v.startsWith('torch.') ? v.slice('torch.'.length) : v;
  if (typeof name !== 'string' || !Object.hasOwn(DTYPES, name)) {
    throw recipeError(`${key}: expected one of ${Object.keys(DTYPES).join(', ')}, got ${JSON.stringify(v)}`);
  }
  return DTYPES[name];
}

/** `${NAME}` in a model path. */
const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * `${NAME}` in a model path is replaced by the environment variable NAME: a weightmix extension
 * (mergekit expands nothing), so one recipe serves machines whose models live in different places.
 * Only model paths are expanded; an unset or empty variable is an error rather than a path to guess at.
 */
export function expandModelPath(name: string, where: string, env: NodeJS.ProcessEnv = process.env): string {
  return name.replace(ENV_REFERENCE, (_, variable: string) => {
    // Own variables only: ${constructor} is no variable of an object's prototype.
    const value = Object.hasOwn(env, variable) ? env[variable] : undefined;
    if (value === undefined || value === '') {
      throw new WeightmixError('RecipeVariableNotSet', `${where}: recipe uses \${${variable}} but it is ${value === undefined ? 'not set' : 'empty'}`);
    }
    return value;
  });
}

/**
 * mergekit's mapping form of a model reference, `{model: PATH | {path, revision}, lora?: …}` (its YAML writer emits it for a path
 * with a space or a quote), as its text form `PATH[@REVISION][+LORA]`.
 */
function referenceText(ref: Record<string, unknown>, where: string): string {
  const pathText = (p: unknown, at: string): string => {
    if (typeof p === 'string' && p !== '') return p;
    const o = typeof p === 'object' && p !== null && !Array.isArray(p) ? (p as Record<string, unknown>) : {};
    const extra = Object.keys(o).find((k) => k !== 'path' && k !== 'revision');
    if (typeof o.path !== 'string' || o.path === '' || extra !== undefined || (o.revision != null && typeof o.revision !== 'string'))
      throw recipeError(`${at}: expected a model path, or {path, revision}`);
    return typeof o.revision === 'string' && o.revision !== '' ? `${o.path}@${o.revision}` : o.path;
  };
  if (ref.override_architecture != null)
    throw new WeightmixError('UnsupportedRecipe', `${where}.override_architecture: not supported (weightmix reads each model's own config)`);
  const extra = Object.keys(ref).find((k) => k !== 'model' && k !== 'lora' && k !== 'override_architecture');
  if (extra !== undefined) throw recipeError(`${where}: unsupported key '${extra}' in a model reference (it takes 'model' and 'lora')`);
  const model = pathText(ref.model, `${where}.model`);
  return ref.lora == null ? model : `${model}+${pathText(ref.lora, `${where}.lora`)}`;
}

/** The folder `name` names, absolute, or undefined: `name` itself, else, as mergekit, `PATH@REVISION`'s folder PATH (a local folder has no revisions). */
function localFolder(name: string, baseDir: string, where: string): string | undefined {
  const parts = name.split('@');
  for (const candidate of parts.length === 2 ? [name, parts[0]] : [name]) {
    let found: fs.Stats | undefined;
    try {
      found = fs.statSync(path.resolve(baseDir, candidate));
    } catch {
      found = undefined; // absent, or not reachable (ENOTDIR, EACCES): not a folder here
    }
    if (found?.isDirectory()) return path.resolve(baseDir, candidate);
    if (found) throw new WeightmixError('ModelNotFound', `${where}: ${candidate} is a file, not a model folder`);
  }
  return undefined;
}

/** A local model folder (absolute), or a hub id `ORG/NAME[@REVISION]` as written when no folder of that name exists. */
function folderOrHubId(name: string, baseDir: string, where: string): string {
  const abs = localFolder(name, baseDir, where);
  if (abs !== undefined) return abs;
  // ORG/NAME[@REVISION]: a hub repo, resolved (cache or download) when the merge opens it.
  if (parseHubReference(name) !== null) return name;
  throw new WeightmixError('ModelNotFound', `${where}: model folder not found: ${name}${bareNameHint(name)}`);
}

/**
 * A model reference: a folder or hub id, and with mergekit's `model+lora` form a PEFT LoRA adapter
 * (a folder or hub id too) applied to it before merging. A folder whose name holds a '+' is a model.
 */
export function resolveModelPath(name: unknown, baseDir: string, where: string): { model: string; adapter: string | null } {
  if (typeof name !== 'string' || name === '') throw recipeError(`${where}: expected a model folder path`);
  const parts = name.split('+');
  if (parts.length === 1 || fs.existsSync(path.resolve(baseDir, name))) return { model: folderOrHubId(name, baseDir, where), adapter: null };
  if (parts.length > 2 || parts.some((p) => p === '')) throw recipeError(`${where}: '${name}' is not of mergekit's form model+lora`);
  return { model: folderOrHubId(parts[0], baseDir, where), adapter: folderOrHubId(parts[1], baseDir, `${where} (LoRA adapter)`) };
}

/** How a recipe's model paths are resolved. */
export interface ParseRecipeOptions {
  /** Relative model paths resolve against this folder (default: the working directory, as mergekit). */
  baseDir?: string;
  /** Where `${NAME}` in model paths is looked up (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Parses YAML text (read as PyYAML reads mergekit's) or an already parsed object into a validated recipe; every key is understood,
 * refused, or ignored as mergekit ignores it and named in `ignored`.
 *
 * @example
 * ```ts
 * const recipe = parseRecipe('merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 0.5}\n  - model: b\n    parameters: {weight: 0.5}\n');
 * await merge(recipe, { output: 'merged' });
 * ```
 * @throws {@link WeightmixError} `InvalidRecipe`, `UnsupportedRecipe`, `RecipeVariableNotSet`, `ModelNotFound`.
 */
export function parseRecipe(input: string | Record<string, unknown>, options: ParseRecipeOptions = {}): Recipe {
  checkOptions<ParseRecipeOptions>('parseRecipe', options, PARSE_RECIPE_KEYS);
  return parseRecipeAs(input, options, 'parseRecipe');
}

const PARSE_RECIPE_KEYS: OptionKeys<ParseRecipeOptions> = { baseDir: 'optional', env: 'optional' };

/** `parseRecipe` for a caller whose options hold more keys (merge, mergeBatch: checked by it); messages name `where`. */
export function parseRecipeAs(input: string | Record<string, unknown>, options: ParseRecipeOptions, where: string): Recipe {
  checkParseValues(options, where);
  const doc: unknown = typeof input === 'string' ? readRecipeYaml(input) : input;
  const top = asObject(doc, 'recipe');
  const ignored: string[] = [];
  unknownKeys(top, TOP_KEYS, 'recipe', ignored);
  const baseDir = options.baseDir ?? process.cwd();

  if (typeof top.merge_method !== 'string')
    throw recipeError(
      top.merge_method === undefined || top.merge_method === null
        ? "recipe: 'merge_method' is required (e.g. linear, slerp, task_arithmetic, model_stock, passthrough)"
        : `recipe: 'merge_method' names a method (e.g. linear, slerp, task_arithmetic), got ${JSON.stringify(top.merge_method)}`,
    );
  const method = methodFor(top.merge_method);

  const models: string[] = [];
  const adapters: (string | null)[] = [];
  const modelNames: string[] = [];
  const env = options.env ?? process.env;
  const expand = (name: unknown, where: string): unknown => {
    const text = typeof name === 'object' && name !== null && !Array.isArray(name) ? referenceText(name as Record<string, unknown>, where) : name;
    return typeof text === 'string' ? expandModelPath(text, where, env) : text;
  };
  // A model with an adapter is another model than without it (or with another adapter).
  const indexOf = (ref: { model: string; adapter: string | null }) => models.findIndex((m, i) => m === ref.model && adapters[i] === ref.adapter);
  const modelIndex = (written: unknown, where: string): number => {
    const name = expand(written, where);
    const ref = resolveModelPath(name, baseDir, where);
    let i = indexOf(ref);
    if (i < 0) {
      i = models.length;
      models.push(ref.model);
      adapters.push(ref.adapter);
      modelNames.push(name as string);
    }
    return i;
  };

  const body = recipeBody(top, ignored);
  const at = body.at;
  // As mergekit's validator: a null or empty list beside the other form is no list (models: [] next to slices: merges the slices).
  const listed = (v: unknown) => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
  const hasModels = listed(body.models) || (body.models !== undefined && !listed(body.slices));
  const hasSlices = listed(body.slices) || (body.slices !== undefined && !listed(body.models));
  if (hasModels === hasSlices)
    throw recipeError(at ? `${at.slice(0, -1)}: give exactly one of 'models' or 'slices'` : "recipe: give exactly one of 'models' or 'slices'");

  const slices: RecipeSlice[] = [];
  const modelParameters = new Map<number, ParameterMap>();
  if (hasModels) {
    const sources = asList(body.models, `${at}models`).map((entry, i) => {
      const where = `${at}models[${i}]`;
      const m = typeof entry === 'string' ? { model: entry } : asObject(entry, where);
      unknownKeys(m, MODEL_KEYS, where, ignored);
      const model = modelIndex(m.model, `${where}.model`);
      if (modelParameters.has(model)) throw recipeError(`${where}: model ${String(m.model)} is listed twice`);
      const params = parameters(m.parameters, `${where}.parameters`);
      modelParameters.set(model, params);
      return { model, layerRange: null, parameters: params };
    });
    slices.push({ sources, parameters: {}, base: null });
  } else {
    asList(body.slices, `${at}slices`).forEach((s, i) => {
      const where = `${at}slices[${i}]`;
      const slice = asObject(s, where);
      unknownKeys(slice, SLICE_KEYS, where, ignored);
      const sources = asList(slice.sources, `${where}.sources`).map((src, j) => {
        const sw = `${where}.sources[${j}]`;
        const so = asObject(src, sw);
        unknownKeys(so, SOURCE_KEYS, sw, ignored);
        const model = modelIndex(so.model, `${sw}.model`);
        const lr = so.layer_range;
        if (!Array.isArray(lr) || lr.length !== 2 || !lr.every((x) => Number.isInteger(x) && x >= 0) || lr[0] >= lr[1]) {
          throw recipeError(`${sw}.layer_range: expected [start, end) with 0 ≤ start < end, got ${JSON.stringify(lr)}`);
        }
        return { model, layerRange: [lr[0], lr[1]] as [number, number], parameters: parameters(so.parameters, `${sw}.parameters`) };
      });
      const counts = new Set(sources.map((x) => x.layerRange[1] - x.layerRange[0]));
      if (counts.size > 1) throw recipeError(`${where}: every source of a slice must span the same number of layers`);
      const seen = new Set<number>();
      for (const x of sources) {
        if (seen.has(x.model)) throw recipeError(`${where}: model ${modelNames[x.model]} appears twice in one slice`);
        seen.add(x.model);
      }
      const base = slice.base_model === undefined || slice.base_model === null ? null : modelIndex(slice.base_model, `${where}.base_model`);
      slices.push({ sources, parameters: parameters(slice.parameters, `${where}.parameters`), base });
    });
  }

  let base: number | null = null;
  if (top.base_model !== undefined && top.base_model !== null) base = modelIndex(top.base_model, 'base_model');

  let tokenizerSource = base ?? 0;
  let outsideTokenizer: Recipe['outsideTokenizer'] = null;
  const given = (v: unknown) => v !== undefined && v !== null;
  if (given(top.tokenizer_source) && given(top.tokenizer)) throw recipeError("give either 'tokenizer_source' or a 'tokenizer' block, not both (as mergekit)");
  // A token's source must be one of the recipe's models (mergekit asserts it is part of the merge).
  const knownModel = (written: unknown, where: string): number => {
    if (typeof written !== 'string') throw recipeError(`${where}: expected a model`);
    const i = indexOf(resolveModelPath(expand(written, where), baseDir, where));
    if (i < 0) throw recipeError(`${where}: ${written} is not one of the recipe's models`);
    return i;
  };
  const block = given(top.tokenizer) ? parseTokenizerBlock(top.tokenizer, knownModel, ignored) : null;
  const vocabularySource = block ? block.source : top.tokenizer_source;
  if (given(vocabularySource)) {
    const ts = vocabularySource;
    const key = block ? 'tokenizer.source' : 'tokenizer_source';
    if (ts === 'base') {
      if (base === null) throw recipeError(`${key}: 'base' needs a base_model`);
    } else if (ts === 'union') {
      // The union is built on the base model's tokenizer (the first model's without a base), which the output's files come from.
    } else if (typeof ts !== 'string') {
      throw recipeError(`${key}: expected 'base', 'union' or a model, got ${JSON.stringify(ts)}`);
    } else {
      // A model outside the merge gives only its tokenizer (mergekit loads it by path; an adapter changes no tokenizer).
      const written = expand(ts, key) as string;
      const ref = resolveModelPath(written, baseDir, key);
      const i = [indexOf(ref), models.indexOf(ref.model)].find((j) => j >= 0);
      if (i !== undefined) tokenizerSource = i;
      else outsideTokenizer = { model: ref.model, name: written };
    }
  }

  let randomSeed: number | null = null;
  if (top.random_seed !== undefined && top.random_seed !== null) {
    if (!Number.isInteger(top.random_seed) || (top.random_seed as number) < 0) throw recipeError('random_seed: expected a non-negative integer');
    randomSeed = top.random_seed as number;
  }

  const recipe: Recipe = {
    method: method.name,
    models,
    adapters,
    modelNames,
    base,
    slices,
    form: hasModels ? 'models' : 'slices',
    parameters: parameters(top.parameters, 'parameters'),
    moduleParameters: parameters(body.moduleParameters, `${at}parameters`),
    modelParameters,
    dtype: dtypeOf(top.dtype, 'dtype'),
    outDtype: dtypeOf(top.out_dtype, 'out_dtype'),
    tokenizerSource,
    vocabularyFrom: !given(vocabularySource) ? null : vocabularySource === 'union' ? 'union' : outsideTokenizer ? 'outside' : tokenizerSource,
    outsideTokenizer,
    vocabularyOptions: block ? { tokens: block.tokens, padToMultipleOf: block.padToMultipleOf } : null,
    randomSeed,
    chatTemplate: parseChatTemplate(top.chat_template),
    document: doc,
    ignored,
  };
  return checkRecipe(recipe);
}

/**
 * parseRecipe's checks of the parsed form: every parameter's name and value, and the method's own rules. merge runs them again on a
 * Recipe it is handed, whose fields are plain data a caller may have changed since it was parsed.
 */
export function checkRecipe(recipe: Recipe): Recipe {
  const method = methodFor(recipe.method);
  const ignoredParameters = checkParameters(recipe, method.parameters, method.modelParameters);
  if (method.needsBase !== undefined && lacksBase(recipe)) {
    throw recipeError(`${method.name} needs a base_model${method.needsBase === '' ? '' : ` (${method.needsBase})`}`);
  }
  method.validate?.(recipe);
  if ((recipe.vocabularyFrom === 'outside') !== !!recipe.outsideTokenizer)
    throw recipeError("vocabularyFrom is 'outside' exactly when outsideTokenizer is set");
  return { ...recipe, ignored: [...new Set([...(recipe.ignored ?? []), ...ignoredParameters])] };
}

/**
 * A parameter the method does not take is ignored, as mergekit looks up only its method's (returned, one note each), unless it
 * looks like a misspelling of one the method takes (refused with it). A method-wide parameter in a model's own entry is refused:
 * mergekit never reads it there (it looks those up without a model), so the recipe would not do what it says. Each value is a
 * setting as parsed, of its parameter's kind.
 */
function checkParameters(recipe: Recipe, allowed: readonly string[], perModel: readonly string[]): string[] {
  const maps: [string, ParameterMap][] = [
    ['parameters', recipe.parameters],
    [`modules.${DECODER_MODULE}.parameters`, recipe.moduleParameters],
  ];
  const modelMaps: [string, ParameterMap][] = [];
  recipe.slices.forEach((s, i) => {
    maps.push([recipe.form === 'slices' ? `slices[${i}].parameters` : 'parameters', s.parameters]);
    s.sources.forEach((src, j) =>
      modelMaps.push([recipe.form === 'slices' ? `slices[${i}].sources[${j}].parameters` : `models[${j}].parameters`, src.parameters]),
    );
  });
  maps.push(...modelMaps);
  for (const [where, map] of modelMaps) {
    const wide = Object.keys(map).filter((k) => allowed.includes(k) && !perModel.includes(k));
    if (wide.length > 0) {
      throw new WeightmixError(
        'UnsupportedRecipe',
        `${where}: ${wide.map((k) => `'${k}'`).join(', ')} ${wide.length > 1 ? 'are' : 'is'} method-wide for merge_method ${recipe.method}: mergekit reads ` +
          `${wide.length > 1 ? 'them' : 'it'} only from a parameters: block (recipe, module or slice), never from a model's own, so here ${wide.length > 1 ? 'they have' : 'it has'} no effect; move ${wide.length > 1 ? 'them' : 'it'} there`,
      );
    }
  }
  const ignored: string[] = [];
  const takes = allowed.length ? ` (it takes ${allowed.map((k) => `'${k}'`).join(', ')})` : ' (it takes none)';
  for (const [where, map] of maps) {
    for (const [k, value] of Object.entries(map)) validateSetting(value, `${where}.${k}`);
    for (const k of Object.keys(map).filter((key) => !allowed.includes(key))) {
      const meant = misspelt(k, allowed);
      if (meant !== undefined)
        throw new WeightmixError('UnsupportedRecipe', `${where}: merge_method ${recipe.method} takes no parameter '${k}' (did you mean '${meant}'?)`);
      ignored.push(`${where}: '${k}' ignored: merge_method ${recipe.method} takes no parameter '${k}'${takes}, and mergekit ignores it too`);
    }
  }
  for (const [where, map] of maps) {
    for (const [k, value] of Object.entries(map)) if (allowed.includes(k)) checkParameterKind(k, value, `${where}.${k}`);
  }
  return ignored;
}

/** parseRecipe's options, as a JavaScript caller may pass them: an object, `baseDir` a path, `env` an object (merge passes its own, checked). */
function checkParseValues(options: ParseRecipeOptions, where: string): void {
  const { baseDir, env } = options as Record<string, unknown>;
  if (baseDir !== undefined && (typeof baseDir !== 'string' || baseDir === ''))
    throw usageError(`${where}: option 'baseDir' must be a folder path, got ${showValue(baseDir)}`);
  checkEnvOption(env, where);
}

/**
 * Reads and parses a YAML recipe file, as `weightmix merge FILE` does.
 * @throws {@link WeightmixError} `RecipeNotFound`, `RecipeNotAFile`, `RecipeUnreadable`, and what `parseRecipe` throws.
 */
export async function readRecipeFile(file: string, options: ParseRecipeOptions = {}): Promise<Recipe> {
  checkOptions<ParseRecipeOptions>('readRecipeFile', options, PARSE_RECIPE_KEYS);
  return readRecipeFileAs(file, options, 'readRecipeFile');
}

/** `readRecipeFile` for a caller whose options hold more keys (merge, mergeBatch); messages name `where`. */
export async function readRecipeFileAs(file: string, options: ParseRecipeOptions, where: string): Promise<Recipe> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new WeightmixError('RecipeNotFound', `recipe file not found: ${file}`);
    // A loop of links, a folder it may not enter: the file may well be there.
    throw new WeightmixError(
      'RecipeUnreadable',
      `cannot read recipe file ${file}: ${code === 'ELOOP' ? 'a loop of symbolic links' : (code ?? (e as Error).message)}`,
    );
  }
  // A model folder given where the recipe goes is the likely mistake; a named pipe would block the read.
  if (stat.isDirectory()) throw new WeightmixError('RecipeNotAFile', `${file} is a directory: merge takes a YAML recipe file (e.g. examples/mi-0.8.yml)`);
  if (!stat.isFile()) throw new WeightmixError('RecipeNotAFile', `${file} is not a regular file: merge takes a YAML recipe file`);
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    throw new WeightmixError('RecipeUnreadable', `cannot read recipe file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseRecipeAs(text, options, where);
}

/** readRecipeFileAs for one of several recipe files (a batch): a message that does not name its file starts with it. */
export async function readRecipeFileNamed(file: string, options: ParseRecipeOptions, where: string): Promise<Recipe> {
  try {
    return await readRecipeFileAs(file, options, where);
  } catch (e) {
    if (!isWeightmixError(e) || e.message.includes(file)) throw e;
    throw new WeightmixError(e.code, `${file}: ${e.message}`, { exitCode: e.exitCode, cause: e });
  }
}
