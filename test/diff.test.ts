import * as path from 'node:path';
import { diff, PAPER_SIGMA_TENSOR, type DiffReport, type TensorDiff } from '../lib/analysis/diff';
import { formatDiffReport, formatFigure } from '../lib/analysis/diff-output';
import { WeightmixError } from '../lib/errors';
import { type SafetensorsDtype } from '../lib/format/safetensors';
import { classifyTensor } from '../lib/model/tensor-names';
import { decodeBits, sumReferenceMoments, type ReferenceMoments } from './reference/moments';
import {
  SEED,
  DTYPE_PAIRS,
  Rng,
  count,
  writeModel,
  expectSum,
  expectMatchesReference,
  runCommand,
  runCli,
  root,
  zoo,
  zooDirs,
  zooReport,
  zooRef,
  progress,
  setUpZoo,
} from './helpers/diff-pairs';

setUpZoo();

describe('the reference decoder', () => {
  test('agrees with the platform f32 on every bf16 pattern and 100,000 random f32 patterns; f16 landmarks', () => {
    const dv = new DataView(new ArrayBuffer(4));
    const same = (x: number, y: number) => Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y));
    let mismatches = 0;
    for (let bits = 0; bits < 1 << 16; bits++) {
      dv.setUint32(0, (bits << 16) >>> 0);
      if (!same(decodeBits(bits, 'BF16'), dv.getFloat32(0))) mismatches++;
    }
    const rng = new Rng('reference decoder');
    for (let k = 0; k < 100_000; k++) {
      const bits = (rng.uniform() * 2 ** 32) >>> 0;
      dv.setUint32(0, bits);
      if (!same(decodeBits(bits, 'F32'), dv.getFloat32(0))) mismatches++;
    }
    expect(mismatches).toBe(0);
    const f16 = [0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00].map((b) => decodeBits(b, 'F16'));
    expect(f16).toEqual([1, -2, 65504, 2 ** -14, 2 ** -24, 1023 * 2 ** -24, -0, Infinity, -Infinity]);
    expect(decodeBits(0x7e00, 'F16')).toBeNaN();
  });
});

describe(`weightmix diff: figures against the f64 reference (seed ${SEED})`, () => {
  test('every per-tensor figure matches the reference: sums within 1e-12 of their scale, max |b−a| and non-finite count exact', () => {
    expect(zooReport.tensors.map((t) => t.name).sort()).toEqual(zoo.map((t) => t.name).sort());
    for (const t of zooReport.tensors) expectMatchesReference(t, zooRef.get(t.name)!, t.name);
    // the big tensor really spans several engine blocks
    expect(zooReport.tensors.find((t) => t.name === 'model.layers.2.mlp.up_proj.weight')!.elements).toBeGreaterThan((8 << 20) / 4);
  });

  test('every dtype pair is covered, mixed ones included; dtypes and shapes are reported', () => {
    const pairs = new Set(zooReport.tensors.map((t) => `${t.dtypeA}/${t.dtypeB}`));
    for (const [x, y] of DTYPE_PAIRS) expect(pairs).toContain(`${x}/${y}`);
    const q = zooReport.tensors.find((t) => t.name === 'model.layers.1.self_attn.k_proj.weight')!;
    const src = zoo.find((t) => t.name === q.name)!;
    expect([q.dtypeA, q.dtypeB, q.shape]).toEqual([src.dtypeA, src.dtypeB, [8, 16]]);
  });

  test('NaN and ±Inf on either side are counted as non-finite and left out; ±0 are zeros (hand-checked values)', () => {
    for (const name of ['model.layers.0.self_attn.hand.weight', 'model.layers.0.mlp.hand.weight']) {
      const t = zooReport.tensors.find((x) => x.name === name)!;
      const sums = { aa: t.sumSqA, bb: t.sumSqB, ab: t.sumAB, dd: t.sumSqDiff, absA: t.sumAbsA, absB: t.sumAbsB, absD: t.sumAbsDiff };
      expect({ name, elements: t.elements, nonFinite: t.nonFinite, ...sums, max: t.maxAbsDiff }).toEqual({
        name,
        elements: 8,
        nonFinite: 4,
        aa: 13,
        bb: 20,
        ab: 8,
        dd: 17,
        absA: 5,
        absB: 6,
        absD: 5,
        max: 4,
      });
      expect(t.relDistance).toBe(Math.sqrt(17) / Math.sqrt(13));
      expect(t.l1Ratio).toBe(5 / 11);
      expect(t.cosine).toBeCloseTo(8 / Math.sqrt(260), 15);
    }
    const allNaN = zooReport.tensors.find((t) => t.name === 'model.layers.2.self_attn.all_nan.weight')!;
    expect(allNaN).toMatchObject({ elements: 3, nonFinite: 3, sumSqA: 0, sumSqB: 0, maxAbsDiff: 0, relDistance: null, cosine: null });
  });

  test('subnormals count at their value (no flush to zero), in every dtype pair', () => {
    const subs = zooReport.tensors.filter((t) => t.name.includes('.subnormal_'));
    expect(subs).toHaveLength(9);
    for (const t of subs) {
      expect(t.sumSqA).toBeGreaterThan(0);
      expect(t.sumSqB).toBeGreaterThan(0);
      expect(t.sumSqA).toBeLessThan(1e-6); // 64 elements below f16's largest subnormal, 6.1e-5
      expect(t.relDistance).not.toBeNull();
    }
  });

  test('the largest finite values do not overflow: max |b−a| of f32 max against −max is 2·3.4028235e38', () => {
    const t = zooReport.tensors.find((x) => x.name === 'extreme_F32_F32.weight')!;
    expect(t.maxAbsDiff).toBe(2 * 3.4028234663852886e38);
    expect(t.nonFinite).toBe(0);
    expect(Number.isFinite(t.sumSqDiff)).toBe(true);
  });

  test('edge cases: ‖A‖ = 0 gives no relative distance; two zero tensors are at distance 0, cosine 1; an empty tensor has neither', () => {
    const byName = (n: string) => zooReport.tensors.find((t) => t.name === n)!;
    expect(byName('model.layers.2.self_attn.zero_a.weight')).toMatchObject({
      sumSqA: 0,
      sumSqB: 0.3125,
      relDistance: null,
      cosine: null,
      maxAbsDiff: 0.5,
      l1Ratio: 1,
    });
    expect(byName('model.layers.2.self_attn.zero_both.weight')).toMatchObject({ elements: 4, relDistance: 0, cosine: 1, maxAbsDiff: 0, l1Ratio: 0 });
    expect(byName('model.layers.2.self_attn.o_proj.bias')).toMatchObject({ elements: 0, nonFinite: 0, relDistance: null, cosine: null, l1Ratio: null });
  });

  test('non-float tensors are skipped and listed, in the report and in the table', () => {
    expect(zooReport.skipped).toEqual([
      { name: 'model.layers.0.self_attn.rotary.positions', dtypeA: 'I64', dtypeB: 'I64', reason: 'not a F32, F16 or BF16 tensor' },
      { name: 'token_type_flags', dtypeA: 'U8', dtypeB: 'U8', reason: 'not a F32, F16 or BF16 tensor' },
    ]);
    expect(zooReport.tensors.some((t) => t.name === 'token_type_flags')).toBe(false);
    expect(formatDiffReport(zooReport)).toContain(
      'skipped 2 non-float tensors (only F32, F16 and BF16 are compared): model.layers.0.self_attn.rotary.positions (I64), token_type_flags (U8)',
    );
  });

  test('per layer × module class, per layer, per module class and σ are the sums of the per-tensor reference', () => {
    const groupKey = (layer: number | null, module: string) => `${layer ?? '-'}/${module}`;
    const expectGroups = new Map<string, ReferenceMoments[]>();
    const expectLayers = new Map<number, ReferenceMoments[]>();
    const expectModules = new Map<string, ReferenceMoments[]>();
    const push = <K>(m: Map<K, ReferenceMoments[]>, k: K, v: ReferenceMoments) => m.set(k, [...(m.get(k) ?? []), v]);
    for (const t of zoo) {
      const { layer, module } = classifyTensor(t.name);
      const ref = zooRef.get(t.name)!;
      push(expectGroups, groupKey(layer, module), ref);
      if (layer !== null) push(expectLayers, layer, ref);
      push(expectModules, module, ref);
    }
    expect(zooReport.groups.map((g) => groupKey(g.layer, g.module)).sort()).toEqual([...expectGroups.keys()].sort());
    for (const g of zooReport.groups) {
      expect(g.tensors).toBe(expectGroups.get(groupKey(g.layer, g.module))!.length);
      expectMatchesReference(g, sumReferenceMoments(expectGroups.get(groupKey(g.layer, g.module))!), `group ${groupKey(g.layer, g.module)}`);
    }
    expect(zooReport.layers.map((l) => l.layer)).toEqual([0, 1, 2]);
    for (const l of zooReport.layers) expectMatchesReference(l, sumReferenceMoments(expectLayers.get(l.layer)!), `layer ${l.layer}`);
    expect(zooReport.modules.map((m) => m.module)).toEqual(['attn', 'mlp', 'norm', 'embed', 'head', 'final_norm', 'other']);
    for (const m of zooReport.modules) expectMatchesReference(m, sumReferenceMoments(expectModules.get(m.module)!), `module ${m.module}`);
    const all = sumReferenceMoments([...zooRef.values()]);
    expectMatchesReference(zooReport.summary, all, 'summary');
    expect(zooReport.summary.tensors).toBe(zoo.length);
    expect(zooReport.sigma).toBe(zooReport.summary.relDistance);
    expectSum(zooReport.sigma!, Math.sqrt(all.sumSqDiff) / Math.sqrt(all.sumSqA), Math.sqrt(all.sumSqDiff / all.sumSqA), 'σ');
  });

  test("the paper's σ is the mean of Σ|b−a|/(Σ|a|+Σ|b|) over the tensors sigma_v2.py picks (…model.layers.N.…), those with a ratio", () => {
    // The script's selection: re.search(r"model\.layers\.(\d+)\.", name); of those, a tensor zero in both, all-NaN or empty has no ratio.
    const picked = zoo.filter((t) => /model\.layers\.\d+\./.test(t.name));
    const ratios: number[] = [];
    for (const t of picked) {
      const ref = zooRef.get(t.name)!;
      if (ref.elements > ref.nonFinite && ref.sumAbsA + ref.sumAbsB > 0) ratios.push(ref.sumAbsDiff / (ref.sumAbsA + ref.sumAbsB));
    }
    expect(ratios.length).toBeLessThan(picked.length);
    expect(picked.length).toBeLessThan(zoo.length);
    expect(zooReport.paperSigmaTensors).toBe(ratios.length);
    const mean = ratios.reduce((s, x) => s + x, 0) / ratios.length;
    expectSum(zooReport.paperSigma!, mean, mean, 'paper σ');
    expect(formatDiffReport(zooReport)).toContain(
      `paper σ (Table 1) = mean Σ|B−A|/(Σ|A|+Σ|B|) over ${ratios.length} decoder-layer tensors (model.layers.N.*): ${formatFigure(zooReport.paperSigma)}`,
    );
  });

  test("the paper's σ picks tensors by the script's own test: any name containing model.layers.N., nothing else", () => {
    const picks = (name: string) => PAPER_SIGMA_TENSOR.test(name);
    expect(
      [
        'model.layers.0.mlp.up_proj.weight',
        'model.language_model.layers.3.self_attn.q_proj.weight',
        'thinker.model.layers.2.mlp.gate.weight',
        'model.layers.01.x',
      ].map(picks),
    ).toEqual([true, true, true, true]);
    expect(
      ['model.embed_tokens.weight', 'lm_head.weight', 'transformer.h.3.attn.c_attn.weight', 'model.layers.x.weight', 'model.norm.weight'].map(picks),
    ).toEqual([false, false, false, false, false]);
  });

  test('groups come in layer order, module order within a layer, then the non-layer classes', () => {
    const keys = zooReport.groups.map((g) => `${g.layer ?? '-'}/${g.module}`);
    expect(keys).toEqual([
      '0/attn',
      '0/mlp',
      '0/norm',
      '1/attn',
      '1/mlp',
      '1/norm',
      '1/other',
      '2/attn',
      '2/mlp',
      '2/norm',
      '-/embed',
      '-/head',
      '-/final_norm',
      '-/other',
    ]);
  });

  test('the figures do not depend on the thread count (bit for bit)', async () => {
    const one = await diff({ a: zooDirs.a, b: zooDirs.b, threads: 1 });
    const strip = (r: DiffReport) => ({ ...r, seconds: 0, threads: 0 });
    expect(strip(one)).toEqual(strip(zooReport));
  });

  test('progress reports bytes read, ending at the total of both models', () => {
    expect(progress.length).toBeGreaterThan(0);
    const last = progress[progress.length - 1];
    expect(last).toMatchObject({ bytesDone: zooReport.bytesRead, bytesTotal: zooReport.bytesRead });
    const expected = zoo.reduce((n, t) => n + t.a.length + t.b.length, 0);
    expect(zooReport.bytesRead).toBe(expected);
  });

  test('identical models: σ = 0, every distance 0, every cosine exactly 1, max 0', async () => {
    const r = await diff({ a: zooDirs.a, b: zooDirs.a, threads: 2 });
    expect(r.sigma).toBe(0);
    expect(r.summary).toMatchObject({ relDistance: 0, cosine: 1, maxAbsDiff: 0, sumSqDiff: 0 });
    for (const t of r.tensors) {
      if (t.elements === t.nonFinite) continue; // empty and all-NaN tensors have no figures
      expect({ name: t.name, relDistance: t.relDistance, cosine: t.cosine, max: t.maxAbsDiff }).toEqual({ name: t.name, relDistance: 0, cosine: 1, max: 0 });
    }
    for (const g of [...r.groups, ...r.layers, ...r.modules]) expect([g.relDistance, g.cosine]).toEqual([0, 1]);
  });
});

describe('weightmix diff: errors', () => {
  async function writeSimple(dir: string, tensors: { name: string; dtype: SafetensorsDtype; shape: number[] }[]): Promise<string> {
    return writeModel(dir, [
      {
        file: 'model.safetensors',
        tensors: tensors.map((t) => ({ ...t, data: Buffer.alloc(count(t.shape) * (t.dtype === 'F32' || t.dtype === 'I32' ? 4 : t.dtype === 'I64' ? 8 : 2)) })),
      },
    ]);
  }

  test('models with different tensors: one error line, exit status 1', async () => {
    const a = await writeSimple(path.join(root, 'err', 'names-a'), [{ name: 'x.weight', dtype: 'BF16', shape: [2] }]);
    const b = await writeSimple(path.join(root, 'err', 'names-b'), [{ name: 'y.weight', dtype: 'BF16', shape: [2] }]);
    const r = await runCli(['diff', a, b]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`weightmix: error: the models hold different tensors: only in ${a}: x.weight; only in ${b}: y.weight\n`);
  });

  test('different shapes or non-float dtypes: one error line each', async () => {
    const a = await writeSimple(path.join(root, 'err', 'shape-a'), [{ name: 'x.weight', dtype: 'BF16', shape: [2, 3] }]);
    const b = await writeSimple(path.join(root, 'err', 'shape-b'), [{ name: 'x.weight', dtype: 'F32', shape: [3, 2] }]);
    const r = await runCli(['diff', a, b]);
    expect([r.status, r.stderr]).toEqual([1, `weightmix: error: tensor x.weight has shape [2,3] in ${a} but [3,2] in ${b}\n`]);
    const c = await writeSimple(path.join(root, 'err', 'dtype-c'), [{ name: 'x.weight', dtype: 'I32', shape: [2, 3] }]);
    await expect(diff({ a, b: c })).rejects.toMatchObject({ code: 'DtypeMismatch' });
  });

  test('a missing folder, bad options: WeightmixError before any work', async () => {
    await expect(diff({ a: path.join(root, 'absent'), b: zooDirs.b })).rejects.toMatchObject({ code: 'ModelNotFound' });
    await expect(diff({ a: '', b: zooDirs.b })).rejects.toMatchObject({ code: 'Usage', message: expect.stringContaining("option 'a'") });
    await expect(diff({ a: zooDirs.a, b: zooDirs.b, threads: 0 })).rejects.toMatchObject({
      code: 'Usage',
      message: 'threads must be an integer from 1 to 1024, got 0',
    });
    await expect(runCommand([zooDirs.a, zooDirs.b, '--plot', path.join(root, 'chart.pdf')])).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/must end in \.svg or \.png/),
    });
    const plot = await runCli(['diff', zooDirs.a, zooDirs.b, '--plot', path.join(root, 'st.jpg')]);
    expect([plot.status, plot.stderr]).toEqual([2, `weightmix: error: chart file '${path.join(root, 'st.jpg')}' must end in .svg or .png\n`]);
    const r = await runCli(['diff', zooDirs.a, zooDirs.b, '--threads', 'many']);
    expect([r.status, r.stderr]).toEqual([2, 'weightmix: error: --threads must be an integer from 1 to 1024, got "many"\n']);
  });

  test('an aborted signal rejects with code Aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const err = await diff({ a: zooDirs.a, b: zooDirs.b, signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightmixError);
    expect(err).toMatchObject({ code: 'Aborted', message: 'the diff was aborted' });
  });

  test('a signal aborted in the last progress call (all bytes read) still rejects with Aborted (it resolved with the report)', async () => {
    const controller = new AbortController();
    const onProgress = (p: { bytesDone: number; bytesTotal: number }) => {
      if (p.bytesDone === p.bytesTotal) controller.abort();
    };
    const err = await diff({ a: zooDirs.a, b: zooDirs.b, signal: controller.signal, onProgress }).catch((e: unknown) => e);
    expect(controller.signal.aborted).toBe(true);
    expect(err).toMatchObject({ code: 'Aborted', message: 'the diff was aborted' });
  });

  test('--plot with no decoder-layer tensors says there is nothing to plot', async () => {
    const a = await writeSimple(path.join(root, 'err', 'flat-a'), [{ name: 'lm_head.weight', dtype: 'BF16', shape: [2] }]);
    await expect(runCommand([a, a, '--plot', path.join(root, 'flat.svg')])).rejects.toMatchObject({ code: 'NothingToPlot' });
  });
});

// Type-level check that the report rows are what the docs say they are.
const _typeCheck: (t: TensorDiff) => [string, number | null] = (t) => [t.name, t.layer];
void _typeCheck;
