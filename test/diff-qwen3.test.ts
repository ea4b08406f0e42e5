import * as fs from 'node:fs';
import * as path from 'node:path';
import { diff, type DiffReport } from '../lib/analysis/diff';
import { layerProfileRows } from '../lib/analysis/diff-output';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { SEED, runCommand, root, setUpRoot } from './helpers/diff-pairs';

setUpRoot();

describe(`weightmix diff on a tiny Qwen3-shaped pair (seed ${SEED})`, () => {
  let pair: { instruct: string; thinking: string };
  let report: DiffReport;
  beforeAll(async () => {
    pair = await makeCheckpointPair({ dir: path.join(root, 'tiny'), shape: 'tiny', seed: SEED, delta: 0.027 });
    report = await diff({ a: pair.instruct, b: pair.thinking, threads: 2 });
  }, 120_000);

  test('a pair made at relative distance 0.027 per tensor measures σ ≈ 0.027 (fixture calibration, within 10%)', () => {
    expect(report.sigma!).toBeGreaterThan(0.027 * 0.9);
    expect(report.sigma!).toBeLessThan(0.027 * 1.1);
    expect(report.summary.cosine!).toBeGreaterThan(0.999);
    expect(report.skipped).toEqual([]);
  });

  test('identical copies: σ = 0 and cosine 1 in every row', async () => {
    const copy = path.join(root, 'tiny-copy');
    fs.cpSync(pair.instruct, copy, { recursive: true });
    const r = await diff({ a: pair.instruct, b: copy });
    expect(r.sigma).toBe(0);
    for (const row of [r.summary, ...r.tensors, ...r.groups, ...r.layers, ...r.modules]) {
      expect([row.relDistance, row.cosine, row.maxAbsDiff]).toEqual([0, 1, 0]);
    }
  });

  test('the table: summary with σ, one row per layer with a column per module class, module classes; --tensors lists tensors', async () => {
    const out = await runCommand([pair.instruct, pair.thinking, '--threads', '2']);
    const lines = out.split('\n');
    expect(lines[0]).toBe(`A: ${pair.instruct}`);
    expect(lines[1]).toBe(`B: ${pair.thinking}`);
    expect(out).toMatch(/^σ = ‖B−A‖\/‖A‖ over all float tensors: 0\.0\d{4}$/m);
    expect(out).toMatch(/^cosine\(A, B\): 0\.999\d{3} {3}max \|B−A\|: \S+ {3}non-finite pairs: 0$/m);
    const header = lines.findIndex((l) => l.startsWith('layer '));
    expect(lines[header]).toMatch(/^layer\s+attn\s+mlp\s+norm\s+all\s+cosine\s+max \|B−A\|\s+non-finite$/);
    const rows = lines.slice(header + 2, header + 2 + 7).map((l) => l.split(/\s+/)[0]);
    expect(rows).toEqual(['embed', '0', '1', '2', '3', 'final_norm', 'head']);
    expect(lines[header + 3]).toMatch(/^0\s+(\d\.\d+(e-\d+)?\s+){4}0\.99\d{4}\s+\S+\s+0$/);
    expect(out).toContain('per module class (all layers):');
    expect(out).not.toContain('model.layers.0.mlp.up_proj.weight');
    const withTensors = await runCommand([pair.instruct, pair.thinking, '--tensors']);
    expect(withTensors).toMatch(/^model\.layers\.0\.mlp\.up_proj\.weight\s+BF16\s+8192\s+0\.0\d{4}\s+0\.99\d{4}/m);
  });

  test('--json prints the whole report with stable keys', async () => {
    const json = JSON.parse(await runCommand([pair.instruct, pair.thinking, '--json']));
    expect(Object.keys(json)).toEqual([
      'format',
      'a',
      'b',
      'sigma',
      'paperSigma',
      'paperSigmaTensors',
      'summary',
      'groups',
      'layers',
      'modules',
      'tensors',
      'skipped',
      'bytesRead',
      'seconds',
      'threads',
    ]);
    expect(json.format).toBe('weightmix-diff/1');
    const stats = [
      ...['elements', 'nonFinite', 'sumSqA', 'sumSqB', 'sumAB', 'sumSqDiff', 'sumAbsA', 'sumAbsB', 'sumAbsDiff', 'maxAbsDiff'],
      ...['normA', 'normB', 'normDiff', 'relDistance', 'cosine', 'l1Ratio'],
    ];
    expect(Object.keys(json.summary)).toEqual(['tensors', ...stats]);
    expect(Object.keys(json.groups[0])).toEqual(['layer', 'module', 'tensors', ...stats]);
    expect(Object.keys(json.layers[0])).toEqual(['layer', 'tensors', ...stats]);
    expect(Object.keys(json.modules[0])).toEqual(['module', 'tensors', ...stats]);
    expect(Object.keys(json.tensors[0])).toEqual(['name', 'layer', 'module', 'dtypeA', 'dtypeB', 'shape', ...stats]);
    expect(json.sigma).toBe(report.sigma);
    expect(json.paperSigma).toBe(report.paperSigma);
    expect(json.tensors).toHaveLength(report.tensors.length);
    expect(json.groups.find((g: { layer: number | null; module: string }) => g.layer === null && g.module === 'embed')).toBeDefined();
  });

  test('--plot x.svg draws the per-layer profile: a layer axis and one line per module class', async () => {
    const file = path.join(root, 'profile.svg');
    const out = await runCommand([pair.instruct, pair.thinking, '--plot', file]);
    expect(out).toContain(`chart: ${file}`);
    const svg = fs.readFileSync(file, 'utf8');
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain("X-axis titled 'layer'");
    const texts = (role: string) =>
      [...svg.matchAll(new RegExp(`<g class="mark-text role-${role}"[^>]*>(.*?)</g>`, 'gs'))].flatMap((m) =>
        [...m[1].matchAll(/<text[^>]*>(.*?)<\/text>/g)].map((t) => t[1]),
      );
    expect(texts('axis-title')).toEqual(expect.arrayContaining(['layer', '‖B−A‖ / ‖A‖']));
    expect(texts('legend-label')).toEqual(['attn', 'mlp', 'norm']);
    const xAxis = svg.slice(svg.indexOf("X-axis titled 'layer'"));
    expect(texts('axis-label').length).toBeGreaterThan(0);
    expect([...xAxis.slice(0, xAxis.indexOf('role-axis-title')).matchAll(/<text[^>]*>(.*?)<\/text>/g)].map((m) => m[1])).toEqual(['0', '1', '2', '3']);
    expect(layerProfileRows(report)).toHaveLength(4 * 3);
  });

  test('--plot x.png writes a PNG', async () => {
    const file = path.join(root, 'profile.png');
    await runCommand([pair.instruct, pair.thinking, '--plot', file, '--json']);
    expect(fs.readFileSync(file).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  });
});
