/**
 * `weightmix diff`: how far apart two checkpoints are, per tensor, per layer × module class, per
 * layer, per module class and for the whole pair, from one streaming native pass that accumulates
 * Σa², Σb², Σab, Σ(b−a)², Σ|a|, Σ|b|, Σ|b−a|, max|b−a| and the non-finite count of every tensor in f64.
 *
 * Definitions (A is the first model, B the second; sums run over the finite pairs only):
 *   relDistance = ‖B−A‖ / ‖A‖ = sqrt(Σ(b−a)²) / sqrt(Σa²)
 *   cosine      = Σab / sqrt(Σa² · Σb²), clamped to [−1, 1]
 *   maxAbsDiff  = max |b−a|
 *   l1Ratio     = Σ|b−a| / (Σ|a| + Σ|b|)
 *   sigma       = relDistance of the whole pair: sqrt(ΣΣ(b−a)²) / sqrt(ΣΣa²) over every float tensor
 *                 (F32, F16, BF16). Large tensors weigh more, as they do in the model.
 *   paperSigma  = the mean of the per-tensor l1Ratio over the tensors whose name contains `model.layers.N.`
 *                 (PAPER_SIGMA_TENSOR, the script's own test) and Σ|a| + Σ|b| > 0: the σ of the paper's Table 1 (below).
 *                 Every tensor weighs the same, a norm as a projection.
 * Edge cases: where ‖A‖ = 0, relDistance is 0 if B = A there too and null otherwise; where both
 * norms are 0 the cosine is 1 (the two are the same zero vector), where only one is 0 it is null;
 * where Σ|a| + Σ|b| = 0 (both zero), l1Ratio is 0.
 * A pair with a NaN or ±Inf member is counted in `nonFinite` and left out of every sum; where no
 * finite pair is left (an empty tensor, or one of NaNs), relDistance and cosine are null.
 * Aggregates add the per-tensor f64 sums in the first model's tensor order (shard, then offset).
 *
 * σ and the paper: Wu et al. (arXiv 2510.10977) Table 1 reports σ = 0.0269 for Qwen3-4B Instruct-2507 vs
 * Thinking-2507 (0.0638 for Base vs Thinking), citing the authors' Shadow-FT work, whose script (wutaiqiang/Shadow-FT,
 * sigma_v2.py) computes per tensor named `…model.layers.N.…` Σ|a−b| / (Σ|a| + Σ|b|) and averages those over the
 * tensors: `paperSigma`. It is an L1 ratio averaged per tensor, not the global relative L2 distance `sigma` (on one
 * fixture pair `sigma` reads 0.027 where `paperSigma` reads 0.010): compare a pair with the paper's table by `paperSigma`.
 * Where the script gives no number, this one differs: it sums bf16 and f32 tensors in f32 (numpy) but f16 ones in f16
 * (they overflow), and a non-finite value or a tensor that is zero in both models makes its mean NaN; here the sums are
 * f64 over the finite pairs, and a tensor zero in both is left out.
 */
import { Checkpoint } from '../model/checkpoint';
import { openModels } from '../hub/open-model';
import type { ResolveOptions } from '../hub/resolve';
import { abortError, usageError, WeightmixError } from '../errors';
import type { MergeProgress } from '../engine/execute-plan';
import { preloadNative } from '../engine/native';
import { addMoments, emptyMoments, Moments, runMomentsPass, TensorPair } from '../engine/moments';
import { parseThreads } from '../options';
import { checkOptions, OptionKeys } from '../api/validate-options';
import { checkCompatible } from '../engine/plan';
import { isFloatDtype, SafetensorsDtype } from '../format/dtypes';
import { classifyTensor, MODULE_CLASSES, ModuleClass } from '../model/tensor-names';
import { withGuardedCallbacks } from '../api/guarded-callbacks';

/** The version of the JSON report's shape; bumped when a key changes meaning or goes away. */
export const DIFF_REPORT_FORMAT = 'weightmix-diff/1';

/** Module classes in display order: the user-selectable ones, then `other`. */
export const DIFF_MODULE_ORDER: readonly ModuleClass[] = Object.freeze([...MODULE_CLASSES, 'other' as const]);

/** The f64 sums of a set of element pairs and the figures derived from them. */
export interface DiffStats {
  /** Element pairs compared (finite and non-finite). */
  elements: number;
  /** Pairs where a or b is NaN or ±Inf; they are left out of every sum and of the maximum. */
  nonFinite: number;
  /** Σa² over finite pairs. */
  sumSqA: number;
  /** Σb² over finite pairs. */
  sumSqB: number;
  /** Σab over finite pairs. */
  sumAB: number;
  /** Σ(b−a)² over finite pairs. */
  sumSqDiff: number;
  /** Σ|a| over finite pairs. */
  sumAbsA: number;
  /** Σ|b| over finite pairs. */
  sumAbsB: number;
  /** Σ|b−a| over finite pairs. */
  sumAbsDiff: number;
  /** max |b−a| over finite pairs (0 when there are none). */
  maxAbsDiff: number;
  /** ‖A‖ = sqrt(Σa²). */
  normA: number;
  /** ‖B‖ = sqrt(Σb²). */
  normB: number;
  /** ‖B−A‖ = sqrt(Σ(b−a)²). */
  normDiff: number;
  /** ‖B−A‖ / ‖A‖; 0 when A = B = 0; null when ‖A‖ = 0 but B differs, or no finite pair was compared. */
  relDistance: number | null;
  /** Σab / (‖A‖·‖B‖) in [−1, 1]; 1 when both are 0; null when exactly one is, or no finite pair was compared. */
  cosine: number | null;
  /** Σ|b−a| / (Σ|a| + Σ|b|) in [0, 1]; 0 when both are 0; null when no finite pair was compared. */
  l1Ratio: number | null;
}

/** One float tensor compared. */
export interface TensorDiff extends DiffStats {
  /** The tensor's name. */
  name: string;
  /** Decoder layer, or null outside the decoder stack. */
  layer: number | null;
  /** Its module class. */
  module: ModuleClass;
  /** Its dtype in A. */
  dtypeA: SafetensorsDtype;
  /** Its dtype in B. */
  dtypeB: SafetensorsDtype;
  /** Its shape (the same in both). */
  shape: number[];
}

/** One decoder layer's tensors of one module class, or one non-layer module class (layer null). */
export interface GroupDiff extends DiffStats {
  /** The decoder layer, or null for a module class outside the layers. */
  layer: number | null;
  /** The module class. */
  module: ModuleClass;
  /** Tensors summed. */
  tensors: number;
}

/** Every float tensor of one decoder layer. */
export interface LayerDiff extends DiffStats {
  /** The decoder layer. */
  layer: number;
  /** Tensors summed. */
  tensors: number;
}

/** Every float tensor of one module class, across all layers. */
export interface ModuleDiff extends DiffStats {
  /** The module class. */
  module: ModuleClass;
  /** Tensors summed. */
  tensors: number;
}

/** A tensor the diff does not compare (only F32, F16 and BF16 are compared). */
export interface SkippedTensor {
  /** The tensor's name. */
  name: string;
  /** Its dtype in A. */
  dtypeA: SafetensorsDtype;
  /** Its dtype in B. */
  dtypeB: SafetensorsDtype;
  /** Why it was not compared. */
  reason: string;
}

/** What `diff` measured; `JSON.stringify` of it is `weightmix diff --json`. */
export interface DiffReport {
  /** Always DIFF_REPORT_FORMAT. */
  format: string;
  /** Absolute folder of the first model (A, the reference: distances are relative to ‖A‖). */
  a: string;
  /** Absolute folder of the second model (B). */
  b: string;
  /** The pair's summary figure: `summary.relDistance`, sqrt(ΣΣ(b−a)²) / sqrt(ΣΣa²) over all float tensors. */
  sigma: number | null;
  /**
   * The σ of the paper's Table 1 (0.0269 for Qwen3-4B Instruct-2507 vs Thinking-2507): the mean of `l1Ratio` over the
   * tensors whose name contains `model.layers.N.` (as the authors' script picks them) and which are not zero in both
   * models; null when there are none.
   */
  paperSigma: number | null;
  /** Tensors whose `l1Ratio` `paperSigma` averages. */
  paperSigmaTensors: number;
  /** Every compared tensor together. */
  summary: DiffStats & { tensors: number };
  /** Per layer × module class (layer order, then DIFF_MODULE_ORDER), then the non-layer classes. */
  groups: GroupDiff[];
  /** Per decoder layer, all module classes together, in layer order. */
  layers: LayerDiff[];
  /** Per module class, all layers together, in DIFF_MODULE_ORDER. */
  modules: ModuleDiff[];
  /** Per tensor, in the first model's order (shard, then data offset). */
  tensors: TensorDiff[];
  /** Tensors not compared (non-float dtypes), and why. */
  skipped: SkippedTensor[];
  /** Tensor bytes read from both models. */
  bytesRead: number;
  /** Wall time. */
  seconds: number;
  /** Worker threads used (the figures do not depend on it). */
  threads: number;
}

/** The diff's one statistics pass: bytes are tensor bytes read, both models together; tensors are compared pairs. */
export type DiffProgress = MergeProgress;

/** The options of `diff`. */
export interface DiffOptions {
  /** First model (A), a folder or a hub id: distances are relative to its norm. */
  a: string;
  /** Second model (B), a folder or a hub id. */
  b: string;
  /** Progress of a hub download (a hub id not yet in the cache); one that throws, or whose promise rejects, fails the run with its error while it can still stop. */
  onDownload?: ResolveOptions['onDownload'];
  /** One-line notices while resolving a hub id (cache used offline, …); one that throws, or whose promise rejects, fails the run with its error while it can still stop. */
  onNotice?: ResolveOptions['onNotice'];
  /** Worker threads (default: the number of cores). The figures do not depend on it. */
  threads?: number;
  /**
   * Called on the main thread about every 100 ms while the engine reads, and once with
   * `bytesDone === bytesTotal` before the promise resolves; never after it settles. If it throws,
   * or returns a promise that rejects before the diff ends, the diff is cancelled and the promise rejects with what it threw.
   */
  onProgress?: (progress: DiffProgress) => void;
  /** Aborting rejects the promise with a WeightmixError named 'AbortError' (code 'Aborted', `cause` the signal's reason). */
  signal?: AbortSignal;
}

/** The figures of a set of pairs from its sums (definitions in the module comment). */
export function diffStats(m: Moments): DiffStats {
  const normA = Math.sqrt(m.sumSqA);
  const normB = Math.sqrt(m.sumSqB);
  const normDiff = Math.sqrt(m.sumSqDiff);
  let relDistance: number | null;
  if (m.elements - m.nonFinite === 0) relDistance = null;
  else if (m.sumSqA > 0) relDistance = normDiff / normA;
  else relDistance = m.sumSqDiff === 0 ? 0 : null;
  let cosine: number | null;
  if (m.elements - m.nonFinite === 0) {
    cosine = null;
  } else if (m.sumSqA > 0 && m.sumSqB > 0) {
    // sqrt of the product (not the product of sqrts): A = B then gives exactly 1.
    cosine = Math.min(1, Math.max(-1, m.sumAB / Math.sqrt(m.sumSqA * m.sumSqB)));
  } else {
    cosine = m.sumSqA === 0 && m.sumSqB === 0 ? 1 : null;
  }
  const absTotal = m.sumAbsA + m.sumAbsB;
  const l1Ratio = m.elements - m.nonFinite === 0 ? null : absTotal > 0 ? m.sumAbsDiff / absTotal : 0;
  return {
    elements: m.elements,
    nonFinite: m.nonFinite,
    sumSqA: m.sumSqA,
    sumSqB: m.sumSqB,
    sumAB: m.sumAB,
    sumSqDiff: m.sumSqDiff,
    sumAbsA: m.sumAbsA,
    sumAbsB: m.sumAbsB,
    sumAbsDiff: m.sumAbsDiff,
    maxAbsDiff: m.maxAbsDiff,
    normA,
    normB,
    normDiff,
    relDistance,
    cosine,
    l1Ratio,
  };
}

const DIFF_KEYS: OptionKeys<DiffOptions> = {
  a: 'required',
  b: 'required',
  threads: 'optional',
  onDownload: 'optional',
  onNotice: 'optional',
  onProgress: 'optional',
  signal: 'optional',
};

function validateOptions(options: DiffOptions): { threads: number } {
  checkOptions<DiffOptions>('diff', options, DIFF_KEYS);
  for (const key of ['a', 'b'] as const) {
    if (typeof options[key] !== 'string' || options[key] === '') {
      throw usageError(`diff: option '${key}' must be a model folder or hub id, got ${JSON.stringify(options[key])}`);
    }
  }
  return { threads: parseThreads(options.threads, 'threads') };
}

function aborted(signal: AbortSignal | undefined): WeightmixError {
  return abortError('the diff was aborted', signal);
}

/**
 * How far apart two checkpoints are: ‖B−A‖/‖A‖, cosine, max |B−A| and Σ|B−A|/(Σ|A|+Σ|B|) per tensor, per layer × module
 * class, per layer, per module class, and σ and the paper's Table 1 σ (`paperSigma`) for the pair, from one streaming pass
 * over both. The two models need the same tensor names and shapes (float dtypes may differ per tensor); non-float tensors
 * are listed in `skipped`.
 *
 * @example
 * ```ts
 * import { diff } from 'weightmix';
 * const report = await diff({ a: 'Qwen3-4B-Instruct-2507', b: 'Qwen3-4B-Thinking-2507' });
 * console.log(report.sigma, report.paperSigma, report.layers.map((l) => l.relDistance));
 * ```
 * @throws {@link WeightmixError} `Usage`, `ModelNotFound`, `ModelsDiffer`, `ShapeMismatch`, `InputChanged`,
 * `Aborted`, a safetensors code for a malformed input (docs/errors.md).
 */
export async function diff(options: DiffOptions): Promise<DiffReport> {
  const { threads } = validateOptions(options);
  return withGuardedCallbacks(options, (guarded) => diffChecked(guarded, threads));
}

/** `diff` of checked options. */
async function diffChecked(options: DiffOptions, threads: number): Promise<DiffReport> {
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  if (options.signal?.aborted) throw aborted(options.signal);
  preloadNative();
  const [a, b] = await openModels([options.a, options.b], options);
  checkCompatible(a, b);
  if (options.signal?.aborted) throw aborted(options.signal);

  const { pairs, compared, skipped, bytesRead } = comparedPairs(a, b);
  let moments: Moments[];
  try {
    moments = await runMomentsPass(pairs, { threads, blockBytes: 8 << 20, direct: true, onProgress: options.onProgress, signal: options.signal });
  } catch (e) {
    if (e instanceof WeightmixError && e.code === 'Aborted') throw aborted(options.signal);
    throw e;
  }
  // Aborted in the pass's last progress call, after its last read: still before the promise settles.
  if (options.signal?.aborted) throw aborted(options.signal);

  const tensors: TensorDiff[] = compared.map((name, j) => {
    const ta = a.tensors.get(name)!;
    const tb = b.tensors.get(name)!;
    const { layer, module } = classifyTensor(name);
    return {
      name,
      layer,
      module,
      dtypeA: ta.dtype,
      dtypeB: tb.dtype,
      shape: ta.shape,
      ...diffStats(moments[j]),
    };
  });
  return {
    format: DIFF_REPORT_FORMAT,
    a: a.dir,
    b: b.dir,
    ...aggregate(tensors),
    tensors,
    skipped,
    bytesRead,
    seconds: elapsed(),
    threads,
  };
}

/** One pair per float tensor, in A's order; non-float tensors are skipped. */
function comparedPairs(a: Checkpoint, b: Checkpoint) {
  const pairs: TensorPair[] = [];
  const compared: string[] = [];
  const skipped: SkippedTensor[] = [];
  let bytesRead = 0;
  for (const name of a.names) {
    const ta = a.tensors.get(name)!;
    const tb = b.tensors.get(name)!;
    if (!isFloatDtype(ta.dtype) || !isFloatDtype(tb.dtype)) {
      skipped.push({ name, dtypeA: ta.dtype, dtypeB: tb.dtype, reason: 'not a F32, F16 or BF16 tensor' });
      continue;
    }
    pairs.push({ a: ta, b: tb });
    compared.push(name);
    bytesRead += ta.byteLength + tb.byteLength;
  }
  return { pairs, compared, skipped, bytesRead };
}

function momentsOf(s: DiffStats): Moments {
  return {
    elements: s.elements,
    sumSqA: s.sumSqA,
    sumSqB: s.sumSqB,
    sumAB: s.sumAB,
    sumSqDiff: s.sumSqDiff,
    sumAbsA: s.sumAbsA,
    sumAbsB: s.sumAbsB,
    sumAbsDiff: s.sumAbsDiff,
    maxAbsDiff: s.maxAbsDiff,
    nonFinite: s.nonFinite,
  };
}

/** The tensors the paper's σ averages: sigma_v2.py's re.search(r"model\.layers\.(\d+)\.", name). */
export const PAPER_SIGMA_TENSOR = /model\.layers\.\d+\./;

/** The paper's σ: the mean of the L1 ratios of PAPER_SIGMA_TENSOR's tensors (tensor order) that are not zero in both, and how many it averages. */
function paperSigmaOf(tensors: readonly TensorDiff[]): Pick<DiffReport, 'paperSigma' | 'paperSigmaTensors'> {
  let sum = 0;
  let count = 0;
  for (const t of tensors) {
    if (t.l1Ratio === null || t.sumAbsA + t.sumAbsB === 0 || !PAPER_SIGMA_TENSOR.test(t.name)) continue;
    sum += t.l1Ratio;
    count++;
  }
  return { paperSigma: count === 0 ? null : sum / count, paperSigmaTensors: count };
}

const moduleRank = (m: ModuleClass) => DIFF_MODULE_ORDER.indexOf(m);

/** Sums per-tensor moments (in tensor order) into groups, layers, module classes and the whole pair. */
export function aggregate(
  tensors: readonly TensorDiff[],
): Pick<DiffReport, 'sigma' | 'paperSigma' | 'paperSigmaTensors' | 'summary' | 'groups' | 'layers' | 'modules'> {
  type Acc = { m: Moments; tensors: number };
  const bucket = <K>(map: Map<K, Acc>, key: K, t: TensorDiff) => {
    let acc = map.get(key);
    if (!acc) map.set(key, (acc = { m: emptyMoments(), tensors: 0 }));
    addMoments(acc.m, momentsOf(t));
    acc.tensors++;
  };
  const groups = new Map<string, Acc>();
  const layers = new Map<number, Acc>();
  const modules = new Map<ModuleClass, Acc>();
  const total: Acc = { m: emptyMoments(), tensors: 0 };
  for (const t of tensors) {
    bucket(groups, JSON.stringify([t.layer, t.module]), t);
    if (t.layer !== null) bucket(layers, t.layer, t);
    bucket(modules, t.module, t);
    addMoments(total.m, momentsOf(t));
    total.tensors++;
  }
  const summary = { tensors: total.tensors, ...diffStats(total.m) };
  return {
    sigma: summary.relDistance,
    ...paperSigmaOf(tensors),
    summary,
    groups: [...groups.entries()]
      .map(([key, acc]) => {
        const [layer, module] = JSON.parse(key) as [number | null, ModuleClass];
        return { layer, module, acc };
      })
      .sort((x, y) => {
        // Layer rows first (by layer), then the non-layer classes; within each, module order.
        const lx = x.layer ?? Infinity;
        const ly = y.layer ?? Infinity;
        return lx !== ly ? lx - ly : moduleRank(x.module) - moduleRank(y.module);
      })
      .map((g) => ({ layer: g.layer, module: g.module, tensors: g.acc.tensors, ...diffStats(g.acc.m) })),
    layers: [...layers.entries()].sort(([x], [y]) => x - y).map(([layer, acc]) => ({ layer, tensors: acc.tensors, ...diffStats(acc.m) })),
    modules: [...modules.entries()]
      .sort(([x], [y]) => moduleRank(x) - moduleRank(y))
      .map(([module, acc]) => ({ module, tensors: acc.tensors, ...diffStats(acc.m) })),
  };
}
