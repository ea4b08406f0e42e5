/**
 * `mergeBatch`: many recipes in one command, each written to OUT/NAME exactly as `merge` alone writes it.
 * Recipes that read a common model run as one fused write plan that reads each input tensor once
 * (engine/fuse-plans.ts); recipes over unrelated models run one group after the other. Statistics
 * (moments for slerp and model_stock, thresholds for the sparsified methods) come from shared passes,
 * each pair or tensor computed once where recipes ask for the same. Every output is its own transaction:
 * all are published at the end, none when any fails.
 */
import * as path from 'node:path';
import { pathsRead, TensorLocation } from '../model/checkpoint';
import { ModelCheckpoint, openModelAs } from '../hub/open-model';
import { usageError, WeightmixError } from '../errors';
import type { ResolvedDevice } from '../engine/device';
import { executeMergePlan, MergeProgress, runStatisticsPlan, StatisticsOptions } from '../engine/execute-plan';
import { Moments, runMomentsPass, TensorPair } from '../engine/moments';
import type { ResolvedSparse } from '../engine/sparse-params';
import { fusePlans } from '../engine/fuse-plans';
import { defaultWriteBlockBytes } from '../engine/block-bytes';
import { NATIVE_DTYPE_BYTES } from '../format/dtypes';
import { EngineOptions, parseBlockBytes, parseDevice, parsePart, parseThreads, showValue } from '../options';
import { assignParts } from '../engine/parts';
import { OutputTransaction } from '../engine/output';
import { MergePlan, planMerge, TensorRecipe } from '../engine/plan';
import { methodFor } from './methods';
import { finishRecipeOutput, isRecipe, MERGE_KEYS, recipeMetadata } from './merge-recipe';
import { parseRecipe, ParseRecipeOptions, readRecipeFile, Recipe } from './recipe';
import { API_NAMES, checkOptions, OptionKeys, OptionNamer } from '../api/validate-options';
import type { DownloadProgress } from '../hub/snapshot-download';
import { planRecipe, RecipePlan, sourceCheckpoints, tensorRecipes } from './recipe-plan';
import { fitsInMemory, resolveSparse, SparseTensor } from './sparsify';
import { RamPlusTensor, setRamPlusLambdas } from './ram-counts';
import { DellaRescaleTensor, setDellaScales } from './della-rescale';
import { SceTensor, setSceStatistics } from './sce-statistics';
import { ArceeFusionTensor, setArceeFusionThresholds } from './arcee-fusion-statistics';
import { RowWiseTensor, setRowWeights } from './row-wise';

/** One recipe of a batch, and the folder it writes. */
export interface BatchRecipe {
  /** The output folder's name under `output` (the CLI uses the recipe file's name without .yml). */
  name: string;
  /** The recipe: a recipe file's path (as `merge` takes a string), the recipe as an object (YAML parsed to JavaScript), or a `Recipe` from `parseRecipe`/`readRecipeFile`; for YAML text, call `parseRecipe` first. */
  recipe: Recipe | string | Record<string, unknown>;
}

/** The options of `mergeBatch`. */

export interface BatchMergeOptions extends EngineOptions, ParseRecipeOptions {
  /** The folder that receives one model folder per recipe. */
  output: string;
  /** Replace existing outputs, only after the new ones are complete. */
  force?: boolean;
  /**
   * Merge only part I of N of the recipes (`"2/8"` or `{index: 2, count: 8}`): whole models, balanced by
   * bytes, the same assignment on every machine that lists the same recipes in the same order.
   */
  part?: string | { index: number; count: number };
  /** Progress of each statistics pass, then of the write stage over the whole batch (every group's write pass). */
  onProgress?: (p: MergeProgress) => void;
  /** Progress of a hub download, when a hub id in a recipe is not (wholly) in the cache. */
  onDownload?: (p: DownloadProgress) => void;
  /** One-line notices (stale leftovers removed, a hub cache used offline, …). */
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
  /** Files written (shards and sidecars). */
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
  /** Files written, all outputs together. */
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

/** What the output blocks in flight may take: about (threads + 2) blocks per output of a pass. */
export const BLOCK_MEMORY_BUDGET = 512 << 20;
const MIN_WRITE_BLOCK = 1 << 20;

/** The write pass's block size: `blockBytes`, halved (to 1 MiB at least) until the blocks in flight fit the budget. Output bytes do not depend on it. */
export function writeBlockBytes(blockBytes: number, outputs: number, threads: number): number {
  let b = blockBytes;
  while (b > MIN_WRITE_BLOCK && b % 8192 === 0 && outputs * (threads + 2) * b > BLOCK_MEMORY_BUDGET) b /= 2;
  return b;
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
 * `ModelNotFound`, `ModelsDiffer`, `ShapeMismatch`, `OutputExists`, `OutputLocked`, `OutputError`,
 * `NoSpace`, `IoError`, `InputChanged`, `CudaUnavailable`, `Aborted`, a hub code for a hub id, a
 * safetensors code for a malformed input (docs/errors.md).
 */
export async function mergeBatch(batch: BatchRecipe[], options: BatchMergeOptions): Promise<BatchMergeSummary> {
  checkOptions<BatchMergeOptions>('mergeBatch', options, BATCH_KEYS);
  return mergeBatchAs(batch, options, API_NAMES);
}

/** `mergeBatch` for a front door that has checked its own input; its messages name options by `name` (the command line: flags). */
export async function mergeBatchAs(batch: BatchRecipe[], options: BatchMergeOptions, name: OptionNamer): Promise<BatchMergeSummary> {
  const started = process.hrtime.bigint();
  if (typeof options.output !== 'string' || options.output === '')
    throw usageError(`${name('output')} must be a non-empty folder path, got ${showValue(options.output)}`);
  if (!Array.isArray(batch) || batch.length === 0) throw usageError('a batch needs at least one recipe');
  if (batch.length > MAX_RECIPES) throw usageError(`a batch of ${batch.length} recipes; at most ${MAX_RECIPES}`);
  batch.forEach((b, i) => {
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw usageError(`batch[${i}] must be an object {name, recipe}, got ${showValue(b)}`);
    if (typeof b.recipe !== 'string' && (typeof b.recipe !== 'object' || b.recipe === null || Array.isArray(b.recipe))) {
      throw usageError(`batch[${i}].recipe must be a recipe file path, a recipe object or a parsed recipe, got ${showValue(b.recipe)}`);
    }
  });
  checkNames(batch.map((b) => b.name));
  const threads = parseThreads(options.threads, name('threads'));
  const blockBytes = parseBlockBytes(options.blockBytes, name('blockBytes'));
  const direct = options.direct ?? true;
  const device = parseDevice(options.device, name('device'));
  const part = parsePart(options.part, name('part'));
  const recipes = await Promise.all(
    batch.map((b) => (isRecipe(b.recipe) ? b.recipe : typeof b.recipe === 'string' ? readRecipeFile(b.recipe, options) : parseRecipe(b.recipe, options))),
  );
  recipes.forEach((r) => methodFor(r.method)); // refuses an unsupported method before any model is opened
  recipes.forEach((r, i) => {
    const j = r.adapters.findIndex((a) => a !== null);
    if (j >= 0)
      throw new WeightmixError(
        'UnsupportedRecipe',
        `${batch[i].name}: ${r.modelNames[j]} applies a LoRA adapter (model+lora), which a batch does not do yet: merge that recipe on its own`,
      );
  });

  // Each model folder is opened once for the whole batch.
  const opened = new Map<string, Promise<ModelCheckpoint>>();
  const open = (dir: string) => {
    const key = path.resolve(dir);
    if (!opened.has(key)) opened.set(key, openModelAs(dir, options));
    return opened.get(key)!;
  };
  let entries: Entry[] = [];
  for (let i = 0; i < batch.length; i++) {
    const ckpts = await Promise.all(recipes[i].models.map(open));
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
  await resolveStatistics(entries, { threads, blockBytes, direct: false, onProgress: options.onProgress, signal: options.signal });

  const reads = [...new Set(entries.flatMap((e) => e.ckpts.flatMap(pathsRead)))];
  const begun: OutputTransaction[] = [];
  try {
    for (const e of entries) {
      e.tx = await OutputTransaction.begin(path.join(options.output, e.name), { force: options.force, notice: options.onNotice, reads });
      begun.push(e.tx);
    }
    const groups = groupByModels(entries);
    const passes = groups.map((group) => {
      const plans = group.map((e) => {
        e.plan = planMerge({
          checkpoints: sourceCheckpoints(e.planned, e.ckpts),
          layout: e.planned.layout,
          outputs: [{ dir: e.tx!.tempDir, metadata: recipeMetadata(e.recipe, e.ckpts) }],
          recipe: (name) => e.recipes!.get(name)!,
        });
        return e.plan;
      });
      return fusePlans(plans);
    });
    const workOf = (p: MergePlan) =>
      p.outputs.reduce((n, o) => n + o.head.length, 0) + p.jobs.reduce((n, j) => n + j.dests.reduce((m, d) => m + j.count * NATIVE_DTYPE_BYTES[d.dtype], 0), 0);
    const bytesTotal = passes.reduce((n, p) => n + workOf(p), 0);
    const tensorsTotal = passes.reduce((n, p) => n + p.jobs.length, 0);
    let bytesDone = 0;
    let tensorsDone = 0;
    let reported = 0;
    let ran: ResolvedDevice | undefined;
    let passBlock = blockBytes;
    const writeStarted = process.hrtime.bigint();
    for (const pass of passes) {
      // As merge does: without a blockBytes, outputs in memory (tmpfs) take 1 MiB blocks (engine/block-bytes.ts).
      const startBlock = options.blockBytes === undefined ? await defaultWriteBlockBytes(pass.models.map((m) => m.dir)) : blockBytes;
      passBlock = writeBlockBytes(startBlock, pass.models.length, threads);
      const onProgress = options.onProgress;
      // The engine's last report may arrive after the pass resolved: each pass adds to the totals before it.
      const [bytesBefore, tensorsBefore] = [bytesDone, tensorsDone];
      ran = await executeMergePlan(
        pass,
        { threads, blockBytes: passBlock, direct, device },
        {
          signal: options.signal,
          onProgress: onProgress
            ? (p) => {
                // A late report of an earlier pass would step back: progress only moves forward.
                if (bytesBefore + p.bytesDone < reported) return;
                reported = bytesBefore + p.bytesDone;
                onProgress({
                  ...p,
                  bytesDone: reported,
                  bytesTotal,
                  tensorsDone: tensorsBefore + p.tensorsDone,
                  tensorsTotal,
                  seconds: Number(process.hrtime.bigint() - writeStarted) / 1e9,
                });
              }
            : undefined,
        },
        name,
      );
      bytesDone += workOf(pass);
      tensorsDone += pass.jobs.length;
    }
    for (const e of entries) await finishRecipeOutput(e.plan!.models[0], e.recipe, e.ckpts, e.planned, e.recipes!);
    for (const tx of begun) await tx.commit(options.signal);
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
      part: part ? `${part.index}/${part.count}` : undefined,
      ...ran!,
    };
  } catch (e) {
    // Latest first: the first transaction may have created the folder that holds the others.
    for (const tx of [...begun].reverse()) await tx.abort();
    throw e;
  }
}

/** The bytes of an output's source tensors (its size, up to dtype changes): what --part balances. */
function sourceBytes(planned: RecipePlan): number {
  return planned.tensors.reduce((n, t) => n + planned.views[t.sources[0].model].get(t.name)!.byteLength, 0);
}

/** Output folder names: plain names, each once. */
function checkNames(names: string[]): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.startsWith('.') || /[/\\\0]/.test(name)) {
      throw usageError(`a batch output needs a plain folder name, got ${JSON.stringify(name)}`);
    }
    if (seen.has(name)) throw usageError(`two recipes of the batch are named ${name}: both would write ${name}/ (rename one recipe file)`);
    seen.add(name);
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

/** A tensor read: file, offset and length (a tensor cut to its first rows is another read). */
const locationKey = (l: TensorLocation) => `${l.file}\u0000${l.offset}\u0000${l.byteLength}`;

/**
 * Every recipe's tensor recipes, from one moments pass over the distinct pairs any recipe asks for and
 * shared sparse statistics: a tensor's thresholds are resolved once for recipes with the same sparse
 * spec over the same tensors; passes hold each tensor name at most once (the DARE mask key is the name).
 */
async function resolveStatistics(entries: Entry[], statistics: StatisticsOptions): Promise<void> {
  const pairIndex = new Map<string, number>();
  const pairs: TensorPair[] = [];
  for (const e of entries) {
    for (const { tensor, a, b } of e.planned.momentPairs) {
      const pair = { a: e.planned.views[a].get(tensor)!, b: e.planned.views[b].get(tensor)! };
      const key = `${locationKey(pair.a)}\u0000${locationKey(pair.b)}`;
      if (!pairIndex.has(key)) pairIndex.set(key, pairs.push(pair) - 1);
    }
  }
  const moments = await runMomentsPass(pairs, statistics);

  const rounds: Map<string, SparseTensor>[] = [];
  const shared = new Map<string, { tensor: SparseTensor; users: Map<string, TensorRecipe>[] }>();
  const ownPasses: {
    ramPlus: RamPlusTensor[];
    rowWise: RowWiseTensor[];
    dellaRescale: DellaRescaleTensor[];
    sceTensors: SceTensor[];
    fusionTensors: ArceeFusionTensor[];
    recipes: Map<string, TensorRecipe>;
  }[] = [];
  for (const e of entries) {
    const { views } = e.planned;
    const momentsOf = (name: string, a: number, b: number): Moments => {
      const j = pairIndex.get(`${locationKey(views[a].get(name)!)}\u0000${locationKey(views[b].get(name)!)}`);
      if (j === undefined) throw new Error(`internal: no moments for ${name} (${a}, ${b})`);
      return moments[j];
    };
    const { recipes, sparse, ramPlus, rowWise, dellaRescale, sceTensors, fusionTensors } = tensorRecipes(e.recipe, e.planned, momentsOf);
    e.recipes = recipes;
    ownPasses.push({ ramPlus, rowWise, dellaRescale, sceTensors, fusionTensors, recipes });
    for (const t of sparse) {
      const sources = [t.spec.base, ...t.spec.models.map((m) => m.model)].map((m) => t.source(m));
      const key = JSON.stringify([t.name, t.count, t.spec, sources]);
      const known = shared.get(key);
      if (known) {
        known.users.push(recipes);
        continue;
      }
      shared.set(key, { tensor: t, users: [recipes] });
      let round = rounds.find((r) => !r.has(t.name));
      if (!round) rounds.push((round = new Map()));
      round.set(t.name, t);
    }
  }
  const resolved = new Map<SparseTensor, ResolvedSparse>();
  for (const round of rounds) {
    const tensors = [...round.values()];
    const r = await resolveSparse(tensors, (p) => runStatisticsPlan(p, statistics), fitsInMemory);
    for (const t of tensors) resolved.set(t, r.get(t.name)!);
  }
  for (const { tensor, users } of shared.values()) for (const recipes of users) recipes.get(tensor.name)!.sparse = resolved.get(tensor)!;
  // ramplus_tl's counts and the row-wise moments, a pass per recipe that has them (their coefficients are its own).
  for (const { ramPlus, rowWise, dellaRescale, sceTensors, fusionTensors, recipes } of ownPasses) {
    await setRamPlusLambdas(recipes, ramPlus, (p) => runStatisticsPlan(p, statistics));
    await setRowWeights(recipes, rowWise, (p) => runStatisticsPlan(p, statistics));
    await setDellaScales(recipes, dellaRescale, (p) => runStatisticsPlan(p, statistics));
    await setSceStatistics(recipes, sceTensors, (p) => runStatisticsPlan(p, statistics));
    await setArceeFusionThresholds(recipes, fusionTensors, (p) => runStatisticsPlan(p, statistics));
  }
}
