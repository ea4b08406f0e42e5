/**
 * `weightmix diff`: how far apart two checkpoints are, per tensor, per layer × module class, per
 * layer, per module class and for the whole pair, from one streaming native pass that accumulates
 * Σa², Σb², Σab, Σ(b−a)², max|b−a| and the non-finite count of every tensor in f64.
 *
 * Definitions (A is the first model, B the second; sums run over the finite pairs only):
 *   relDistance = ‖B−A‖ / ‖A‖ = sqrt(Σ(b−a)²) / sqrt(Σa²)
 *   cosine      = Σab / sqrt(Σa² · Σb²), clamped to [−1, 1]
 *   maxAbsDiff  = max |b−a|
 *   sigma       = relDistance of the whole pair: sqrt(ΣΣ(b−a)²) / sqrt(ΣΣa²) over every float tensor
 *                 (F32, F16, BF16). Large tensors weigh more, as they do in the model.
 * Edge cases: where ‖A‖ = 0, relDistance is 0 if B = A there too and null otherwise; where both
 * norms are 0 the cosine is 1 (the two are the same zero vector), where only one is 0 it is null.
 * A pair with a NaN or ±Inf member is counted in `nonFinite` and left out of every sum; where no
 * finite pair is left (an empty tensor, or one of NaNs), relDistance and cosine are null.
 * Aggregates add the per-tensor f64 sums in the first model's tensor order (shard, then offset).
 *
 * σ and the paper: Wu et al. (arXiv 2510.10977) Table 1 reports σ = 0.0269 for Qwen3-4B
 * Instruct-2507 vs Thinking-2507 (0.0638 for Base vs Thinking). The texts within reach here (the
 * paper's abstract and summaries, its code repository, which holds only the merge script) do not
 * say how σ is computed, so `sigma` is defined above rather than copied: it equals the paper's
 * figure if theirs is the global relative distance; a mean of per-tensor distances, or a standard
 * deviation of the raw differences, would differ (both can be derived from `tensors`).
 */
import * as path from 'node:path';
import { Checkpoint } from '../model/checkpoint';
import { openModels } from '../model/open-model';
import type { ResolveOptions } from '../hub/resolve';
import { usageError, WeightmixError } from '../errors';
import { InputFiles } from '../engine/input-files';
import { NativeJob, NativeSource, runPlan } from '../engine/native';
import { parseThreads } from '../options';
import { checkCompatible, isFloatDtype } from '../engine/plan';
import { SafetensorsDtype } from '../format/safetensors';
import { classifyTensor, MODULE_CLASSES, ModuleClass } from '../model/tensor-names';
import { plotLayerProfile, type LayerProfileRow } from './plot';

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
}

export interface TensorDiff extends DiffStats {
  name: string;
  /** Decoder layer, or null outside the decoder stack. */
  layer: number | null;
  module: ModuleClass;
  dtypeA: SafetensorsDtype;
  dtypeB: SafetensorsDtype;
  shape: number[];
}

/** One decoder layer's tensors of one module class, or one non-layer module class (layer null). */
export interface GroupDiff extends DiffStats {
  layer: number | null;
  module: ModuleClass;
  tensors: number;
}

/** Every float tensor of one decoder layer. */
export interface LayerDiff extends DiffStats {
  layer: number;
  tensors: number;
}

/** Every float tensor of one module class, across all layers. */
export interface ModuleDiff extends DiffStats {
  module: ModuleClass;
  tensors: number;
}

/** A tensor the diff does not compare (only F32, F16 and BF16 are compared). */
export interface SkippedTensor {
  name: string;
  dtypeA: SafetensorsDtype;
  dtypeB: SafetensorsDtype;
  reason: string;
}

export interface DiffReport {
  /** Always DIFF_REPORT_FORMAT. */
  format: string;
  /** Absolute folder of the first model (A, the reference: distances are relative to ‖A‖). */
  a: string;
  /** Absolute folder of the second model (B). */
  b: string;
  /** The pair's summary figure: `summary.relDistance`, sqrt(ΣΣ(b−a)²) / sqrt(ΣΣa²) over all float tensors. */
  sigma: number | null;
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
  skipped: SkippedTensor[];
  /** Tensor bytes read from both models. */
  bytesRead: number;
  seconds: number;
  threads: number;
}

export interface DiffProgress {
  /** Tensor bytes read so far, both models together. */
  bytesDone: number;
  bytesTotal: number;
  seconds: number;
}

export interface DiffOptions {
  /** First model (A), a folder or a hub id: distances are relative to its norm. */
  a: string;
  /** Second model (B), a folder or a hub id. */
  b: string;
  /** Progress of a hub download, and one-line notices (cache used offline, …). */
  onDownload?: ResolveOptions['onDownload'];
  onNotice?: ResolveOptions['onNotice'];
  /** Worker threads (default: the number of cores). The figures do not depend on it. */
  threads?: number;
  /** Called from time to time with the bytes read so far. */
  onProgress?: (progress: DiffProgress) => void;
  /** Aborting rejects the promise with a WeightmixError of code 'Aborted'. */
  signal?: AbortSignal;
}

/** The six numbers the native engine returns per job, or their sums over several jobs. */
export interface Moments {
  elements: number;
  sumSqA: number;
  sumSqB: number;
  sumAB: number;
  sumSqDiff: number;
  maxAbsDiff: number;
  nonFinite: number;
}

export function emptyMoments(): Moments {
  return { elements: 0, sumSqA: 0, sumSqB: 0, sumAB: 0, sumSqDiff: 0, maxAbsDiff: 0, nonFinite: 0 };
}

/** Adds `x` into `into` (f64 sums, max of maxima). */
export function addMoments(into: Moments, x: Moments): void {
  into.elements += x.elements;
  into.sumSqA += x.sumSqA;
  into.sumSqB += x.sumSqB;
  into.sumAB += x.sumAB;
  into.sumSqDiff += x.sumSqDiff;
  into.maxAbsDiff = Math.max(into.maxAbsDiff, x.maxAbsDiff);
  into.nonFinite += x.nonFinite;
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
  return {
    elements: m.elements,
    nonFinite: m.nonFinite,
    sumSqA: m.sumSqA,
    sumSqB: m.sumSqB,
    sumAB: m.sumAB,
    sumSqDiff: m.sumSqDiff,
    maxAbsDiff: m.maxAbsDiff,
    normA,
    normB,
    normDiff,
    relDistance,
    cosine,
  };
}

function validateOptions(options: DiffOptions): { threads: number } {
  if (typeof options !== 'object' || options === null) throw usageError('diff: options must be an object with the model folders a and b');
  for (const key of ['a', 'b'] as const) {
    if (typeof options[key] !== 'string' || options[key] === '') {
      throw usageError(`diff: option '${key}' must be a model folder path, got ${JSON.stringify(options[key])}`);
    }
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw usageError(`diff: option 'onProgress' must be a function, got ${typeof options.onProgress}`);
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw usageError(`diff: option 'signal' must be an AbortSignal`);
  }
  return { threads: parseThreads(options.threads) };
}

function aborted(): WeightmixError {
  return new WeightmixError('Aborted', 'the diff was aborted');
}

/**
 * Compares two checkpoints with the same tensor names and shapes (float dtypes may differ per
 * tensor) in one streaming native pass. Non-float tensors are listed in `skipped`.
 * Throws WeightmixError: ModelNotFound, ModelsDiffer, ShapeMismatch, DtypeMismatch, Usage, Aborted, I/O codes.
 */
export async function diff(options: DiffOptions): Promise<DiffReport> {
  const { threads } = validateOptions(options);
  const started = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
  if (options.signal?.aborted) throw aborted();
  const [a, b] = await openModels([options.a, options.b], options);
  checkCompatible(a, b);
  if (options.signal?.aborted) throw aborted();

  const { inputs, jobs, compared, skipped, bytesRead } = planMoments(a, b);
  let moments: Float64Array = new Float64Array(0);
  if (jobs.length > 0) {
    const onProgress = options.onProgress;
    try {
      const result = await runPlan(
        { inputs, outputs: [], jobs, threads, blockBytes: 8 << 20, direct: true },
        {
          signal: options.signal,
          onProgress: onProgress ? (done, total) => onProgress({ bytesDone: done, bytesTotal: total, seconds: elapsed() }) : undefined,
        },
      );
      moments = result.moments;
    } catch (e) {
      if (e instanceof WeightmixError && e.code === 'Aborted') throw aborted();
      throw e;
    }
  }
  if (moments.length !== jobs.length * 6) throw new Error(`internal: the engine returned ${moments.length} moments for ${jobs.length} jobs`);

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
      ...diffStats(jobMoments(moments, j, ta.elementCount)),
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

/** One moments job per float tensor, in A's order; non-float tensors are skipped. */
function planMoments(a: Checkpoint, b: Checkpoint) {
  const inputFiles = new InputFiles();
  const jobs: NativeJob[] = [];
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
    const sources: NativeSource[] = [
      { input: inputFiles.indexOf(ta.file), offset: ta.offset, dtype: ta.dtype },
      { input: inputFiles.indexOf(tb.file), offset: tb.offset, dtype: tb.dtype },
    ];
    jobs.push({ count: ta.elementCount, sources, dests: [], moments: true });
    compared.push(name);
    bytesRead += ta.byteLength + tb.byteLength;
  }
  return { inputs: inputFiles.paths, jobs, compared, skipped, bytesRead };
}

function jobMoments(m: Float64Array, j: number, elements: number): Moments {
  const o = 6 * j;
  return { elements, sumSqA: m[o], sumSqB: m[o + 1], sumAB: m[o + 2], sumSqDiff: m[o + 3], maxAbsDiff: m[o + 4], nonFinite: m[o + 5] };
}

function momentsOf(s: DiffStats): Moments {
  return {
    elements: s.elements,
    sumSqA: s.sumSqA,
    sumSqB: s.sumSqB,
    sumAB: s.sumAB,
    sumSqDiff: s.sumSqDiff,
    maxAbsDiff: s.maxAbsDiff,
    nonFinite: s.nonFinite,
  };
}

const moduleRank = (m: ModuleClass) => DIFF_MODULE_ORDER.indexOf(m);

/** Sums per-tensor moments (in tensor order) into groups, layers, module classes and the whole pair. */
export function aggregate(tensors: readonly TensorDiff[]): Pick<DiffReport, 'sigma' | 'summary' | 'groups' | 'layers' | 'modules'> {
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

/** The rows `--plot` draws: relative distance per decoder layer, one series per module class. */
export function layerProfileRows(report: Pick<DiffReport, 'groups'>): LayerProfileRow[] {
  const rows: LayerProfileRow[] = [];
  for (const g of report.groups) {
    if (g.layer !== null && g.relDistance !== null) rows.push({ layer: g.layer, module: g.module, relDistance: g.relDistance });
  }
  return rows;
}

/** Draws the per-layer profile of a report to an .svg or .png file. */
export async function plotDiff(report: DiffReport, file: string): Promise<void> {
  const rows = layerProfileRows(report);
  if (rows.length === 0) {
    throw new WeightmixError('NothingToPlot', `nothing to plot: no decoder-layer float tensors with a defined relative distance in ${report.a}`);
  }
  await plotLayerProfile(rows, file, {
    title: `${path.basename(report.a)} → ${path.basename(report.b)}: per-layer ‖B−A‖/‖A‖ (σ = ${formatFigure(report.sigma)})`,
    yTitle: '‖B−A‖ / ‖A‖',
  });
}

// ---- text output --------------------------------------------------------------------------------

/** A distance or magnitude in 4 significant digits ('n/a' when undefined). */
export function formatFigure(x: number | null): string {
  if (x === null) return 'n/a';
  if (x === 0) return '0';
  const ax = Math.abs(x);
  return ax >= 1e-4 && ax < 1e5 ? x.toPrecision(4) : x.toExponential(3);
}

function formatCosine(x: number | null): string {
  return x === null ? 'n/a' : x.toFixed(6);
}

function table(head: string[], rows: string[][], leftColumns = 1): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

const TRAILING_ORDER: readonly ModuleClass[] = ['final_norm', 'head', 'other', 'attn', 'mlp', 'norm'];

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** The human-readable report: summary, per-layer rows by module class, module classes, optionally every tensor. */
export function formatDiffReport(report: DiffReport, options: { tensors?: boolean; plotFile?: string } = {}): string {
  const s = report.summary;
  const out: string[] = [
    `A: ${report.a}`,
    `B: ${report.b}`,
    `compared ${plural(s.tensors, 'float tensor')}, ${s.elements} elements (${(report.bytesRead / 1e6).toFixed(1)} MB read in ${report.seconds.toFixed(2)} s, ${plural(report.threads, 'thread')})`,
  ];
  if (report.skipped.length > 0) {
    const names = report.skipped.slice(0, 5).map((t) => `${t.name} (${t.dtypeA === t.dtypeB ? t.dtypeA : `${t.dtypeA}/${t.dtypeB}`})`);
    const more = report.skipped.length > 5 ? `, … (+${report.skipped.length - 5} more)` : '';
    out.push(`skipped ${plural(report.skipped.length, 'non-float tensor')} (only F32, F16 and BF16 are compared): ${names.join(', ')}${more}`);
  }
  out.push(
    `σ = ‖B−A‖/‖A‖ over all float tensors: ${formatFigure(report.sigma)}`,
    `cosine(A, B): ${formatCosine(s.cosine)}   max |B−A|: ${formatFigure(s.maxAbsDiff)}   non-finite pairs: ${s.nonFinite}`,
  );

  // Per-layer rows, one relative-distance column per module class present in the layers.
  const layerModules = DIFF_MODULE_ORDER.filter((m) => report.groups.some((g) => g.layer !== null && g.module === m));
  const byLayerModule = new Map(report.groups.map((g) => [`${g.layer}/${g.module}`, g]));
  const rowOf = (label: string, cells: (string | null)[], whole: DiffStats) => [
    label,
    ...cells.map((c) => c ?? ''),
    formatFigure(whole.relDistance),
    formatCosine(whole.cosine),
    formatFigure(whole.maxAbsDiff),
    String(whole.nonFinite),
  ];
  const nonLayer = report.groups.filter((g) => g.layer === null);
  const rows: string[][] = [
    ...nonLayer.filter((g) => g.module === 'embed').map((g) => rowOf(g.module, layerModules.map(() => null), g)),
    ...report.layers.map((l) =>
      rowOf(
        String(l.layer),
        layerModules.map((m) => {
          const g = byLayerModule.get(`${l.layer}/${m}`);
          return g ? formatFigure(g.relDistance) : '-';
        }),
        l,
      ),
    ),
    // After the layers in the order a forward pass meets them: final norm, head, then the rest.
    ...nonLayer
      .filter((g) => g.module !== 'embed')
      .sort((x, y) => TRAILING_ORDER.indexOf(x.module) - TRAILING_ORDER.indexOf(y.module))
      .map((g) => rowOf(g.module, layerModules.map(() => null), g)),
  ];
  if (rows.length > 0) {
    out.push('', `‖B−A‖/‖A‖ per layer by module class ('all': every tensor of the row; cosine, max and non-finite of the row):`);
    out.push(...table(['layer', ...layerModules, 'all', 'cosine', 'max |B−A|', 'non-finite'], rows));
  }

  out.push('', 'per module class (all layers):');
  out.push(
    ...table(
      ['module', 'tensors', 'elements', '‖B−A‖/‖A‖', 'cosine', 'max |B−A|', 'non-finite'],
      report.modules.map((m) => [m.module, String(m.tensors), String(m.elements), formatFigure(m.relDistance), formatCosine(m.cosine), formatFigure(m.maxAbsDiff), String(m.nonFinite)]),
    ),
  );

  if (options.tensors) {
    out.push('', 'per tensor:');
    out.push(
      ...table(
        ['tensor', 'dtypes', 'elements', '‖B−A‖/‖A‖', 'cosine', 'max |B−A|', 'non-finite'],
        report.tensors.map((t) => [
          t.name,
          t.dtypeA === t.dtypeB ? t.dtypeA : `${t.dtypeA}/${t.dtypeB}`,
          String(t.elements),
          formatFigure(t.relDistance),
          formatCosine(t.cosine),
          formatFigure(t.maxAbsDiff),
          String(t.nonFinite),
        ]),
        2,
      ),
    );
  }
  if (options.plotFile) out.push('', `chart: ${options.plotFile}`);
  return `${out.join('\n')}\n`;
}
