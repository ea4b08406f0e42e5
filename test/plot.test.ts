import * as fs from 'fs';
import * as path from 'path';
import type { TopLevelSpec } from 'vega-lite';
import { WeightmixError } from '../lib/errors';
import { readMetricsTable, type MetricsRow } from '../lib/analysis/metrics-table';
import { stages } from '../lib/analysis/stages';
import { layerProfileSpec, plotLayerProfile, plotStages, renderChart, renderSvg, stageBands, stagesChartSpec, STAGE_COLORS } from '../lib/analysis/plot';
import { dir as tmp, useTempDir } from './helpers/temp-dir';

const PAPER_FIXTURE = path.join(__dirname, 'fixtures/analysis/qwen3-4b-interpolation.csv');
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let paper: MetricsRow[];
let paperSvg: string;

useTempDir('weightmix-plot-');

beforeAll(async () => {
  paper = await readMetricsTable(PAPER_FIXTURE);
  paperSvg = await renderSvg(stagesChartSpec(paper, stages(paper)));
});

const unescape = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');

/** Texts of the `<text>` elements inside groups of a vega role class (axis-title, legend-label, …). */
function roleTexts(svg: string, role: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<g class="mark-text role-${role}"[^>]*>(.*?)</g>`, 'gs');
  for (const m of svg.matchAll(re)) for (const t of m[1].matchAll(/<text[^>]*>(.*?)<\/text>/gs)) out.push(unescape(t[1]));
  return out;
}

/** Leaf mark groups (they hold no nested <g>) whose mark name matches. */
function markGroups(svg: string, type: string, name: RegExp): string[] {
  const re = new RegExp(`<g class="mark-${type} role-mark ([A-Za-z0-9_]+)"[^>]*>(.*?)</g>`, 'gs');
  return [...svg.matchAll(re)].filter((m) => name.test(m[1])).map((m) => m[2]);
}

const count = (s: string, re: RegExp) => [...s.matchAll(re)].length;
/** Widths of rect paths (`d="Mx,yhWv…"`). */
const rectWidths = (group: string) => [...group.matchAll(/ d="M[-\d.]+,[-\d.]+h([\d.]+)v/g)].map((m) => Number(m[1]));

describe('stage chart (Think #R, Token #N, Mean@k against λ)', () => {
  test('has the three panels’ axis titles and the λ axis on each', () => {
    const titles = roleTexts(paperSvg, 'axis-title');
    expect(titles.filter((t) => t === 'λ (0 = Instruct, 1 = Thinking)')).toHaveLength(3);
    expect(titles).toEqual(expect.arrayContaining(['Think #R (%)', 'Token #N', 'Mean@k (%)']));
  });

  test('one legend entry and one line per benchmark in each panel', () => {
    expect(roleTexts(paperSvg, 'legend-label')).toEqual(['aime25', 'ifeval', 'gpqa_diamond']);
    for (const panel of ['think', 'tokens', 'mean']) {
      expect(markGroups(paperSvg, 'line', new RegExp(`^${panel}_series_marks$`))).toHaveLength(3);
    }
    // 27 rows, one point each, in each of the 3 panels
    const points = markGroups(paperSvg, 'symbol', /layer/).reduce((n, g) => n + count(g, /<path /g), 0);
    expect(points).toBe(81);
  });

  test('three shaded bands per panel whose widths are the stage intervals 0.4 : 0.2 : 0.4', () => {
    const bands = markGroups(paperSvg, 'rect', /_bands_marks$/);
    expect(bands).toHaveLength(3);
    for (const g of bands) {
      expect(count(g, /<path /g)).toBe(3);
      const [w1, w2, w3] = rectWidths(g);
      expect(w1 / w2).toBeCloseTo(2, 6);
      expect(w3 / w2).toBeCloseTo(2, 6);
      for (const color of Object.values(STAGE_COLORS)) expect(g).toContain(`fill="${color}"`);
    }
  });

  test('labels the stages once and marks the recommended λ in every panel', () => {
    const labels = markGroups(paperSvg, 'text', /stage_labels_marks$/).flatMap((g) => [...g.matchAll(/<text[^>]*>(.*?)<\/text>/g)].map((m) => m[1]));
    expect(labels).toEqual(['Stage 1', 'Stage 2', 'Stage 3']);
    expect(markGroups(paperSvg, 'rule', /_recommended_marks$/)).toHaveLength(3);
    expect(paperSvg).toContain('dashed: recommended λ = 0.6');
  });

  test('Token #N uses a log scale when every count is positive', () => {
    const spec = stagesChartSpec(paper, stages(paper)) as unknown as { vconcat: { layer: { encoding: { y?: { scale?: { type?: string } } } }[] }[] };
    const series = spec.vconcat[1].layer[spec.vconcat[1].layer.length - 1];
    expect(series.encoding.y?.scale?.type).toBe('log');
  });

  test('a sweep without Stage 3 draws two bands; one where thinking never emerges draws one and no recommendation', async () => {
    const early = paper.filter((r) => r.lambda <= 0.55);
    const svg = await renderSvg(stagesChartSpec(early, stages(early)));
    for (const g of markGroups(svg, 'rect', /_bands_marks$/)) expect(count(g, /<path /g)).toBe(2);
    expect(markGroups(svg, 'text', /stage_labels_marks$/)[0]).not.toContain('Stage 3');

    const flat = paper.filter((r) => r.lambda <= 0.2);
    const report = stages(flat);
    expect(stageBands(report)).toEqual([{ stage: 1, from: 0, to: 0.2 }]);
    const svg1 = await renderSvg(stagesChartSpec(flat, report));
    for (const g of markGroups(svg1, 'rect', /_bands_marks$/)) expect(count(g, /<path /g)).toBe(1);
    expect(markGroups(svg1, 'rule', /_recommended_marks$/)).toHaveLength(0);
    expect(svg1).toContain('thinking never emerges in this sweep');
  });

  test('plotStages writes SVG text, or PNG bytes when the name ends in .png', async () => {
    const report = stages(paper);
    const svgFile = path.join(tmp, 'stages.svg');
    const pngFile = path.join(tmp, 'stages.PNG');
    expect(await plotStages(paper, report, svgFile)).toMatchObject({ format: 'svg', file: svgFile });
    expect(fs.readFileSync(svgFile, 'utf8')).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    const png = await plotStages(paper, report, pngFile);
    const bytes = fs.readFileSync(pngFile);
    expect(png).toMatchObject({ format: 'png', bytes: bytes.length });
    expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    expect(bytes.readUInt32BE(16)).toBeGreaterThan(500); // IHDR width, at 2× scale
  });

  test('rejects other extensions and unwritable paths with one-line errors', async () => {
    const report = stages(paper);
    await expect(plotStages(paper, report, path.join(tmp, 'stages.pdf'))).rejects.toThrow(/^chart file '.*stages\.pdf' must end in \.svg or \.png$/);
    expect(fs.existsSync(path.join(tmp, 'stages.pdf'))).toBe(false);
    await expect(plotStages(paper, report, path.join(tmp, 'no/such/dir/s.svg'))).rejects.toMatchObject({
      code: 'ChartWriteFailed',
      message: expect.stringMatching(/ENOENT$/),
    });
  });
});

describe('layer profile chart', () => {
  const modules = ['attention', 'mlp', 'norm'];
  const rows = [0, 1, 2, 3].flatMap((layer) => modules.map((module, i) => ({ layer, module, relDistance: 0.01 * (layer + 1) * (i + 1) })));

  test('one line per module class over the layers, with legend and axis titles', async () => {
    const svg = await renderSvg(layerProfileSpec(rows));
    expect(roleTexts(svg, 'legend-label')).toEqual(modules);
    expect(roleTexts(svg, 'axis-title')).toEqual(expect.arrayContaining(['layer', 'relative distance']));
    expect(markGroups(svg, 'line', /^profile_series_marks$/)).toHaveLength(3);
    expect(markGroups(svg, 'symbol', /layer/).reduce((n, g) => n + count(g, /<path /g), 0)).toBe(12);
    expect(svg).toContain('Per-layer difference by module class');
    // the x axis ticks are whole layers only
    const xAxis = svg.slice(svg.indexOf("X-axis titled 'layer'"));
    const xLabels = roleTexts(xAxis.slice(0, xAxis.indexOf('role-axis-title')), 'axis-label');
    expect(xLabels).toEqual(['0', '1', '2', '3']);
  });

  test('plotLayerProfile writes PNG and SVG; titles can be changed', async () => {
    const png = path.join(tmp, 'profile.png');
    await plotLayerProfile(rows, png);
    expect(fs.readFileSync(png).subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    const svgFile = path.join(tmp, 'profile.svg');
    await plotLayerProfile(rows, svgFile, { title: 'Instruct vs Thinking', yTitle: '‖ΔW‖ / ‖W‖' });
    const svg = fs.readFileSync(svgFile, 'utf8');
    expect(svg).toContain('Instruct vs Thinking');
    expect(roleTexts(svg, 'axis-title')).toContain('‖ΔW‖ / ‖W‖');
  });

  test('rejects empty or invalid rows', () => {
    expect(() => layerProfileSpec([])).toThrow(WeightmixError);
    expect(() => layerProfileSpec([{ layer: 1.5, module: 'mlp', relDistance: 0.1 }])).toThrow(/row 0: layer must be a non-negative integer/);
    expect(() => layerProfileSpec([{ layer: 1, module: '', relDistance: 0.1 }])).toThrow(/row 0: module must be a non-empty string/);
    expect(() => layerProfileSpec([{ layer: 1, module: 'mlp', relDistance: NaN }])).toThrow(/row 0: relDistance must be a finite non-negative number/);
  });
});

describe('renderChart (any vega-lite spec)', () => {
  test('renders a bar per datum to SVG and to PNG', async () => {
    const spec: TopLevelSpec = {
      data: {
        values: [
          { a: 'x', b: 1 },
          { a: 'y', b: 2 },
          { a: 'z', b: 3 },
        ],
      },
      mark: 'bar',
      name: 'bars',
      encoding: { x: { field: 'a', type: 'nominal' }, y: { field: 'b', type: 'quantitative' } },
    };
    const svgFile = path.join(tmp, 'bars.svg');
    await renderChart(spec, svgFile);
    const svg = fs.readFileSync(svgFile, 'utf8');
    const bars = markGroups(svg, 'rect', /^bars_marks$/);
    expect(bars).toHaveLength(1);
    expect(count(bars[0], /<path /g)).toBe(3);
    const png = await renderChart(spec, path.join(tmp, 'bars.png'));
    expect(fs.readFileSync(png.file).subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
  });
});
