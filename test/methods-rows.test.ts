/**
 * The row-wise forms: model_stock with filter_wise: true and nuslerp with nuslerp_flatten: false (one
 * angle per row of the last dimension, or with nuslerp_row_wise per vector along the first). The engine's `row_moments` statistic against f64 sums, its
 * `row_linear` op bit for bit against base + Σ c·(x − base) in f64 on random inputs with special
 * values, and whole recipes within one ulp of mergekit's definitions applied row by row.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runPlan } from '../lib/engine/native';
import { writeSafetensorsFile } from '../lib/format/safetensors';
import type { NativeDtype } from '../lib/engine/native-plan';
import { encodeElementwiseParams } from '../lib/engine/elementwise-params';
import { openCheckpoint } from '../lib/model/checkpoint';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { modelValues, worstUlp } from './helpers/model-values';
import { CANONICAL_NAN, Dtype, encode } from './reference/numerics';
import { modelStockRef, nuslerpRef } from './reference/merge-methods';
import { rng } from './helpers/models';
import { writeRaw } from './helpers/raw-values';
import { makeNearFarModels } from './helpers/tiny-models';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

let A: string;
let B: string;
let N: string;
let F: string;
let shapes: Map<string, number[]>;

useTempDir('weightmix-rows-');

beforeAll(async () => {
  ({ A, B, N, F } = await makeNearFarModels(dir, 21));
  const c = await openCheckpoint(A);
  shapes = new Map(c.names.map((n) => [n, c.tensors.get(n)!.shape]));
}, 60000);

/** f applied to each row (the last dimension) of the tensors' values; a 1-D tensor is one row. */
function byRow(name: string, tensors: number[][], f: (rows: number[][]) => number[]): number[] {
  const shape = shapes.get(name)!;
  const length = shape[shape.length - 1];
  const out: number[] = [];
  for (let at = 0; at < tensors[0].length; at += length) out.push(...f(tensors.map((x) => x.slice(at, at + length))));
  return out;
}

/** f applied to each vector along the first dimension (mergekit's dim 0: a column of a matrix); a 1-D tensor is one. */
function byColumn(name: string, tensors: number[][], f: (columns: number[][]) => number[]): number[] {
  const shape = shapes.get(name)!;
  const groups = shape.length < 2 ? 1 : tensors[0].length / shape[0];
  const out = new Array<number>(tensors[0].length);
  for (let g = 0; g < groups; g++) {
    const index = Array.from({ length: tensors[0].length / groups }, (_, r) => r * groups + g);
    f(tensors.map((x) => index.map((i) => x[i]))).forEach((v, r) => (out[index[r]] = v));
  }
  return out;
}

async function worstUlpOf(doc: Record<string, unknown>, oracle: (name: string) => number[]): Promise<number> {
  const out = freshPath('out');
  await merge(parseRecipe(doc), { output: out, threads: 2, blockBytes: 65536 });
  return worstUlp(await openCheckpoint(out), oracle);
}

test("model_stock filter_wise: true is within 1 bf16 ulp of mergekit's formula row by row, and differs from the tensor-wise form", async () => {
  const [a, b, f, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(F), modelValues(N)]);
  const doc = { merge_method: 'model_stock', base_model: N, parameters: { filter_wise: true }, models: [{ model: A }, { model: B }, { model: F }] };
  const rowOracle = (k: string) =>
    byRow(
      k,
      [n, a, b, f].map((m) => m.get(k)!),
      ([base, ...ms]) => modelStockRef(base, ms),
    );
  expect(await worstUlpOf(doc, rowOracle)).toBeLessThanOrEqual(1);
  // The oracle is not the tensor-wise one: a merge that ignored filter_wise would fail above.
  const tensorOracle = (k: string) =>
    modelStockRef(
      n.get(k)!,
      [a, b, f].map((m) => m.get(k)!),
    );
  expect(await worstUlpOf({ ...doc, parameters: { filter_wise: false } }, rowOracle)).toBeGreaterThan(1);
  expect(await worstUlpOf({ ...doc, parameters: { filter_wise: false } }, tensorOracle)).toBeLessThanOrEqual(1);
});

test('model_stock: where two task vectors are opposite (t undefined) the base is kept, with a notice naming the row or tensor', async () => {
  // Raw fixtures: a 2 × 2 tensor whose row 1 has task vectors (1, 0) and (−1, 0), and a 1-element tensor with +3 and −3.
  const make = async (name: string, values: number[], single: number) => {
    const folder = path.join(dir, name);
    await fs.promises.mkdir(folder, { recursive: true });
    await writeSafetensorsFile(path.join(folder, 'model.safetensors'), [
      { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [2, 2], data: Buffer.from(new Float32Array(values).buffer) },
      { name: 'model.norm.weight', dtype: 'F32', shape: [1], data: Buffer.from(new Float32Array([single]).buffer) },
    ]);
    return folder;
  };
  const [base, x, y] = await Promise.all([make('opp-base', [0, 0, 5, 7], 2), make('opp-x', [1, 2, 6, 7], 5), make('opp-y', [2, 1, 4, 7], -1)]);
  const read = async (folder: string) => {
    const values = await modelValues(folder);
    return [...values.get('model.layers.0.mlp.up_proj.weight')!, ...values.get('model.norm.weight')!];
  };
  for (const filterWise of [true, false]) {
    const out = path.join(dir, `opposite-${filterWise}`);
    const notices: string[] = [];
    const doc = { merge_method: 'model_stock', base_model: base, parameters: { filter_wise: filterWise }, models: [{ model: x }, { model: y }] };
    await merge(parseRecipe(doc), { output: out, onNotice: (m) => notices.push(m) });
    const got = await read(out);
    // The 1-element tensor: t undefined, the base's 2 kept. Row 0 (filter_wise): cos = 0.8, t = 1.6/1.8, base + (t/2)·(δx + δy).
    expect(got[4]).toBe(2);
    expect(notices.some((m) => /^model_stock: model\.norm\.weight: the task vectors point in opposite directions .*base model's values are kept/.test(m))).toBe(
      true,
    );
    if (filterWise) {
      const t = 1.6 / 1.8;
      expect(got.slice(0, 4)).toEqual([Math.fround((t / 2) * 3), Math.fround((t / 2) * 3), 5, 7]);
      expect(notices.some((m) => m.startsWith('model_stock: row 1 of model.layers.0.mlp.up_proj.weight: the task vectors point in opposite directions'))).toBe(
        true,
      );
    }
  }
});

test('nuslerp nuslerp_flatten: false, without and with a base: within 1 ulp of nuslerp on each row', async () => {
  const [a, f, b, n] = await Promise.all([modelValues(A), modelValues(F), modelValues(B), modelValues(N)]);
  const plain = {
    merge_method: 'nuslerp',
    parameters: { nuslerp_flatten: false },
    models: [
      { model: A, parameters: { weight: 0.3 } },
      { model: F, parameters: { weight: 0.5 } },
    ],
  };
  expect(await worstUlpOf(plain, (k) => byRow(k, [a.get(k)!, f.get(k)!], ([x, y]) => nuslerpRef(x, y, [0.3, 0.5], null)))).toBeLessThanOrEqual(1);
  const based = {
    merge_method: 'nuslerp',
    base_model: N,
    out_dtype: 'float32',
    parameters: { nuslerp_flatten: false },
    models: [{ model: A, parameters: { weight: 1 } }, { model: B, parameters: { weight: 2 } }, { model: N }],
  };
  const oracle = (k: string) => byRow(k, [a.get(k)!, b.get(k)!, n.get(k)!], ([x, y, z]) => nuslerpRef(x, y, [1, 2], z));
  expect(await worstUlpOf(based, oracle)).toBeLessThanOrEqual(1);
});

test("nuslerp nuslerp_row_wise: true with nuslerp_flatten: false: one angle per column (mergekit's dim 0), within 1 ulp, and not the rows' result", async () => {
  const [a, b, n] = await Promise.all([modelValues(A), modelValues(B), modelValues(N)]);
  const doc = {
    merge_method: 'nuslerp',
    base_model: N,
    out_dtype: 'float32',
    parameters: { nuslerp_flatten: false, nuslerp_row_wise: true },
    models: [{ model: A, parameters: { weight: 1 } }, { model: B, parameters: { weight: 2 } }, { model: N }],
  };
  const columns = (k: string) => byColumn(k, [a.get(k)!, b.get(k)!, n.get(k)!], ([x, y, z]) => nuslerpRef(x, y, [1, 2], z));
  const rows = (k: string) => byRow(k, [a.get(k)!, b.get(k)!, n.get(k)!], ([x, y, z]) => nuslerpRef(x, y, [1, 2], z));
  expect(await worstUlpOf(doc, columns)).toBeLessThanOrEqual(1);
  expect(await worstUlpOf(doc, rows)).toBeGreaterThan(1);
});

// ---- the engine on raw files ----------------------------------------------------------------------

const SPECIALS = [NaN, Infinity, -Infinity, 0, -0, 2 ** -149, 2 ** -126, 3.4028234663852886e38, -1e-30];

test.each([
  ['F32', 'BF16'],
  ['BF16', 'F16'],
] as [Dtype, Dtype][])(
  'row_linear (sources %s, output %s) equals base + Σ c·(x − base) in f64 rounded once, bit for bit; row_moments equal f64 sums',
  async (ts, to) => {
    const r = rng(ts.length + to.length);
    const rowLength = 37;
    const rows = 130;
    const n = rowLength * rows;
    const value = () => (r() < 0.05 ? SPECIALS[Math.floor(r() * SPECIALS.length)] : (r() - 0.5) * 2 ** Math.floor(r() * 10 - 5));
    const raws = [0, 1, 2].map(() => writeRaw(dir, Array.from({ length: n }, value), ts));
    const coefficients = Array.from({ length: rows * 2 }, () => (r() - 0.3) * 2);
    const sources = raws.map((x, k) => ({ input: k, offset: 0, dtype: ts as NativeDtype }));
    // Rows of rowLength elements, or (interleaved) as many groups, element i in group i mod rowLength.
    for (const [base, interleaved] of [
      [true, false],
      [false, false],
      [true, true],
    ]) {
      const group = (i: number) => (interleaved ? i % rowLength : Math.floor(i / rowLength));
      const outFile = freshPath('rows', '.bin');
      // Sources 2 (base) and 0, 1 (models), out of order: the params name them.
      const w = interleaved ? coefficients.slice(0, 2 * rowLength) : coefficients;
      const params = encodeElementwiseParams('row_linear', base ? [2, 0, 1] : [0, 1], [], { length: rowLength, interleaved, base, w });
      await runPlan({
        inputs: raws.map((x) => x.file),
        outputs: [{ path: outFile, size: n * (to === 'F32' ? 4 : 2), head: Buffer.alloc(0) }],
        jobs: [{ count: n, sources, dests: [{ output: 0, offset: 0, dtype: to, op: 'row_linear', w: [], params }] }],
        threads: 3,
        blockBytes: 4096,
        direct: false,
      });
      const got = fs.readFileSync(outFile);
      const [x0, x1, b] = raws.map((x) => x.held);
      for (let i = 0; i < n; i++) {
        const c = w.slice(2 * group(i), 2 * group(i) + 2);
        const ref = base ? b[i] + (0 + c[0] * (x0[i] - b[i]) + c[1] * (x1[i] - b[i])) : 0 + c[0] * x0[i] + c[1] * x1[i];
        const want = Number.isNaN(ref) ? CANONICAL_NAN[to] : encode(to, ref);
        const bits = to === 'F32' ? got.readUInt32LE(4 * i) : got.readUInt16LE(2 * i);
        if (bits !== want)
          throw new Error(`element ${i} (base ${base}, interleaved ${interleaved}): got 0x${bits.toString(16)}, want 0x${want.toString(16)} (${ref})`);
      }
    }
    const { stats } = await runPlan({
      inputs: raws.map((x) => x.file),
      outputs: [],
      jobs: [{ count: n, sources: sources.slice(0, 2), dests: [], stat: 'row_moments', statParams: [rowLength] }],
      threads: 3,
      blockBytes: 4096,
      direct: false,
    });
    expect(stats).toHaveLength(4 * rows);
    const [x, y] = raws.map((v) => v.held);
    for (let row = 0; row < rows; row++) {
      const want = [0, 0, 0, 0];
      for (let i = row * rowLength; i < (row + 1) * rowLength; i++) {
        if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) continue;
        [x[i] * x[i], y[i] * y[i], x[i] * y[i], (y[i] - x[i]) ** 2].forEach((v, k) => (want[k] += v));
      }
      want.forEach((v, k) => expect(stats[4 * row + k]).toBeCloseTo(v, 12 - Math.max(0, Math.ceil(Math.log10(Math.abs(v) + 1)))));
    }
    // Interleaved: rowLength groups, element i in group i mod rowLength.
    const interleaved = await runPlan({
      inputs: raws.map((v) => v.file),
      outputs: [],
      jobs: [{ count: n, sources: sources.slice(0, 2), dests: [], stat: 'row_moments', statParams: [-rowLength] }],
      threads: 3,
      blockBytes: 4096,
      direct: false,
    });
    expect(interleaved.stats).toHaveLength(4 * rowLength);
    for (let g = 0; g < rowLength; g++) {
      let aa = 0;
      for (let i = g; i < n; i += rowLength) if (Number.isFinite(x[i]) && Number.isFinite(y[i])) aa += x[i] * x[i];
      expect(interleaved.stats[4 * g]).toBeCloseTo(aa, 12 - Math.max(0, Math.ceil(Math.log10(Math.abs(aa) + 1))));
    }
  },
);

test('the executor refuses row_linear parameters that do not fit the tensor, with one line', async () => {
  const { file } = writeRaw(dir, [1, 2, 3, 4, 5, 6], 'F32');
  const run = (params: number[]) =>
    runPlan({
      inputs: [file],
      outputs: [{ path: freshPath('bad', '.bin'), size: 24, head: Buffer.alloc(0) }],
      jobs: [{ count: 6, sources: [{ input: 0, offset: 0, dtype: 'F32' }], dests: [{ output: 0, offset: 0, dtype: 'F32', op: 'row_linear', w: [], params }] }],
      threads: 1,
      blockBytes: 4096,
      direct: false,
    });
  await expect(run([4, -1, 1, 0, 1, 1])).rejects.toThrow(/^plan: parameters of job 0: the row length does not divide the element count$/);
  await expect(run([3, -1, 1, 0, 1])).rejects.toThrow(/coefficients do not match the rows/);
  await expect(run([3, -1, 1, 0, 1, NaN])).rejects.toThrow(/a coefficient is not a finite number/);
});
