/**
 * The recipe keys against real mergekit, PEFT and transformers (optional, as test/mergekit-side-by-side.test.ts:
 * WEIGHTMIX_MERGEKIT_PYTHON names a Python that can import mergekit and peft; elsewhere skipped with the reason).
 * chat_template: both outputs' tokenizers render the same conversations to the same text (transformers'
 * apply_chat_template). model+lora: weightmix's adapted tensors against PEFT's merge_and_unload, and a
 * linear merge of model+lora against mergekit's, element by element in units of the dtype's last place.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { openCheckpoint } from '../lib/model/checkpoint';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { readTensorBytes } from '../lib/format/tensor-data';
import { decodeFloat, elementBits } from '../lib/format/float-bits';
import { FloatDtype } from '../lib/format/dtypes';
import { testIf } from './helpers/skip';
import { readLoraAdapter } from '../lib/recipes/lora/lora-adapter';
import { decodeMatrix } from '../lib/recipes/lora/lora-delta';

const PYTHON = process.env.WEIGHTMIX_MERGEKIT_PYTHON;
const sideBySide = testIf(PYTHON !== undefined && PYTHON !== '', 'WEIGHTMIX_MERGEKIT_PYTHON is not set (a Python that can import mergekit and peft)');
const HELPER = path.join(__dirname, 'helpers', 'peft_adapter.py');
const ENV = { ...process.env, HF_HUB_OFFLINE: '1', CUDA_VISIBLE_DEVICES: '' };

function python(args: string[]): string {
  return execFileSync(PYTHON!, ['-W', 'ignore', ...args], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

function mergekit(doc: Record<string, unknown>, file: string, out: string, extra: string[] = []): void {
  fs.writeFileSync(file, stringify(doc));
  python(['-m', 'mergekit.scripts.run_yaml', file, out, ...extra]);
}

interface BitDistance {
  /** The largest difference between same-signed finite elements, in units in the last place of their dtype. */
  maxUlps: number;
  /** Finite elements of opposite signs (a result near zero). */
  signFlips: number;
  /** Elements whose bits differ. */
  differing: number;
  elements: number;
  /** ‖ours − theirs‖ / ‖theirs‖ over finite elements. */
  relL2: number;
}

/** Element-by-element distance between two models' tensors of one float dtype each (every tensor of `theirs`). */
async function bitDistance(ours: string, theirs: string): Promise<BitDistance> {
  const [a, b] = await Promise.all([openCheckpoint(ours), openCheckpoint(theirs)]);
  const d: BitDistance = { maxUlps: 0, signFlips: 0, differing: 0, elements: 0, relL2: 0 };
  let diff = 0;
  let norm = 0;
  for (const name of b.names) {
    const [ta, tb] = [a.tensors.get(name), b.tensors.get(name)!];
    if (!ta) throw new Error(`${name} is in ${theirs} but not in ${ours}`);
    expect([name, ta.dtype, ta.shape]).toEqual([name, tb.dtype, tb.shape]);
    const dtype = ta.dtype as FloatDtype;
    const [xa, xb] = await Promise.all([readTensorBytes(ta), readTensorBytes(tb)]);
    for (let i = 0; i < ta.elementCount; i++) {
      const [p, q] = [elementBits(xa, i, dtype), elementBits(xb, i, dtype)];
      d.elements++;
      if (p === q) continue;
      d.differing++;
      const [u, v] = [decodeFloat(p, dtype), decodeFloat(q, dtype)];
      if (Number.isFinite(u) && Number.isFinite(v)) {
        diff += (u - v) ** 2;
        if (Math.sign(u) === Math.sign(v)) d.maxUlps = Math.max(d.maxUlps, Math.abs(p - q));
        else d.signFlips++;
      }
    }
    for (let i = 0; i < ta.elementCount; i++) {
      const v = decodeFloat(elementBits(xb, i, dtype), dtype);
      if (Number.isFinite(v)) norm += v * v;
    }
  }
  d.relL2 = Math.sqrt(diff / norm);
  return d;
}

describe('recipe keys against mergekit, PEFT and transformers', () => {
  let dir: string;
  let A: string;
  let B: string;
  let C: string;
  let N: string;
  let adapter: string;
  const table: string[] = [];

  beforeAll(async () => {
    if (!PYTHON) return;
    dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'weightmix-keys-'));
    const pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', seed: 3 });
    [A, B] = [pair.instruct, pair.thinking];
    // C: B's copy, so that auto has a most common template (mergekit breaks a tie by its set's order).
    C = path.join(dir, 'c');
    await fs.promises.cp(B, C, { recursive: true });
    N = (await makeCheckpointPair({ dir: path.join(dir, 'near'), shape: 'tiny', seed: 3, delta: 0.01 })).thinking;
    adapter = path.join(dir, 'adapter');
    python([HELPER, 'make', A, adapter]);
  }, 300000);

  afterAll(async () => {
    if (!PYTHON) return;
    console.log(['check | result', ...table].join('\n'));
    await fs.promises.rm(dir, { recursive: true, force: true });
  });

  const linear = (a: string, b: string, extra: Record<string, unknown> = {}) => ({
    merge_method: 'linear',
    models: [
      { model: a, parameters: { weight: 0.5 } },
      { model: b, parameters: { weight: 0.5 } },
    ],
    dtype: 'float32',
    ...extra,
  });

  const templates = ['chatml', 'llama3', 'mistral', 'auto', "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"];
  sideBySide(
    "chat_template: the same conversations render to the same text with mergekit's tokenizer and weightmix's",
    async () => {
      for (const [i, template] of templates.entries()) {
        const ours = path.join(dir, `wm-chat-${i}`);
        const theirs = path.join(dir, `mk-chat-${i}`);
        const doc = linear(A, B, { chat_template: template });
        if (template === 'auto') (doc.models as unknown[]).push({ model: C, parameters: { weight: 0.5 } });
        await merge(parseRecipe(doc), { output: ours, threads: 2 });
        mergekit(doc, path.join(dir, `chat-${i}.yml`), theirs);
        const [a, b] = python([HELPER, 'render', ours, theirs]).trim().split('\n');
        expect([template, JSON.parse(a)]).toEqual([template, JSON.parse(b)]);
        table.push(`chat_template ${template.length > 12 ? 'literal' : template} | ${JSON.parse(a).length} renderings identical`);
      }
    },
    600000,
  );

  sideBySide(
    "a slice's base_model: task_arithmetic with a base per slice",
    async () => {
      const src = (model: string, layers: [number, number], weight?: number) => ({
        model,
        layer_range: layers,
        ...(weight === undefined ? {} : { parameters: { weight } }),
      });
      const doc = {
        merge_method: 'task_arithmetic',
        base_model: C,
        dtype: 'float32',
        slices: [
          { sources: [src(A, [0, 2], 0.7), src(B, [0, 2], 0.4), src(N, [0, 2])], base_model: N },
          { sources: [src(A, [2, 4], 0.7), src(B, [2, 4], 0.4), src(C, [2, 4])] },
        ],
      };
      const ours = path.join(dir, 'wm-slice-base');
      const theirs = path.join(dir, 'mk-slice-base');
      await merge(parseRecipe(doc), { output: ours, threads: 2 });
      mergekit(doc, path.join(dir, 'slice-base.yml'), theirs);
      const d = await bitDistance(ours, theirs);
      table.push(`slice base_model (task_arithmetic) | ${d.differing} of ${d.elements} elements differ, max ${d.maxUlps} F32 ulps`);
      expect([d.maxUlps, d.signFlips]).toEqual([0, 0]);
    },
    600000,
  );

  sideBySide(
    "model+lora: weightmix's adapted model against PEFT's merge_and_unload: where they differ, weightmix is nearer the exact value",
    async () => {
      const ours = path.join(dir, 'wm-lora');
      const theirs = path.join(dir, 'peft-lora');
      await merge(parseRecipe({ merge_method: 'passthrough', models: [{ model: `${A}+${adapter}` }] }), { output: ours, threads: 2 });
      python([HELPER, 'merge', A, adapter, theirs]);
      const d = await bitDistance(ours, theirs);
      const [o, p, base, ad] = await Promise.all([openCheckpoint(ours), openCheckpoint(theirs), openCheckpoint(A), readLoraAdapter(adapter)]);
      let farther = 0;
      let nearer = 0;
      for (const [name, u] of ad.updates) {
        const dtype = base.tensors.get(name)!.dtype as FloatDtype;
        const [rows, cols] = base.tensors.get(name)!.shape;
        const [xo, xp, xw] = await Promise.all([o, p, base].map((c) => readTensorBytes(c.tensors.get(name)!)));
        const a = decodeMatrix(await readTensorBytes(u.a), u.a.dtype as FloatDtype, u.a.shape[0], u.a.shape[1]);
        const b = decodeMatrix(await readTensorBytes(u.b), u.b.dtype as FloatDtype, u.b.shape[0], u.b.shape[1]);
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) {
            const e = i * cols + j;
            const [bRow, aCol] = u.transpose ? [j, i] : [i, j];
            let sum = 0;
            for (let k = 0; k < a.rows; k++) sum += b.values[bRow * a.rows + k] * a.values[k * a.cols + aCol];
            const exact = decodeFloat(elementBits(xw, e, dtype), dtype) + u.scale * sum; // f64: far below a BF16 ulp from exact
            const [mine, peft] = [xo, xp].map((x) => Math.abs(decodeFloat(elementBits(x, e, dtype), dtype) - exact));
            if (mine > peft) farther++;
            if (mine < peft) nearer++;
          }
      }
      table.push(
        `LoRA vs PEFT merge_and_unload | ${d.differing} of ${d.elements} elements differ (max ${d.maxUlps} BF16 ulps, ${d.signFlips} of opposite sign, relative L2 ${d.relL2.toExponential(2)}); weightmix nearer the exact value in ${nearer}, farther in ${farther}`,
      );
      expect(farther).toBe(0);
      expect(nearer).toBe(d.differing);
    },
    600000,
  );

  sideBySide(
    "model+lora in a linear merge: mergekit's equals weightmix's linear merge of PEFT's adapted model",
    async () => {
      const doc = linear(`${A}+${adapter}`, B);
      const theirs = path.join(dir, 'mk-lora-linear');
      mergekit(doc, path.join(dir, 'lora-linear.yml'), theirs, ['--lora-merge-cache', path.join(dir, 'lora-cache')]);
      if (!fs.existsSync(path.join(dir, 'peft-lora'))) python([HELPER, 'merge', A, adapter, path.join(dir, 'peft-lora')]);
      const viaPeft = path.join(dir, 'wm-peft-linear');
      await merge(parseRecipe(linear(path.join(dir, 'peft-lora'), B)), { output: viaPeft, threads: 2 });
      const same = await bitDistance(viaPeft, theirs);
      const ours = path.join(dir, 'wm-lora-linear');
      await merge(parseRecipe(doc), { output: ours, threads: 2 });
      const d = await bitDistance(ours, theirs);
      table.push(`LoRA linear: mergekit vs weightmix over PEFT's model | max ${same.maxUlps} F32 ulps, relative L2 ${same.relL2.toExponential(2)}`);
      table.push(`LoRA linear: mergekit vs weightmix's own LoRA | ${d.differing} of ${d.elements} elements differ, relative L2 ${d.relL2.toExponential(2)}`);
      expect([same.maxUlps, same.signFlips]).toEqual([0, 0]);
    },
    600000,
  );
});
