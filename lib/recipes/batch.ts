/**
 * `mergeBatch`: many recipes in one command, each written to OUT/NAME exactly as `merge` alone writes it.
 * Recipes that read a common model run as one fused write plan that reads each input tensor once
 * (engine/fuse-plans.ts); recipes over unrelated models run one group after the other. Statistics
 * (moments for slerp and model_stock, thresholds for the sparsified methods) come from shared passes,
 * each pair or tensor computed once where recipes ask for the same. Every output is its own transaction:
 * all are published at the end, none when any fails.
 */
import * as path from 'node:path';
import { pathsRead } from '../model/checkpoint';
import { ModelCheckpoint, openModelAs } from '../hub/open-model';
import { OpenMemo } from '../model/open-memo';
import { environmentError, usageError, WeightmixError } from '../errors';
import type { ResolvedDevice } from '../engine/device';
import { executeMergePlan, MergeProgress, planWork, StatisticsOptions } from '../engine/execute-plan';
import { runMomentsPass } from '../engine/moments';
import { fusePlans } from '../engine/fuse-plans';
import { writePassBlockBytes } from '../engine/block-bytes';
import { EngineOptions, parseBlockBytes, parseDevice, parseOutputFolder, parsePart, parseThreads, showValue } from '../options';
import { assignParts } from '../engine/parts';
import { OutputTransaction, refuseRunningParts } from '../engine/output';
import { MergePlan, planMerge, TensorRecipe } from '../engine/plan';
import { methodFor } from './methods';
import { checkRecipeArgument, isRecipe, MERGE_KEYS } from './merge-recipe';
import { finishRecipeOutput, recipeMetadata } from './recipe-output-files';
import { checkRecipe, parseRecipeAs, ParseRecipeOptions, readRecipeFileNamed, Recipe } from './recipe';
import { API_NAMES, checkOptions, nearestKey, OptionKeys, OptionNamer } from '../api/validate-options';
import type { DownloadProgress } from '../hub/snapshot-download';
import { planRecipe, RecipePlan, sourceCheckpoints } from './recipe-plan';
import { refuseMixedArchitectures, refuseMixedWidths, refuseUncomputedRecipeTensors } from './plan-refusals';
import { batchMomentPairs, resolveStatistics } from './batch-statistics';
import { fitsLocalPool } from './sparsify';
import { withGuardedCallbacks } from '../api/guarded-callbacks';

/** One recipe of a batch, and the folder it writes. */
export interface BatchRecipe {
  /** The output folder's name under `output` (the CLI uses the recipe file's name without .yml). */
  name: string;
  /** The recipe: a recipe file's path (as `merge` takes a string), the recipe as an object (YAML parsed to JavaScript), or a `Recipe` from `parseRecipe`/`readRecipeFile`; for YAML text, call `parseRecipe` first. */
  recipe: Recipe | string | Record<string, unknown>;
}

/** A batch entry's keys (BatchRecipe's). */
const ENTRY_KEYS: readonly string[] = ['name', 'recipe'];

/** The options of `mergeBatch`. */

export interface BatchMergeOptions extends EngineOptions, ParseRecipeOptions {
  /** The folder that receives one model folder per recipe. */
  output: string;
  /** Replace existing outputs, only after the new ones are complete. */
  force?: boolean;
  /** Merge models whose configs name different architectures (mergekit's --allow-crimes); refused without it. */
  allowCrimes?: boolean;
  /**
   * Merge only part I of N of the recipes (`"2/8"` or `{index: 2, count: 8}`): whole models, balanced by
   * bytes, the same assignment on every machine that lists the same recipes in the same order.
   */
  part?: string | { index: number; count: number };
  /** Progress of each statistics pass, then of the write stage over the whole batch (every group's write pass). */
  onProgress?: (p: MergeProgress) => void;
  /** Progress of a hub download, when a hub id in a recipe is not (wholly) in the cache; one that throws, or whose promise rejects, fails the run with its error while it can still stop. */
  onDownload?: (p: DownloadProgress) => void;
  /** One-line notices (stale leftovers removed, a hub cache used offline, …); one that throws, or whose promise rejects, fails the run with its error while it can still stop. */
  onNotice?: (message: string) => void;
  /** Cancels the batch: the promise rejects with an 'AbortError' (code 'Aborted', `cause` the signal's reason); nothing is published. */
  signal?: AbortSignal;
}

/** One output of a batch: what `merge` of its recipe alone reports, less the timing. */
export interface BatchOutputSummary {
  /** The recipe's name in the batch. */
  name: string;
  /** The model folder written. */
  output: string;
  /** The recipe's `merge_method`. */
  method: string;
  /** Shard files written (its sidecars, index and model card not counted), as RecipeMergeSummary.files. */
  files: number;
  /** Bytes written. */
  bytes: number;
  /** Tensors written. */
  tensors: number;
  /** Layers of the output model. */
  layers: number;
  /** Tensors whose moments the method needed. */
  momentTensors: number;
}

/** What `mergeBatch` did. */
export interface BatchMergeSummary extends ResolvedDevice {
  /** One entry per recipe written, in batch order. */
  outputs: BatchOutputSummary[];
  /** Write passes: one per set of recipes that share a model. */
  groups: number;
  /** Shard files written, all outputs together. */
  files: number;
  /** Bytes written, all outputs together. */
  bytes: number;
  /** Wall-clock seconds of the whole batch. */
  seconds: number;
  /** `bytes` / `seconds`, in GB/s. */
  gbPerSecond: number;
  /** Worker threads used. */
  threads: number;
  /** The write passes' output block size (smaller than blockBytes when many outputs share a pass). */
  writeBlockBytes: number;
  /** `I/N` when only part I of N of the recipes ran. */
  part?: string;
}

const MAX_RECIPES = 1000;

interface Entry {
  name: string;
  recipe: Recipe;
  ckpts: ModelCheckpoint[];
  planned: RecipePlan;
  recipes?: Map<string, TensorRecipe>;
  tx?: OutputTransaction;
  plan?: MergePlan;
}

const BATCH_KEYS: OptionKeys<BatchMergeOptions> = { ...MERGE_KEYS, part: 'optional' };

/**
 * Runs many mergekit recipes as `weightmix merge A.yml B.yml … -o DIR` does: each recipe writes
 * `output/<name>`, and the models the recipes share are read once (one write pass per group of
 * recipes that share a model). Every output is published only once all of them are complete.
 *
 * @example
 * ```ts
 * import { mergeBatch } from 'weightmix';
 * const summary = await mergeBatch([{ name: 'a', recipe: 'a.yml' }, { name: 'b', recipe: 'b.yml' }], { output: 'merged' });
 * console.log(summary.outputs.map((o) => o.output));
 * ```
 * @throws {@link WeightmixError} `Usage`, `InvalidRecipe`, `UnsupportedRecipe`, `RecipeVariableNotSet`,
 * `ModelNotFound`, `ModelsDiffer`, `ShapeMismatch`, `UnsupportedDtype`, `OutputExists`, `OutputLocked`, `OutputError`,
 * `NoSpace`, `IoError`, `InputChanged`, `CudaUnavailable`, `Aborted`, a hub code for a hub id, a
 * safetensors code for a malformed input (docs/errors.md).
 */
export async function mergeBatch(batch: BatchRecipe[], options: BatchMergeOptions): Promise<BatchMergeSummary> {
  checkOptions<BatchMergeOptions>('mergeBatch', options, BATCH_KEYS);
  return withGuardedCallbacks(options, (guarded) => mergeBatchAs(batch, guarded, API_NAMES));
}

/** `mergeBatch` for a front door that has checked its own input; its messages name options by `name` (the command line: flags). */
export async function mergeBatchAs(batch: BatchRecipe[], options: BatchMergeOptions, name: OptionNamer): Promise<BatchMergeSummary> {
  const started = process.hrtime.bigint();
  parseOutputFolder(options.output, name('output'));
  if (!Array.isArray(batch) || batch.length === 0) throw usageError('a batch needs at least one recipe');
  if (batch.length > MAX_RECIPES) throw usageError(`a batch of ${batch.length} recipes; at most ${MAX_RECIPES}`);
  batch.forEach((b, i) => {
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw usageError(`batch[${i}] must be an object {name, recipe}, got ${showValue(b)}`);
    // A misspelt key (`recipes`, `output`) would otherwise be dropped without a word.
    const extra = Object.keys(b).find((key) => !ENTRY_KEYS.includes(key));
    if (extra !== undefined) {
      const near = nearestKey(extra, ENTRY_KEYS);
      throw usageError(`batch[${i}]: unknown key '${extra}' (${near ? `did you mean '${near}'?` : 'an entry is {name, recipe}'})`);
    }
    checkRecipeArgument(b.recipe, options.baseDir, `batch[${i}].recipe`, `batch[${i}].recipe`);
  });
  checkNames(batch.map((b) => b.name));
  const threads = parseThreads(options.threads, name('threads'));
  const blockBytes = parseBlockBytes(options.blockBytes, name('blockBytes'));
  const direct = options.direct ?? true;
  const device = parseDevice(options.device, name('device'));
  const part = parsePart(options.part, name('part'));
  const recipes = await Promise.all(
    batch.map((b) =>
      isRecipe(b.recipe)
        ? checkRecipe(b.recipe)
        : typeof b.recipe === 'string'
          ? readRecipeFileNamed(b.recipe, options, 'mergeBatch')
          : parseRecipeAs(b.recipe, options, 'mergeBatch'),
    ),
  );
  recipes.forEach((r) => methodFor(r.method)); // refuses an unsupported method before any model is opened
  recipes.forEach((r, i) => (r.ignored ?? []).forEach((note) => options.onNotice?.(`${batch[i].name}: ${note}`)));
  recipes.forEach((r, i) => {
    const j = r.adapters.findIndex((a) => a !== null);
    if (j >= 0)
      throw new WeightmixError(
        'UnsupportedRecipe',
        `${batch[i].name}: ${r.modelNames[j]} applies a LoRA adapter (model+lora), which a batch does not do yet: merge that recipe on its own`,
      );
    if (r.outsideTokenizer)
      throw new WeightmixError(
        'UnsupportedRecipe',
        `${batch[i].name}: tokenizer_source ${r.outsideTokenizer.name} is none of the recipe's models, which a batch does not take yet: merge that recipe on its own`,
      );
  });

  // Each model folder is opened once for the whole batch; models saved alike are read and checked once (open-memo.ts).
  const opened = new Map<string, Promise<ModelCheckpoint>>();
  const memo = new OpenMemo();
  const open = (dir: string) => {
    const key = path.resolve(dir);
    if (!opened.has(key)) opened.set(key, openModelAs(dir, options, true, memo));
    return opened.get(key)!;
  };
  let entries: Entry[] = [];
  for (let i = 0; i < batch.length; i++) {
    const ckpts = await Promise.all(recipes[i].models.map(open));
    refuseMixedArchitectures(ckpts, (m) => `${batch[i].name}: ${recipes[i].modelNames[m]}`, options.allowCrimes === true, name('allowCrimes'));
    refuseMixedWidths(ckpts, (m) => `${batch[i].name}: ${recipes[i].modelNames[m]}`);
    entries.push({ name: batch[i].name, recipe: recipes[i], ckpts, planned: planRecipe(recipes[i], ckpts) });
  }
  if (part) {
    const parts = assignParts(
      entries.map((e) => ({ name: e.name, size: sourceBytes(e.planned) })),
      part.count,
    );
    const all = entries.length;
    entries = entries.filter((e) => parts.get(e.name) === part.index);
    if (entries.length === 0) throw usageError(`${name('part')} ${part.index}/${part.count} gets none of the ${all} recipes; use at most ${all} parts`);
  }
  for (const e of entries) await refuseUncomputedRecipeTensors(e.planned, e.recipe, e.ckpts);
  // Every output locked before the statistics passes (minutes on large models): a second run on one is refused at once.
  const reads = [...new Set(entries.flatMap((e) => e.ckpts.flatMap(pathsRead)))];
  const begun: OutputTransaction[] = [];
  try {
    for (const e of entries) {
      e.tx = await OutputTransaction.begin(path.join(options.output, e.name), { force: options.force, notice: options.onNotice, reads, checkParts: false });
      begun.push(e.tx);
    }
    // Every output locked first, then one listing of the folder for --part jobs on them (not one per recipe).
    refuseRunningParts(entries.map((e) => path.resolve(options.output, e.name)));

    // Statistics first (one moments pass over the distinct pairs of every recipe, shared thresholds), then one
    // write pass per group. Measured: writing the statistics-free recipes during the moments read was slower
    // on this kind of disk (BENCHMARKS.md, issue 15), so the reads and the writes stay in passes of their own.
    const statistics: StatisticsOptions = { threads, blockBytes, direct: false, onProgress: options.onProgress, signal: options.signal };
    const momentPairs = batchMomentPairs(entries);
    const moments = await runMomentsPass(momentPairs.pairs, statistics);
    await resolveStatistics(entries, momentPairs, moments, statistics, options.onNotice);
    const groups = groupByModels(entries);
    const passes = groups.map((group) =>
      fusePlans(
        group.map(
          (e) =>
            (e.plan = planMerge({
              checkpoints: sourceCheckpoints(e.planned, e.ckpts),
              layout: e.planned.layout,
              outputs: [{ dir: e.tx!.tempDir, metadata: recipeMetadata(e.recipe, e.ckpts, e.planned.vocabulary) }],
              recipe: (name) => e.recipes!.get(name)!,
            })),
        ),
        fitsLocalPool,
      ),
    );
    const progress = writeProgress(
      options.onProgress,
      passes.reduce((n, p) => n + planWork(p), 0),
      passes.reduce((n, p) => n + p.packedJobs.work.length, 0),
    );
    let ran: ResolvedDevice | undefined;
    let passBlock = blockBytes;
    for (const pass of passes) {
      passBlock = await writePassBlockBytes(
        options.blockBytes === undefined ? undefined : blockBytes,
        pass.models.map((m) => m.dir),
        threads,
      );
      ran = await executeMergePlan(pass, { threads, blockBytes: passBlock, direct, device }, { signal: options.signal, onProgress: progress.pass(pass) }, name);
    }
    for (const e of entries) await finishRecipeOutput(e.plan!.models[0], e.recipe, e.ckpts, e.planned, e.recipes!);
    await OutputTransaction.commitAll(begun, options.signal);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const outputs = entries.map((e) => ({
      name: e.name,
      output: e.tx!.target,
      method: e.recipe.method,
      files: e.plan!.models[0].shards.length,
      bytes: e.plan!.bytesToWrite,
      tensors: e.planned.tensors.length,
      layers: e.planned.layers,
      momentTensors: new Set(e.planned.momentPairs.map((p) => p.tensor)).size,
    }));
    const bytes = outputs.reduce((n, o) => n + o.bytes, 0);
    return {
      outputs,
      groups: groups.length,
      files: outputs.reduce((n, o) => n + o.files, 0),
      bytes,
      seconds,
      gbPerSecond: bytes / 1e9 / seconds,
      threads,
      writeBlockBytes: passBlock,
      // Only a part's summary has the key (exactOptionalPropertyTypes: no own `part: undefined`).
      ...(part ? { part: `${part.index}/${part.count}` } : {}),
      ...ran!,
    };
  } catch (e) {
    await OutputTransaction.abortAll(begun);
    throw environmentError(e, `cannot finish ${begun.length > 0 ? begun.map((tx) => tx.target).join(', ') : options.output}`);
  }
}

/** The write stage's progress over every pass of the batch, as one bar: bytes and tensors add up across passes, never backwards. */
function writeProgress(onProgress: BatchMergeOptions['onProgress'], bytesTotal: number, tensorsTotal: number) {
  const started = process.hrtime.bigint();
  let bytesBefore = 0;
  let tensorsBefore = 0;
  let reported = 0;
  return {
    pass(plan: MergePlan): ((p: MergeProgress) => unknown) | undefined {
      // The engine's last report may arrive after the pass resolved: each pass adds to the totals before it runs.
      const [bytesAt, tensorsAt] = [bytesBefore, tensorsBefore];
      bytesBefore += planWork(plan);
      tensorsBefore += plan.packedJobs.work.length;
      if (!onProgress) return undefined;
      return (p) => {
        // A late report of an earlier pass would step back: progress only moves forward.
        if (bytesAt + p.bytesDone < reported) return;
        reported = bytesAt + p.bytesDone;
        // Its value goes back to the engine's caller: an async callback's rejection fails the run (native.ts).
        return onProgress({
          ...p,
          bytesDone: reported,
          bytesTotal,
          tensorsDone: tensorsAt + p.tensorsDone,
          tensorsTotal,
          seconds: Number(process.hrtime.bigint() - started) / 1e9,
        });
      };
    },
  };
}

/** The bytes of an output's source tensors (its size, up to dtype changes): what --part balances. */
function sourceBytes(planned: RecipePlan): number {
  return planned.tensors.reduce((n, t) => n + planned.views[t.sources[0].model].get(t.name)!.byteLength, 0);
}

/** Output folder names: plain names, each once. */
function checkNames(names: string[]): void {
  // By lower case too: A/ and a/ are one folder on a case-insensitive file system (macOS, Windows).
  const seen = new Map<string, string>();
  for (const name of names) {
    if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.startsWith('.') || /[/\\\0]/.test(name)) {
      throw usageError(`a batch output needs a plain folder name, got ${JSON.stringify(name)}`);
    }
    const other = seen.get(name.toLowerCase());
    if (other !== undefined) {
      throw usageError(
        `two recipes of the batch are named ${other === name ? name : `${other} and ${name}`}: both would write ${name}/ (rename one recipe file)`,
      );
    }
    seen.set(name.toLowerCase(), name);
  }
}

/** Recipes that read a common model folder (directly or through others) share a write pass; the groups keep the batch's order. */
function groupByModels(entries: Entry[]): Entry[][] {
  const parent = entries.map((_, i) => i);
  const root = (i: number): number => (parent[i] === i ? i : (parent[i] = root(parent[i])));
  const reader = new Map<string, number>();
  entries.forEach((e, i) => {
    for (const c of e.ckpts) {
      const other = reader.get(c.dir);
      if (other === undefined) reader.set(c.dir, i);
      else parent[root(i)] = root(other);
    }
  });
  const groups = new Map<number, Entry[]>();
  entries.forEach((e, i) => {
    const r = root(i);
    if (!groups.has(r)) groups.set(r, []);
    groups.get(r)!.push(e);
  });
  return [...groups.values()];
}
