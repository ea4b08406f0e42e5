/**
 * Model interpolation, Θ = λ·Θ_Thinking + (1−λ)·Θ_Instruct (Wu et al., arXiv 2510.10977), for one λ
 * (`interpolate`) or many in one pass over the inputs (`sweep`): both are this one code path.
 */
import * as path from 'node:path';
import { Checkpoint, layerCount, pathsRead } from '../model/checkpoint';
import { hubProvenance, ModelCheckpoint, openModels } from '../hub/open-model';
import { isLocalReference } from '../hub/resolve';
import type { DownloadProgress } from '../hub/snapshot-download';
import { environmentError, usageError, WeightmixError } from '../errors';
import type { ResolvedDevice } from '../engine/device';
import { copySidecars, modelName, preparedIndex, writeModelCard } from '../engine/model-files';
import { executeMergePlan, MergeProgress } from '../engine/execute-plan';
import { besideReserved } from '../engine/alongside';
import { preloadNative } from '../engine/native';
import { writePassBlockBytes } from '../engine/block-bytes';
import {
  checkEnvOption,
  EngineOptions,
  FilesFrom,
  FloatDtypeName,
  Numerics,
  parseBlockBytes,
  parseDevice,
  parseDtype,
  parseFilesFrom,
  parseLambda,
  parseNumerics,
  parseOutputFolder,
  parsePart,
  parseThreads,
  showValue,
} from '../options';
import { OutputTransaction, partBeginOptions, refuseRunningParts } from '../engine/output';
import { partShardFilter } from '../engine/parts';
import { checkCompatible, planMerge, TensorRecipe } from '../engine/plan';
import { FloatDtype, isFloatDtype, SafetensorsDtype } from '../format/dtypes';
import { refuseUncomputedTensors } from '../model/uncomputed-tensors';
import { checkpointLayout } from '../engine/output-layout';
import { dtypeAt, indexOfName, sameNameOrder, tensorTableOf } from '../model/tensor-table';
import {
  absentModulesNote,
  checkLayersExist,
  checkSkippedModulesExist,
  describeSelection,
  isSelected,
  selectsAll,
  parseSelection,
  SelectionInput,
} from '../model/selection';
import { classifyTensor } from '../model/tensor-names';
import { VERSION } from '../version';
import { API_NAMES, checkOptions, OptionKeys, OptionNamer } from '../api/validate-options';
import { withGuardedCallbacks } from '../api/guarded-callbacks';

export type { MergeProgress } from '../engine/execute-plan';

/** The options `interpolate` and `sweep` share. */
export interface InterpolationCommon extends SelectionInput, EngineOptions {
  /** The Instruct model (λ = 0): a folder, or a hub id `ORG/NAME[@REVISION]` (cache, else downloaded). */
  instruct: string;
  /** The Thinking model (λ = 1): a folder or a hub id. */
  thinking: string;
  /** 'exact' (default): torch.lerp in f32, one rounding. 'mi': the paper's script, bf16 arithmetic. */
  numerics?: Numerics;
  /** Output dtype of float tensors (default: the Instruct tensor's dtype). */
  dtype?: FloatDtypeName;
  /** Which model's config, tokenizer and templates the output gets (default 'thinking', as the paper). */
  filesFrom?: FilesFrom;
  /** Replace an existing output, only after the new one is complete. */
  force?: boolean;
  /** Write only part I of N of the output shards (`"2/8"` or `{index: 2, count: 8}`), for job arrays. */
  part?: string | { index: number; count: number };
  /**
   * Called on the main thread about every 100 ms while a pass runs (`stage` 'statistics' for
   * passes that only read, then 'write'), and once with `bytesDone === bytesTotal` at the end of
   * each pass, the write pass's before the promise resolves; never after it settles. If it throws,
   * or returns a promise that rejects before the run ends, the run is cancelled, nothing is published, and the promise
   * rejects with what it threw.
   */
  onProgress?: (p: MergeProgress) => void;
  /** The environment the HF_* variables come from (default process.env), as `merge` and `openModel` take it. */
  env?: NodeJS.ProcessEnv;
  /** Progress of a hub download, when a hub id is not (wholly) in the cache; one that throws, or whose promise rejects, fails the run with its error while it can still stop. */
  onDownload?: (p: DownloadProgress) => void;
  /** One-line notices (stale leftovers removed, …); one that throws, or whose promise rejects, fails the run with its error while it can still stop. */
  onNotice?: (message: string) => void;
  /**
   * Cancels the run: the promise rejects with a `WeightmixError` whose `name` is 'AbortError', `code`
   * 'Aborted' and `cause` the signal's `reason`; nothing is published and temporary files are removed.
   */
  signal?: AbortSignal;
}

/** The options of `interpolate`. */
export interface InterpolateOptions extends InterpolationCommon {
  /** λ, any finite number: 0 is the Instruct model, 1 the Thinking model; outside [0, 1] extrapolates. */
  lambda: number;
  /** The output model folder. */
  output: string;
}

/** What an interpolation (or a sweep) wrote, and (from ResolvedDevice) where its arithmetic ran and why on the CPU under `auto`. */
export interface InterpolationSummary extends ResolvedDevice {
  /** The model folders written (absolute), one per λ. */
  outputs: string[];
  /** The λ of each output, in the same order. */
  lambdas: number[];
  /** Shard files written, all outputs together. */
  files: number;
  /** Bytes written, all outputs together. */
  bytes: number;
  /** Tensors per model. */
  tensors: number;
  /** Tensors the selection interpolated (the others are the Instruct tensor, byte for byte). */
  selectedTensors: number;
  /** Wall time of the whole run. */
  seconds: number;
  /** `bytes` / `seconds`, in GB (10^9 bytes) per second. */
  gbPerSecond: number;
  /** The numerics the run used. */
  numerics: Numerics;
  /** The selection in words ("all tensors", "layers 12-35, modules attn"). */
  selection: string;
  /** Worker threads used. */
  threads: number;
  /** "I/N" when only part I of N of the shards was written. */
  part?: string;
}

/**
 * The old name of InterpolationSummary.
 * @deprecated Use InterpolationSummary (an interpolation is not a recipe merge); kept so that dependents compile.
 */
export type MergeSummary = InterpolationSummary;

/** The options every interpolation and sweep takes, and whether each must be given. */
export const INTERPOLATION_COMMON_KEYS: OptionKeys<InterpolationCommon> = {
  instruct: 'required',
  thinking: 'required',
  layers: 'optional',
  modules: 'optional',
  skipModules: 'optional',
  numerics: 'optional',
  dtype: 'optional',
  filesFrom: 'optional',
  force: 'optional',
  part: 'optional',
  threads: 'optional',
  blockBytes: 'optional',
  direct: 'optional',
  device: 'optional',
  onProgress: 'optional',
  env: 'optional',
  onDownload: 'optional',
  onNotice: 'optional',
  signal: 'optional',
};
const INTERPOLATE_KEYS: OptionKeys<InterpolateOptions> = { ...INTERPOLATION_COMMON_KEYS, lambda: 'required', output: 'required' };

/**
 * Writes Θ = λ·Θ_Thinking + (1−λ)·Θ_Instruct (Wu et al., arXiv 2510.10977) as a new model folder:
 * every shard, the index, config, tokenizer files and a model card, published atomically.
 *
 * @example
 * ```ts
 * import { interpolate } from 'weightmix';
 * const summary = await interpolate({ instruct: 'Qwen3-4B-Instruct-2507', thinking: 'Qwen3-4B-Thinking-2507', lambda: 0.8, output: 'merged-0.8' });
 * console.log(`${summary.bytes} bytes in ${summary.seconds} s`);
 * ```
 * @throws {@link WeightmixError} `Usage` (bad or unknown option), `ModelNotFound`, `ModelsDiffer`,
 * `ShapeMismatch`, `DtypeMismatch`, `UnsupportedDtype`, `OutputExists`, `OutputLocked`, `OutputError`, `NoSpace`,
 * `IoError`, `InputChanged`, `CudaUnavailable`, `Aborted`, a safetensors code for a malformed
 * input (docs/errors.md lists them all); anything else is a bug.
 */
export async function interpolate(options: InterpolateOptions): Promise<InterpolationSummary> {
  checkOptions<InterpolateOptions>('interpolate', options, INTERPOLATE_KEYS);
  return withGuardedCallbacks(options, (guarded) => interpolateAs(guarded, API_NAMES));
}

/** `interpolate` for a front door that has checked its own input; its messages name options by `name` (the command line: flags). */
export async function interpolateAs(options: InterpolateOptions, name: OptionNamer): Promise<InterpolationSummary> {
  parseOutputFolder(options.output, name('output'));
  const lambda = parseLambda(options.lambda, name('lambda'));
  return runInterpolation(options, [{ lambda, dir: options.output }], undefined, name);
}

interface Target {
  lambda: number;
  dir: string;
}

/**
 * The one code path of `interpolate` and `sweep`: N targets, one pass over the inputs. `siblings`
 * names other outputs beside the targets whose stale leftovers go too (a sweep's `lambda-*`).
 */
export async function runInterpolation(
  options: InterpolationCommon,
  targets: Target[],
  siblings?: (name: string) => boolean,
  name: OptionNamer = API_NAMES,
): Promise<InterpolationSummary> {
  const started = process.hrtime.bigint();
  const numerics = parseNumerics(options.numerics, name('numerics'));
  const dtype = parseDtype(options.dtype, name('dtype'));
  const filesFrom = parseFilesFrom(options.filesFrom, name('filesFrom'));
  const threads = parseThreads(options.threads, name('threads'));
  const device = parseDevice(options.device, name('device'));
  const blockBytes = parseBlockBytes(options.blockBytes, name('blockBytes'));
  const part = parsePart(options.part, name('part'));
  const selection = parseSelection(options, name);
  for (const key of ['instruct', 'thinking'] as const) {
    if (typeof options[key] !== 'string' || options[key] === '') throw usageError(`${name(key)} must be a model folder path, got ${showValue(options[key])}`);
  }
  checkEnvOption(options.env, name('env'));
  preloadNative();
  const localInputs = [options.instruct, options.thinking].filter((r) => isLocalReference(r)).map((r) => path.resolve(r));
  // Local folders are opened first (headers only, under a second): a mistyped input or selection is named before the output is
  // looked at, as it always was. A hub id is opened after the lock, so that a second run is refused before its download.
  let opened = localInputs.length === 2 ? await openPair(options, selection, name) : undefined;
  const readsOf = (pair: { instruct: Checkpoint; thinking: Checkpoint }) => [...pathsRead(pair.instruct), ...pathsRead(pair.thinking)];
  const transactions: OutputTransaction[] = [];
  try {
    for (const [o, t] of targets.entries()) {
      transactions.push(
        await OutputTransaction.begin(t.dir, {
          force: options.force,
          notice: options.onNotice,
          reads: opened ? readsOf(opened) : localInputs,
          siblings,
          // The first target's look covers every sibling λ's leftovers: once per sweep, not once per λ (1000 λ took minutes).
          removeStale: o === 0,
          checkParts: false,
          ...partBeginOptions(part),
        }),
      );
    }
    // Every target locked first, then one look for --part jobs on them: a part starting meanwhile sees those locks.
    if (!part) refuseRunningParts(targets.map((t) => path.resolve(t.dir)));
    if (opened === undefined) {
      opened = await openPair(options, selection, name);
      // A hub snapshot's files are known only now (begin checked the local pair's).
      for (const t of targets) OutputTransaction.refuseInputs(t.dir, readsOf(opened));
    }
    const { instruct, thinking, unselected, selectedTensors } = opened;
    const recipeText = (lambda: number) =>
      JSON.stringify({
        method: 'interpolate',
        lambda,
        numerics,
        selection: describeSelection(selection),
        instruct: instruct.dir,
        thinking: thinking.dir,
        instruct_hub: hubProvenance(instruct),
        thinking_hub: hubProvenance(thinking),
        weightmix: VERSION,
      });
    const recipes = targets.map((t) => interpolationRecipes(instruct, thinking, t.lambda, numerics, dtype, name('numerics')));
    const plan = planMerge({
      checkpoints: [instruct, thinking],
      layout: checkpointLayout(instruct),
      outputs: targets.map((t, o) => ({ dir: transactions[o].tempDir, metadata: { format: 'pt', weightmix: recipeText(t.lambda) } })),
      // Without a selection no name is looked up (a Set lookup hashes each of an 18,867-tensor model's names).
      recipe: unselected.size === 0 ? (name, o) => recipes[o](name, true) : (name, o) => recipes[o](name, !unselected.has(name)),
      shardFilter: part ? partFilter(instruct, part, options.onNotice) : undefined,
    });
    // A part's target is shared with the other parts: it tells their shards from another model's files.
    if (part)
      transactions.forEach((tx, o) =>
        tx.partOf(
          plan.models[o].shards.map((shard) => shard.name),
          { ...part, recipe: recipeText(targets[o].lambda) },
        ),
      );
    // A sweep's blocks shrink with its outputs, as a batch's do: each output holds about threads + 2 of them.
    const writeBlockBytes = await writePassBlockBytes(
      options.blockBytes === undefined ? undefined : blockBytes,
      transactions.map((tx) => tx.tempDir),
      threads,
    );
    const engine = { threads, blockBytes: writeBlockBytes, direct: options.direct ?? true, device };
    let indexWrites: (() => Promise<void>)[] = [];
    const running = (onReserved: () => void) => {
      const run = executeMergePlan(plan, engine, { ...options, onReserved }, name);
      // The indexes' bytes are made while the engine runs; only their writing waits for its reservation.
      indexWrites = plan.models.map(preparedIndex);
      return run;
    };
    const from = filesFrom === 'thinking' ? thinking : instruct;
    const writeFiles = async () => {
      for (let o = 0; o < targets.length; o++) {
        const model = plan.models[o];
        await indexWrites[o]();
        await copySidecars(from, model.dir, dtype);
        await writeModelCard(model.dir, {
          title: `${modelName(instruct)} × ${modelName(thinking)} at λ = ${targets[o].lambda}`,
          sources: [
            { role: 'Instruct (λ = 0)', dir: instruct.dir, hub: instruct.hub },
            { role: 'Thinking (λ = 1)', dir: thinking.dir, hub: thinking.hub },
          ],
          lines: [
            `Θ = λ·Θ_Thinking + (1−λ)·Θ_Instruct with λ = ${targets[o].lambda} (Wu et al., arXiv 2510.10977)`,
            `selection: ${describeSelection(selection)} (other tensors are the Instruct weights, ${dtype ? `converted to ${dtype}` : 'byte for byte'})`,
            `numerics: ${numerics === 'exact' ? 'torch.lerp in f32, one round-to-nearest-even' : "the paper's script: bf16 arithmetic, rounded after each operation"}`,
            `sidecar files (config, tokenizer, chat template) from the ${filesFrom} model`,
          ],
          recipe: JSON.parse(recipeText(targets[o].lambda)),
        });
      }
    };
    const ran = await besideReserved(running, writeFiles);
    await OutputTransaction.commitAll(transactions, options.signal);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const files = plan.models.reduce((n, m) => n + m.shards.filter((s) => s.written).length, 0);
    return {
      outputs: targets.map((t) => path.resolve(t.dir)),
      lambdas: targets.map((t) => t.lambda),
      files,
      bytes: plan.bytesToWrite,
      tensors: instruct.names.length,
      selectedTensors,
      seconds,
      gbPerSecond: plan.bytesToWrite / 1e9 / seconds,
      numerics,
      selection: describeSelection(selection),
      threads,
      // Only a part's summary has the key (exactOptionalPropertyTypes: no own `part: undefined`).
      ...(part ? { part: `${part.index}/${part.count}` } : {}),
      ...ran,
    };
  } catch (e) {
    await OutputTransaction.abortAll(transactions);
    throw environmentError(e, `cannot finish ${targets.map((t) => t.dir).join(', ')}`);
  }
}

/** The pair opened (a hub id's snapshot downloaded) and checked against each other and the selection. */
async function openPair(
  options: InterpolationCommon,
  selection: ReturnType<typeof parseSelection>,
  name: OptionNamer,
): Promise<{ instruct: ModelCheckpoint; thinking: ModelCheckpoint; unselected: Set<string>; selectedTensors: number }> {
  const [instruct, thinking] = await openModels([options.instruct, options.thinking], options);
  checkCompatible(instruct, thinking);
  checkLayersExist(
    selection,
    layerCount(instruct, (n) => classifyTensor(n).layer),
    name('layers'),
  );
  // The tensors left out, not a table of all: without a selection (the usual run) it stays empty.
  const unselected = selectsAll(selection) ? new Set<string>() : new Set(instruct.names.filter((n) => !isSelected(n, selection)));
  const selectedTensors = instruct.names.length - unselected.size;
  if (selectedTensors === 0) {
    throw usageError(
      `the selection (${describeSelection(selection)}) matches none of the ${instruct.names.length} tensors: nothing would be interpolated${absentModulesNote(selection, instruct.names)}`,
    );
  }
  checkSkippedModulesExist(selection, instruct.names, name('skipModules'));
  await refuseUncomputedTensors(
    [instruct, thinking],
    () =>
      instruct.names
        .filter((n) => !unselected.has(n))
        .map((n) => ({ name: n, sources: [instruct, thinking].map((m) => ({ tensor: m.tensors.get(n)!, where: m.dir })) })),
    'leave it out with --layers, --modules or --skip-modules (it then keeps the Instruct bytes)',
  );
  return { instruct, thinking, unselected, selectedTensors };
}

/** The output shards of part I of N, balanced by the Instruct shards' file sizes (engine/parts.ts). */
function partFilter(layout: Checkpoint, part: { index: number; count: number }, notice?: (message: string) => void): (shard: string) => boolean {
  return partShardFilter(
    layout.shards.map((s) => ({ name: s.name, size: s.header.fileSize })),
    part,
    notice,
  );
}

// Model lists shared by every λ's recipes (never written to), so that a sweep's outputs read one list per tensor: [0], [1], [0, 1].
const MODEL_LISTS = [[0], [1], [0, 1]];

/**
 * Each tensor's recipe for one λ. The recipes are shared, read-only objects, one per (op, dtype): an
 * 18,867-tensor MoE model has a handful of distinct recipes, not one object per tensor.
 */
function interpolationRecipes(
  instruct: Checkpoint,
  thinking: Checkpoint,
  lambda: number,
  numerics: Numerics,
  dtype: FloatDtype | undefined,
  numericsOption: string,
): (name: string, selected: boolean) => TensorRecipe {
  // By output dtype, then kind (copy of model 0, copy of model 1, lerp, lerp_mi): no key string built per tensor.
  const shared = new Map<SafetensorsDtype, TensorRecipe[]>();
  // The last recipe given, which the next tensor usually shares: no Map lookup per tensor.
  let last: { kind: number; outDtype: SafetensorsDtype; recipe: TensorRecipe } | undefined;
  const recipe = (kind: 0 | 1 | 2 | 3, outDtype: SafetensorsDtype): TensorRecipe => {
    if (last !== undefined && last.kind === kind && last.outDtype === outDtype) return last.recipe;
    last = { kind, outDtype, recipe: sharedRecipe(kind, outDtype) };
    return last.recipe;
  };
  const sharedRecipe = (kind: 0 | 1 | 2 | 3, outDtype: SafetensorsDtype): TensorRecipe => {
    let byKind = shared.get(outDtype);
    if (byKind === undefined) shared.set(outDtype, (byKind = []));
    return (byKind[kind] ??=
      kind < 2
        ? { op: 'copy', models: MODEL_LISTS[kind], w: [0], dtype: outDtype }
        : { op: kind === 2 ? 'lerp' : 'lerp_mi', models: MODEL_LISTS[2], w: [lambda], dtype: outDtype });
  };
  // The models' tables, read by name in layout order: each lookup first tries the position after the last one found.
  const tables = [tensorTableOf(instruct), tensorTableOf(thinking)];
  // Both models list the same names in the same order (the usual pair, one compare of their texts): Thinking's position is
  // Instruct's. Comparing two models' name strings one by one cost ~0.1 µs each, 2 ms per 18,867 tensors.
  const sameOrder = sameNameOrder(tables[0], tables[1]);
  const next = [0, 0];
  const positionOf = (m: number, name: string) => {
    const table = tables[m];
    // The usual answer, the position after the last one found, tried without a call.
    const at = table.names[next[m]] === name ? next[m] : indexOfName(table, name, next[m]);
    next[m] = at + 1;
    return at;
  };
  return (name, selected) => {
    const i = positionOf(0, name);
    const a = dtypeAt(tables[0], i);
    const b = dtypeAt(tables[1], sameOrder ? i : positionOf(1, name));
    const float = isFloatDtype(a);
    const outDtype = float && dtype ? dtype : a;
    if (!selected || !float) return recipe(0, outDtype);
    if (!isFloatDtype(b)) throw new WeightmixError('DtypeMismatch', `tensor ${name} is ${b} in ${thinking.dir}`);
    if (numerics === 'mi') {
      if (a !== b) {
        throw new WeightmixError('DtypeMismatch', `${numericsOption} mi needs one dtype per tensor, but ${name} is ${a} and ${b}; use ${numericsOption} exact`);
      }
      return recipe(3, outDtype);
    }
    // λ = 0 and λ = 1 reproduce an input bit for bit: a byte copy, no arithmetic.
    if (lambda === 0) return recipe(0, outDtype);
    if (lambda === 1) return recipe(1, outDtype);
    return recipe(2, outDtype);
  };
}
