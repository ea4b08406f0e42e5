/** How a diff report is shown: the text report, and the per-layer chart of `--plot`. */
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import type { ModuleClass } from '../model/tensor-names';
import { DIFF_MODULE_ORDER, type DiffReport, type DiffStats } from './diff';
import { plotLayerProfile, type LayerProfileRow } from './plot';
import { textTable } from './text-table';
import { plural } from '../plural';

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

const TRAILING_ORDER: readonly ModuleClass[] = ['final_norm', 'head', 'other', 'attn', 'mlp', 'norm'];

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
    `paper σ (Table 1) = mean Σ|B−A|/(Σ|A|+Σ|B|) over ${plural(report.paperSigmaTensors, 'decoder-layer tensor')} (model.layers.N.*): ${formatFigure(report.paperSigma)}`,
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
    ...nonLayer
      .filter((g) => g.module === 'embed')
      .map((g) =>
        rowOf(
          g.module,
          layerModules.map(() => null),
          g,
        ),
      ),
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
      .map((g) =>
        rowOf(
          g.module,
          layerModules.map(() => null),
          g,
        ),
      ),
  ];
  if (rows.length > 0) {
    out.push('', `‖B−A‖/‖A‖ per layer by module class ('all': every tensor of the row; cosine, max and non-finite of the row):`);
    out.push(...textTable(['layer', ...layerModules, 'all', 'cosine', 'max |B−A|', 'non-finite'], rows));
  }

  out.push('', 'per module class (all layers):');
  out.push(
    ...textTable(
      ['module', 'tensors', 'elements', '‖B−A‖/‖A‖', 'cosine', 'max |B−A|', 'non-finite'],
      report.modules.map((m) => [
        m.module,
        String(m.tensors),
        String(m.elements),
        formatFigure(m.relDistance),
        formatCosine(m.cosine),
        formatFigure(m.maxAbsDiff),
        String(m.nonFinite),
      ]),
    ),
  );

  if (options.tensors) {
    out.push('', 'per tensor:');
    out.push(
      ...textTable(
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
