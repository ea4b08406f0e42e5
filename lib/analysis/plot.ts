/**
 * Charts rendered in Node without a browser: vega-lite → vega → SVG text (renderer 'none'),
 * and PNG through resvg when the file name ends in .png.
 */
import * as fs from 'fs';
import type { TopLevelSpec } from 'vega-lite';
import { usageError, WeightmixError } from '../errors';
import { showValue } from '../options';
import { checkOptions } from '../api/validate-options';
import type { MetricsRow } from './metrics-table';
import { formatLambda, type StageReport } from './stages';
import { extremes } from './extremes';

/** A chart file's format, from its extension. */
export type ChartFormat = 'svg' | 'png';

/**
 * A vega-lite top-level specification (https://vega.github.io/vega-lite/docs/spec.html). Typed as
 * any object so that these declarations do not pull in vega-lite's types, which do not compile under
 * `exactOptionalPropertyTypes`; pass vega-lite's `TopLevelSpec` if you have it.
 */
export type ChartSpec = object;

/** A chart written to disk. */
export interface RenderedChart {
  /** The file written. */
  file: string;
  /** Its format. */
  format: ChartFormat;
  /** Its size. */
  bytes: number;
}

/** The chart format a file name asks for, or an error naming the accepted extensions (a bad `--plot` value: exit 2). */
export function chartFormat(file: string): ChartFormat {
  const lower = file.toLowerCase();
  if (lower.endsWith('.svg')) return 'svg';
  if (lower.endsWith('.png')) return 'png';
  throw new WeightmixError('UnsupportedChartFormat', `chart file '${file}' must end in .svg or .png`);
}

/** A chart file argument of the library's function `fn`: a path (else a usage error naming `fn`) ending in .svg or .png. */
function chartFileFormat(fn: string, file: unknown): ChartFormat {
  if (typeof file !== 'string' || file === '') throw usageError(`${fn}: file must be a .svg or .png path, got ${String(file)}`);
  return chartFormat(file);
}

/** Renders a vega-lite spec to SVG text. */
export async function renderSvg(spec: ChartSpec): Promise<string> {
  // Loaded on first use: vega costs most of a second, which no other subcommand should pay.
  const vega = await import('vega');
  const { compile } = await import('vega-lite');
  const view = new vega.View(vega.parse(compile(spec as TopLevelSpec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterizes SVG text to PNG bytes (2× scale, white background, system fonts). */
export async function svgToPng(svg: string): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

/**
 * Renders a vega-lite spec to `file`: SVG, or PNG when the name ends in .png.
 * @throws {@link WeightmixError} `Usage` (not a specification object, or one Vega-Lite cannot draw), `UnsupportedChartFormat`, `ChartWriteFailed`.
 */
export async function renderChart(spec: ChartSpec, file: string): Promise<RenderedChart> {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec))
    throw usageError(`renderChart: spec must be a Vega-Lite specification object, got ${String(spec)}`);
  const format = chartFileFormat('renderChart', file);
  let svg: string;
  try {
    svg = await renderSvg(spec);
  } catch (e) {
    // Vega-Lite's own words for a spec it cannot compile or draw (an unknown mark, no data), first line only.
    throw usageError(`renderChart: cannot draw this Vega-Lite specification: ${String((e as Error)?.message ?? e).split('\n')[0]}`);
  }
  const data = format === 'png' ? await svgToPng(svg) : Buffer.from(svg, 'utf8');
  try {
    await fs.promises.writeFile(file, data);
  } catch (e) {
    throw new WeightmixError('ChartWriteFailed', `cannot write chart '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return { file, format, bytes: data.length };
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

export const STAGE_COLORS: Readonly<Record<1 | 2 | 3, string>> = { 1: '#9ecae1', 2: '#a1d99b', 3: '#fdae6b' };
export const STAGE_NAMES: Readonly<Record<1 | 2 | 3, string>> = {
  1: 'Stage 1: Instruct-dominated',
  2: 'Stage 2: thinking emerges',
  3: 'Stage 3: over-thinking',
};

/** The λ intervals the stages cover, as the paper draws them ([0, 0.4), [0.4, 0.6], (0.6, 1]). */
export function stageBands(report: StageReport): { stage: 1 | 2 | 3; from: number; to: number }[] {
  const all = [...report.stage1, ...report.stage2, ...report.stage3];
  const { min: lo, max: hi } = extremes(all);
  const bands: { stage: 1 | 2 | 3; from: number; to: number }[] = [];
  const s2from = report.stage2.length ? report.stage2[0] : hi;
  const s3from = report.stage3.length ? report.stage2[report.stage2.length - 1] : hi;
  if (report.stage1.length) bands.push({ stage: 1, from: lo, to: report.stage2.length ? s2from : hi });
  if (report.stage2.length) bands.push({ stage: 2, from: s2from, to: report.stage3.length ? s3from : hi });
  if (report.stage3.length) bands.push({ stage: 3, from: s3from, to: hi });
  return bands;
}

/** The stage chart: Think #R, Token #N and Mean@k against λ, per benchmark, over the stage bands. */
export function stagesChartSpec(rows: readonly MetricsRow[], report: StageReport, options: { title?: string } = {}): ChartSpec {
  if (rows.length === 0) throw new WeightmixError('MalformedMetrics', 'nothing to plot: no metrics rows');
  const values = [...rows]
    .sort((a, b) => a.lambda - b.lambda)
    .map((r) => ({ benchmark: r.benchmark, lambda: r.lambda, think: r.thinkRatio, tokens: r.tokens, mean: r.mean }));
  const bands = stageBands(report).map((b) => ({
    ...b,
    label: `Stage ${b.stage}`,
    name: STAGE_NAMES[b.stage],
    color: STAGE_COLORS[b.stage],
    mid: (b.from + b.to) / 2,
  }));
  const lambdas = values.map((v) => v.lambda);
  const { min: first, max: last } = extremes(lambdas);
  const domain = [first, last];
  const logTokens = rows.every((r) => r.tokens > 0);
  const x = { field: 'lambda', type: 'quantitative' as const, title: 'λ (0 = Instruct, 1 = Thinking)', scale: { domain, nice: false, zero: false } };
  const panel = (id: string, field: string, title: string, yScale: Record<string, unknown>, labels: boolean) => ({
    height: 150,
    width: 460,
    layer: [
      {
        name: `${id}_bands`,
        data: { values: bands },
        mark: { type: 'rect' as const, opacity: 0.35 },
        encoding: {
          x: { ...x, field: 'from' },
          x2: { field: 'to' },
          fill: { field: 'color', type: 'nominal' as const, scale: null },
          tooltip: { field: 'name', type: 'nominal' as const },
        },
      },
      ...(labels
        ? [
            {
              name: `${id}_stage_labels`,
              data: { values: bands },
              mark: { type: 'text' as const, baseline: 'bottom' as const, dy: -3, fontWeight: 'bold' as const, fontSize: 11 },
              encoding: { x: { ...x, field: 'mid' }, y: { value: 0 }, text: { field: 'label', type: 'nominal' as const } },
            },
          ]
        : []),
      ...(report.recommended !== null
        ? [
            {
              name: `${id}_recommended`,
              data: { values: [{ lambda: report.recommended }] },
              mark: { type: 'rule' as const, strokeDash: [4, 3], color: '#333' },
              encoding: { x: { ...x } },
            },
          ]
        : []),
      {
        name: `${id}_series`,
        data: { values },
        mark: { type: 'line' as const, point: true },
        encoding: {
          x,
          y: { field, type: 'quantitative' as const, title, scale: yScale },
          color: { field: 'benchmark', type: 'nominal' as const, title: 'benchmark', sort: null },
        },
      },
    ],
  });
  const sub = [
    'Stage 1 Instruct-dominated · Stage 2 thinking emerges · Stage 3 over-thinking',
    report.recommended === null ? 'thinking never emerges in this sweep' : `dashed: recommended λ = ${formatLambda(report.recommended)}`,
  ];
  return {
    $schema: SCHEMA,
    title: { text: options.title ?? 'Model interpolation: the three stages', subtitle: sub, offset: 18 },
    background: 'white',
    vconcat: [
      panel('think', 'think', 'Think #R (%)', { domain: [0, 100] }, true),
      panel('tokens', 'tokens', 'Token #N', logTokens ? { type: 'log' } : { zero: true }, false),
      panel('mean', 'mean', 'Mean@k (%)', { zero: false }, false),
    ],
    resolve: { scale: { color: 'shared' } },
  } as TopLevelSpec;
}

/**
 * Draws the stage chart for a metrics table and its stage report to an .svg or .png file.
 * @throws {@link WeightmixError} `UnsupportedChartFormat`, `ChartWriteFailed`, `MalformedMetrics`.
 */
export async function plotStages(rows: readonly MetricsRow[], report: StageReport, file: string, options: { title?: string } = {}): Promise<RenderedChart> {
  if (!Array.isArray(rows)) throw usageError(`plotStages: rows must be an array of metrics rows (readMetricsTable), got ${String(rows)}`);
  if (typeof report !== 'object' || report === null) throw usageError(`plotStages: report must be a stage report (stages), got ${String(report)}`);
  checkOptions<{ title?: string }>('plotStages', options, { title: 'optional' });
  if (options.title !== undefined && typeof options.title !== 'string')
    throw usageError(`plotStages: option 'title' must be a string, got ${showValue(options.title)}`);
  chartFileFormat('plotStages', file);
  return renderChart(stagesChartSpec(rows, report, options), file);
}

/** One point of a per-layer profile chart. */
export interface LayerProfileRow {
  /** Decoder layer (x). */
  layer: number;
  /** Module class (one line each). */
  module: string;
  /** ‖B−A‖/‖A‖ (y). */
  relDistance: number;
}

/** Per-layer relative distance between two checkpoints, one line per module class. */
export function layerProfileSpec(rows: readonly LayerProfileRow[], options: { title?: string; yTitle?: string } = {}): ChartSpec {
  if (!Array.isArray(rows) || rows.length === 0) throw new WeightmixError('InvalidArgument', 'layer profile needs at least one row');
  rows.forEach((r, i) => {
    if (!Number.isSafeInteger(r.layer) || r.layer < 0)
      throw new WeightmixError('InvalidArgument', `layer profile row ${i}: layer must be a non-negative integer, got ${JSON.stringify(r.layer)}`);
    if (typeof r.module !== 'string' || r.module === '')
      throw new WeightmixError('InvalidArgument', `layer profile row ${i}: module must be a non-empty string, got ${JSON.stringify(r.module)}`);
    if (!Number.isFinite(r.relDistance) || r.relDistance < 0)
      throw new WeightmixError(
        'InvalidArgument',
        `layer profile row ${i}: relDistance must be a finite non-negative number, got ${JSON.stringify(r.relDistance)}`,
      );
  });
  const values = [...rows].sort((a, b) => a.layer - b.layer).map((r) => ({ layer: r.layer, module: r.module, relDistance: r.relDistance }));
  return {
    $schema: SCHEMA,
    title: options.title ?? 'Per-layer difference by module class',
    background: 'white',
    width: 520,
    height: 240,
    data: { values },
    layer: [
      {
        name: 'profile_series',
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'layer', type: 'quantitative', title: 'layer', axis: { format: 'd', tickMinStep: 1 } },
          y: { field: 'relDistance', type: 'quantitative', title: options.yTitle ?? 'relative distance' },
          color: { field: 'module', type: 'nominal', title: 'module class', sort: null },
        },
      },
    ],
  } as TopLevelSpec;
}

/**
 * Draws the per-layer diff profile (used by `diff --plot`) to an .svg or .png file.
 * @throws {@link WeightmixError} `UnsupportedChartFormat`, `ChartWriteFailed`, `InvalidArgument` (a malformed row).
 */
export async function plotLayerProfile(
  rows: readonly LayerProfileRow[],
  file: string,
  options: { title?: string; yTitle?: string } = {},
): Promise<RenderedChart> {
  if (!Array.isArray(rows)) throw usageError(`plotLayerProfile: rows must be an array of layer profile rows (diff), got ${String(rows)}`);
  chartFileFormat('plotLayerProfile', file);
  return renderChart(layerProfileSpec(rows, options), file);
}
