/**
 * `merge(recipe, options)`: a mergekit recipe run by weightmix's engine. The recipe decides, per output
 * tensor, its source tensors (slices may renumber layers) and linear coefficients; methods that need
 * angles (slerp, model_stock) get them from a first moments pass; then one plan writes the model.
 */
import * as path from 'node:path';
import { pathsRead } from '../model/checkpoint';
import type { ModelCheckpoint } from '../hub/open-model';
import { openRecipeModels } from './lora/adapted-models';
import type { DownloadProgress } from '../hub/snapshot-download';
import { environmentError, usageError } from '../errors';
import type { ResolvedDevice } from '../engine/device';
import { preloadNative } from '../engine/native';
import { executeMergePlan, MergeProgress, runStatisticsPlan } from '../engine/execute-plan';
import { besideReserved } from '../engine/alongside';
import { Moments, runMomentsPass } from '../engine/moments';
import { methodFor } from './methods';
import { preparedIndex, writeIndex } from '../engine/model-files';
import { writePassBlockBytes } from '../engine/block-bytes';
import { EngineOptions, parseBlockBytes, parseDevice, parseOutputFolder, parsePart, parseThreads, showValue } from '../options';
import { partShardFilter } from '../engine/parts';
import { refuseOtherPartJob } from '../engine/part-target';
import { layoutShardSizes, tensorsOfShards } from '../engine/output-layout';
import { OutputTransaction, partBeginOptions } from '../engine/output';
import { planMerge } from '../engine/plan';
import { unheldTokens, VocabularyPlan } from './tokenizer-source';
import { plural } from '../plural';
import { rebuildVocabulary } from './vocabulary-rebuild';
import { finishRecipeOutput, recipeMetadata } from './recipe-output-files';
import { checkRecipe, parseRecipeAs, ParseRecipeOptions, readRecipeFileAs, Recipe } from './recipe';
import { API_NAMES, checkOptions, OptionKeys, OptionNamer } from '../api/validate-options';
import type { MergeMethodName } from '../merge-method-names';
import { localMomentTensors, planRecipe, sourceCheckpoints, tensorRecipes } from './recipe-plan';
import { refuseMixedArchitectures, refuseMixedWidths, refuseUncomputedRecipeTensors } from './plan-refusals';
import { setRamPlusLambdas } from './ram-counts';
import { setDellaScales } from './della-rescale';
import { setSceStatistics } from './sce-statistics';
import { setArceeFusionThresholds } from './arcee-fusion-statistics';
import { setRowWeights } from './row-wise';
import { fitsInMemory, resolveSparse } from './sparsify';
import { withGuardedCallbacks } from '../api/guarded-callbacks';

/** The options of `merge`. */
export interface MergeOptions extends EngineOptions, ParseRecipeOptions {
  /** The output model folder. */
  output: string;
  /** Replace an existing output, only after the new one is complete. */
  force?: boolean;
  /** Merge models whose configs name different architectures (mergekit's --allow-crimes); refused without it. */
  allowCrimes?: boolean;
  /**
   * Write only part I of N of the output shards (`"2/8"` or `{index: 2, count: 8}`), for job arrays: every part runs the same
   * recipe into the same `output`, which is complete once every part has published (the shared index, config, tokenizer and
   * model card are written by each). A part of another count, or another recipe's part, is refused.
   */
  part?: string | { index: number; count: number };
  /**
   * Called on the main thread about every 100 ms while a pass runs (`stage` 'statistics' for
   * passes that only read, then 'write'), and once with `bytesDone === bytesTotal` at the end of
   * each pass, the write pass's before the promise resolves; never after it settles. If it throws,
   * or returns a promise that rejects before the run ends, the run is cancelled, nothing is published, and the promise
   * rejects with what it threw.
   */
  onProgress?: (p: MergeProgress) => void;
  /** Progress of a hub download, when a hub id in the recipe is not (wholly) in the cache; one that throws, or whose promise rejects, fails the run with its error while it can still stop. */
  onDownload?: (p: DownloadProgress) => void;
  /** One-line notices (stale leftovers removed, a hub cache used offline, …); one that throws, or whose promise rejects, fails the run with its error while it can still stop. */
  onNotice?: (message: string) => void;
  /** Cancels the run: the promise rejects with an 'AbortError' (code 'Aborted', `cause` the signal's reason); nothing is published. */
  signal?: AbortSignal;
}

/** What a recipe merge wrote, and (from ResolvedDevice) where its arithmetic ran and why on the CPU under `auto`. */
export interface RecipeMergeSummary extends ResolvedDevice {
  /** The model folder written (absolute). */
  output: string;
  /** The recipe's `merge_method`. */
  method: MergeMethodName;
  /** Shard files written. */
  files: number;
  /** Bytes written. */
  bytes: number;
  /** Tensors in the output. */
  tensors: number;
  /** Decoder layers in the output (a passthrough recipe may stack more than its sources have). */
  layers: number;
  /** Tensors whose coefficients come from moments (slerp angles, model_stock cosines): summed by the write pass below the local budget, by a moments pass above it. */
  momentTensors: number;
  /** Wall time of the whole run. */
  seconds: number;
  /** `bytes` / `seconds`, in GB (10^9 bytes) per second. */
  gbPerSecond: number;
  /** Worker threads used. */
  threads: number;
  /** "I/N" when only part I of N of the shards was written. */
  part?: string;
}

/** The options `merge` takes (a batch's `part` splits its recipes instead of one model's shards). */
export const MERGE_KEYS: OptionKeys<MergeOptions> = {
  output: 'required',
  force: 'optional',
  allowCrimes: 'optional',
  part: 'optional',
  threads: 'optional',
  blockBytes: 'optional',
  direct: 'optional',
  device: 'optional',
  baseDir: 'optional',
  env: 'optional',
  onProgress: 'optional',
  onDownload: 'optional',
  onNotice: 'optional',
  signal: 'optional',
};

/**
 * Runs a mergekit recipe (linear, slerp, task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs,
 * breadcrumbs_ties, model_stock, passthrough, karcher, multislerp, nuslerp, nearswap, ram,
 * ramplus_tl, della, della_linear, sce, arcee_fusion) with weightmix's engine and publishes the model atomically.
 *
 * `recipe` is, as on the command line, the path of a YAML recipe file (relative model paths resolve
 * against `baseDir`, default the working directory); or the recipe as an object (YAML parsed to
 * JavaScript); or a `Recipe` from `parseRecipe`/`readRecipeFile`. A string is always a path: for YAML
 * text in memory, call `parseRecipe(text)` and pass its result.
 *
 * @example
 * ```ts
 * import { merge } from 'weightmix';
 * const summary = await merge('examples/mi-0.8.yml', { output: 'merged' });
 * console.log(summary.method, summary.tensors);
 * ```
 * @throws {@link WeightmixError} `Usage`, `RecipeNotFound`, `RecipeNotAFile`, `RecipeUnreadable`,
 * `InvalidRecipe`, `UnsupportedRecipe`, `RecipeVariableNotSet`, `ModelNotFound`, `ModelsDiffer`,
 * `ShapeMismatch`, `UnsupportedDtype`, `OutputExists`, `OutputLocked`, `OutputError`, `NoSpace`, `IoError`, `InputChanged`,
 * `CudaUnavailable`, `Aborted`, a safetensors code for a malformed input (docs/errors.md).
 */
export async function merge(recipe: string | Recipe | Record<string, unknown>, options: MergeOptions): Promise<RecipeMergeSummary> {
  checkOptions<MergeOptions>('merge', options, MERGE_KEYS);
  checkRecipeArgument(recipe, options.baseDir, 'merge(recipe, options)');
  return withGuardedCallbacks(options, async (guarded) =>
    mergeAs(typeof recipe === 'string' ? await readRecipeFileAs(recipe, guarded, 'merge') : recipe, guarded, API_NAMES),
  );
}

/**
 * Refuses what `merge` and `mergeBatch` cannot take as a recipe (`where` names the argument): anything but a recipe file
 * path, a parsed recipe or a recipe object; YAML text in place of a path (it would come back as a multi-line 'recipe file
 * not found'); a `baseDir` beside a parsed recipe, whose paths were resolved when it was parsed (it would be ignored).
 * `named` is how the baseDir refusal names the recipe.
 */
export function checkRecipeArgument(
  recipe: unknown,
  baseDir: string | undefined,
  where: string,
  named = 'this recipe',
): asserts recipe is string | Recipe | Record<string, unknown> {
  if (typeof recipe === 'string' && recipe.includes('\n')) {
    throw usageError(`${where}: a string is a recipe file path; for YAML text, pass parseRecipe(text) instead`);
  }
  if (typeof recipe !== 'string' && (typeof recipe !== 'object' || recipe === null || Array.isArray(recipe))) {
    throw usageError(`${where}: recipe must be a recipe file path, a parsed recipe or a recipe object, got ${showValue(recipe)}`);
  }
  if (isRecipe(recipe) && baseDir !== undefined) {
    throw usageError(`baseDir applies to a recipe file or object; ${named} was already parsed (give baseDir to parseRecipe instead)`);
  }
}

/** `merge` for a front door that has checked its own input; its messages name options by `name` (the command line: flags). */
export async function mergeAs(input: Recipe | Record<string, unknown>, options: MergeOptions, name: OptionNamer): Promise<RecipeMergeSummary> {
  const started = process.hrtime.bigint();
  parseOutputFolder(options.output, name('output'));
  const recipe: Recipe = isRecipe(input) ? checkRecipe(input) : parseRecipeAs(input, options, 'merge');
  methodFor(recipe.method); // refuses an unsupported method before any model is opened
  for (const note of recipe.ignored ?? []) options.onNotice?.(note);
  const threads = parseThreads(options.threads, name('threads'));
  const blockBytes = parseBlockBytes(options.blockBytes, name('blockBytes'));
  const direct = options.direct ?? true;
  const device = parseDevice(options.device, name('device'));
  const part = parsePart(options.part, name('part'));
  const outDir = path.resolve(options.output);
  // A part's output is shared with the other parts (only a file or a dangling link there is refused now); its transaction tells their files from another model's.
  const localInputs = [...recipe.models, ...recipe.adapters, recipe.outsideTokenizer?.model ?? null].filter(
    (m): m is string => m !== null && path.isAbsolute(m),
  );
  OutputTransaction.refuseExisting(options.output, options.force, part !== undefined, localInputs);
  preloadNative();
  // Locked before any model is opened: a second run on this output is refused at once, not after this one's downloads,
  // adapters, rebuilt vocabularies and statistics passes (minutes on a large model) have run in both.
  let tx: OutputTransaction | undefined;
  try {
    tx = await OutputTransaction.begin(outDir, { force: options.force, notice: options.onNotice, reads: localInputs, ...partBeginOptions(part) });
    const allowed = options.allowCrimes === true;
    const adapted = await openRecipeModels(recipe, outDir, options, (ckpts) => {
      refuseMixedArchitectures(ckpts, (m) => recipe.modelNames[m], allowed, name('allowCrimes'));
      refuseMixedWidths(ckpts, (m) => recipe.modelNames[m]);
    });
    try {
      const { ckpts, vocabulary, cleanup } = await rebuildVocabulary(recipe, adapted.ckpts, outDir, options.signal, adapted.tokenizer);
      try {
        const unheld = vocabulary === null ? 0 : unheldTokens(vocabulary, recipe.vocabularyOptions?.tokens ?? new Map());
        if (unheld > 0)
          options.onNotice?.(
            `tokenizer: ${plural(unheld, 'token')} of the output vocabulary no model holds: their embedding rows are zeros (mergekit stops on such a token)`,
          );
        // Hub snapshots and working folders are known only now.
        OutputTransaction.refuseInputs(outDir, [...ckpts, ...(adapted.tokenizer ? [adapted.tokenizer] : [])].flatMap(pathsRead));
        return await mergeModels(recipe, ckpts, vocabulary, tx, { threads, blockBytes, direct, device, part }, options, name, started);
      } finally {
        await cleanup();
      }
    } finally {
      await adapted.cleanup();
    }
  } catch (e) {
    // The merge's error is the one reported, as a batch's and a sweep's are (abort releases the lock whatever fails).
    await tx?.abort().catch(() => {});
    // The adapted models and rebuilt vocabularies are written beside the output too: their disk is the output's.
    throw environmentError(e, `cannot finish ${outDir}`);
  }
}

/** The merge itself, once the models are open (and adapted). */
async function mergeModels(
  recipe: Recipe,
  ckpts: ModelCheckpoint[],
  vocabulary: VocabularyPlan | null,
  tx: OutputTransaction,
  {
    threads,
    blockBytes,
    direct,
    device,
    part,
  }: { threads: number; blockBytes: number; direct: boolean; device: ReturnType<typeof parseDevice>; part: ReturnType<typeof parsePart> },
  options: MergeOptions,
  name: OptionNamer,
  started: bigint,
): Promise<RecipeMergeSummary> {
  const planned = planRecipe(recipe, ckpts, vocabulary);
  const { tensors: out, layers, views } = planned;
  await refuseUncomputedRecipeTensors(planned, recipe, ckpts);
  const metadata = recipeMetadata(recipe, ckpts, planned.vocabulary);
  // Another job's parts in the folder: refused before the statistics passes (partOf asks again once the plan is made).
  if (part) refuseOtherPartJob(tx.target, { ...part, recipe: metadata.weightmix }, options.force ?? false);

  // A part resolves the statistics of its own shards' tensors only (each tensor's are its own): the others' are never written here.
  const shardFilter = part ? partShardFilter(layoutShardSizes(planned.layout), part, options.onNotice) : undefined;
  const written = shardFilter ? tensorsOfShards(planned.layout, shardFilter) : undefined;

  // Statistics passes first: the moments the method asks for (slerp angles, model_stock cosines) of the tensors the write
  // pass cannot resolve itself (too large to hold, or not a linear decision), then sparsification thresholds.
  const statistics = { threads, blockBytes, direct: false, onProgress: options.onProgress, signal: options.signal };
  const open = { tensors: localMomentTensors(recipe, planned), pieceElements: Math.max(1, Math.floor(blockBytes / 4)) };
  const streamed = planned.momentPairs.filter((p) => !open.tensors.has(p.tensor) && (!written || written.has(p.tensor)));
  const pairs = streamed.map(({ tensor, a, b }) => ({ a: views[a].get(tensor)!, b: views[b].get(tensor)! }));
  const moments = await runMomentsPass(pairs, statistics);
  const pairIndex = new Map(streamed.map(({ tensor, a, b }, j) => [`${tensor}\u0000${a}\u0000${b}`, j]));
  const momentsOf = (tensor: string, a: number, b: number): Moments => {
    const j = pairIndex.get(`${tensor}\u0000${a}\u0000${b}`);
    if (j === undefined) throw new Error(`internal: no moments for ${tensor} (${a}, ${b})`);
    return moments[j];
  };
  const tensorLists = tensorRecipes(recipe, planned, momentsOf, options.onNotice, open, written);
  const recipes = tensorLists.recipes;
  if (tensorLists.sparse.length > 0) {
    const resolved = await resolveSparse(tensorLists.sparse, (p) => runStatisticsPlan(p, statistics), fitsInMemory);
    for (const [name, r] of resolved) recipes.get(name)!.sparse = r;
  }
  await setRamPlusLambdas(recipes, tensorLists.ramPlus, (p) => runStatisticsPlan(p, statistics));
  await setRowWeights(recipes, tensorLists.rowWise, (p) => runStatisticsPlan(p, statistics));
  await setDellaScales(recipes, tensorLists.dellaRescale, (p) => runStatisticsPlan(p, statistics));
  await setSceStatistics(recipes, tensorLists.sceTensors, (p) => runStatisticsPlan(p, statistics), { statisticsBlockBytes: blockBytes });
  await setArceeFusionThresholds(recipes, tensorLists.fusionTensors, (p) => runStatisticsPlan(p, statistics), { local: true });

  const plan = planMerge({
    checkpoints: sourceCheckpoints(planned, ckpts),
    layout: planned.layout,
    outputs: [{ dir: tx.tempDir, metadata }],
    recipe: (name) => recipes.get(name)!,
    shardFilter,
  });
  // A part's target is shared with the other parts of the same recipe: its count file names the job (engine/part-target.ts).
  if (part)
    tx.partOf(
      plan.models[0].shards.map((shard) => shard.name),
      { ...part, recipe: metadata.weightmix },
    );
  const writeBlockBytes = await writePassBlockBytes(options.blockBytes === undefined ? undefined : blockBytes, [tx.tempDir], threads);
  const model = plan.models[0];
  let indexWrite = () => writeIndex(model);
  const ran = await besideReserved(
    (onReserved) => {
      const run = executeMergePlan(plan, { threads, blockBytes: writeBlockBytes, direct, device }, { ...options, onReserved }, name);
      // The index's bytes are made while the engine runs; only its writing waits for the reservation.
      indexWrite = preparedIndex(model);
      return run;
    },
    () => finishRecipeOutput(model, recipe, ckpts, planned, recipes, indexWrite),
  );
  await tx.commit(options.signal);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    output: tx.target,
    method: recipe.method,
    files: model.shards.filter((s) => s.written).length,
    bytes: plan.bytesToWrite,
    tensors: out.length,
    layers,
    momentTensors: new Set(planned.momentPairs.map((p) => p.tensor)).size,
    seconds,
    gbPerSecond: plan.bytesToWrite / 1e9 / seconds,
    threads,
    // Only a part's summary has the key (exactOptionalPropertyTypes: no own `part: undefined`).
    ...(part ? { part: `${part.index}/${part.count}` } : {}),
    ...ran,
  };
}

/** A parsed recipe (the API also takes YAML text or a plain object). */
export function isRecipe(x: unknown): x is Recipe {
  return typeof x === 'object' && x !== null && Array.isArray((x as Recipe).slices) && (x as Recipe).modelParameters instanceof Map;
}
