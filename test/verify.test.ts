/**
 * `weightmix verify`: its numerics agree with the slow oracles of test/reference/numerics.ts, every
 * element of real merges (all recipes, special values included) recomputes bit for bit, and damaged
 * models (a flipped bit, a truncated shard, an inconsistent index, a stray shard, recipes that
 * disagree, moved sources) fail with one error line.
 */
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CheckpointPair } from '../lib/fixtures/fixture';
import { interpolate } from '../lib/interpolation/interpolate';
import { merge } from '../lib/recipes/merge-recipe';
import { writeSafetensorsFile, readSafetensorsHeader } from '../lib/format/safetensors';
import { sweep } from '../lib/interpolation/sweep';
import { convertBits, fmaF32, lerpExactBits, lerpMiBits } from '../lib/analysis/numerics-contract';
import { selectionFromDescription, verify } from '../lib/analysis/verify';
import { describeSelection, parseSelection } from '../lib/model/selection';
import * as oracle from './reference/numerics';
import { cachedPair, ensureCliBuilt, expectOneLineError, runCli, scratchDir } from './helpers/cli';
import { qwen3Names, rng, writeRandomBf16Model } from './helpers/models';

const numRuns = Number(process.env.WEIGHTMIX_FUZZ_RUNS ?? 1000);
const DTYPES = ['F32', 'F16', 'BF16'] as const;
type Dtype = (typeof DTYPES)[number];
const BITS: Record<Dtype, number> = { F32: 32, F16: 16, BF16: 16 };

let work: string;
let pair: CheckpointPair;

beforeAll(async () => {
  work = scratchDir('verify');
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 23 });
}, 180_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

let n = 0;
const fresh = (name = 'out') => path.join(work, `${++n}-${name}`);

/** Bit patterns with the interesting ones (zeros, infinities, NaNs with payloads, subnormals, extremes, rounding ties) over-represented. */
function bitsArb(t: Dtype): fc.Arbitrary<number> {
  const special =
    t === 'F32'
      ? [
          0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x00000001, 0x807fffff, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0x33000000,
          0x477ff000, 0x3f808000, 0x3f818000, 0x3f801000, 0x3f803000, 0x33c00000, 0x477fefff,
        ]
      : t === 'F16'
        ? [0, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0xfd01, 0x7c01, 0x0001, 0x83ff, 0x7bff, 0xfbff, 0x3c00]
        : [0, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x0001, 0x807f, 0x7f7f, 0xff7f, 0x3f80];
  return fc.oneof({ arbitrary: fc.constantFrom(...special), weight: 1 }, { arbitrary: fc.integer({ min: 0, max: 2 ** BITS[t] - 1 }), weight: 4 });
}
const f32Arb = bitsArb('F32').map((b) => oracle.f32FromBits(b));
const lambdaArb = fc.oneof(
  fc.constantFrom(0.5, -0.5, 0.25, 0.75, 0.8, 2, -1, 0.49999997, 0.50000006, 1e-30),
  fc.float({ noNaN: true, noDefaultInfinity: true, min: -4, max: 4 }),
);

describe('the numerics agree with the reference oracles bit for bit', () => {
  test.each(DTYPES.flatMap((from) => DTYPES.map((to) => [from, to] as const)))('conversion %s → %s', (from, to) => {
    fc.assert(
      fc.property(bitsArb(from), (bits) => convertBits(bits, from, to) === oracle.convertBits(from, to, bits)),
      { numRuns },
    );
  });

  test('fma in f32 (random operands, near-ties, overflow)', () => {
    const same = (x: number, y: number) => Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y));
    fc.assert(
      fc.property(f32Arb, f32Arb, f32Arb, (a, b, c) => same(fmaF32(a, b, c), oracle.fmaF32(a, b, c))),
      { numRuns },
    );
    // Sums that land exactly halfway between two f32 values in f64 while a tiny rest remains.
    const tie = fc.tuple(fc.integer({ min: 1, max: 2 ** 23 }), fc.integer({ min: -30, max: 30 }), fc.constantFrom(1, -1)).map(([m, e, sgn]) => {
      const c = sgn * (2 ** 23 + m) * 2 ** e;
      return [c, 2 ** (e - 1) * sgn, 1 + 2 ** -40] as const;
    });
    fc.assert(
      fc.property(tie, ([c, half, nudge]) => same(fmaF32(half, nudge, c), oracle.fmaF32(half, nudge, c))),
      { numRuns },
    );
    expect(fmaF32(2 ** 127, 2 - 2 ** -23, 2 ** 103 - 2 ** 70)).toBe(oracle.fmaF32(2 ** 127, 2 - 2 ** -23, 2 ** 103 - 2 ** 70));
  });

  test.each(DTYPES.flatMap((ta) => DTYPES.flatMap((tb) => DTYPES.map((to) => [ta, tb, to] as const))))('lerp exact %s × %s → %s', (ta, tb, to) => {
    fc.assert(
      fc.property(bitsArb(ta), bitsArb(tb), lambdaArb, (a, b, lambda) => {
        return lerpExactBits(a, ta, b, tb, to, lambda) === oracle.lerpExact({ dtype: ta, bits: [a] }, { dtype: tb, bits: [b] }, to, lambda)[0];
      }),
      { numRuns: Math.ceil(numRuns / 4) },
    );
  });

  test.each(DTYPES.flatMap((t) => DTYPES.map((to) => [t, to] as const)))("lerp 'mi' %s → %s", (t, to) => {
    fc.assert(
      fc.property(bitsArb(t), bitsArb(t), lambdaArb, (a, b, lambda) => {
        const ours = convertBits(lerpMiBits(a, b, Math.fround(lambda), t), t, to);
        return ours === oracle.lerpMi({ dtype: t, bits: [a] }, { dtype: t, bits: [b] }, to, lambda)[0];
      }),
      { numRuns: Math.ceil(numRuns / 4) },
    );
  });
});

test('a recorded selection reads back as the selection it describes', () => {
  for (const input of [{}, { layers: '1-2' }, { layers: '0,2-3', modules: 'attn,mlp' }, { skipModules: 'norm,embed' }, { layers: '3', skipModules: 'head' }]) {
    const sel = parseSelection(input);
    expect(selectionFromDescription(describeSelection(sel))).toEqual(sel);
  }
  expect(() => selectionFromDescription('every other tensor')).toThrow(/unknown selection/);
});

describe('every element of real merges recomputes bit for bit', () => {
  // Every element for λ = 0.8; 512 per tensor (all of the norms, a quarter of the largest) for the others.
  test.each([
    ['λ = 0.8', { lambda: 0.8 }],
    ['λ = 0.3 (the other torch.lerp branch)', { lambda: 0.3 }],
    ['λ = −0.5 and 1.5 (extrapolation)', { lambda: -0.5 }],
    ["numerics 'mi'", { lambda: 0.8, numerics: 'mi' as const }],
    ['--dtype F32', { lambda: 0.8, dtype: 'F32' as const }],
    ['--dtype F16', { lambda: 0.6, dtype: 'F16' as const }],
    ['layers 1-2, modules attn,mlp', { lambda: 0.8, layers: '1-2', modules: 'attn,mlp' }],
    ['except modules norm', { lambda: 0.8, skipModules: 'norm' }],
    ['λ = 0', { lambda: 0 }],
    ['λ = 1', { lambda: 1 }],
  ])('%s', async (_, recipe) => {
    const out = fresh();
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, output: out, threads: 2, ...recipe });
    const all = recipe.lambda === 0.8 && Object.keys(recipe).length === 1;
    const report = await verify({ dir: out, recompute: true, samples: all ? 'all' : 512 });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.recomputed).toMatchObject({ tensors: 47, mismatchCount: 0 });
    expect(report.recomputed!.elements).toBeGreaterThan(all ? 180_000 : 15_000);
  });

  test('each model of a sweep', async () => {
    const dir = fresh('sweep');
    await sweep({ instruct: pair.instruct, thinking: pair.thinking, lambdas: '0.2,0.5,1.5', output: dir });
    for (const m of fs.readdirSync(dir)) {
      const report = await verify({ dir: path.join(dir, m), recompute: true, samples: 256 });
      expect({ m, problems: report.problems, ok: report.ok }).toEqual({ m, problems: [], ok: true });
    }
  });

  test('special values (NaN payloads, infinities, signed zeros, subnormals, extremes) across dtypes', async () => {
    const special = (t: Dtype, seed: number): Buffer => {
      const patterns = fc.sample(bitsArb(t), { numRuns: 512, seed });
      const buf = Buffer.alloc(512 * (t === 'F32' ? 4 : 2));
      patterns.forEach((p, i) => (t === 'F32' ? buf.writeUInt32LE(p >>> 0, 4 * i) : buf.writeUInt16LE(p, 2 * i)));
      return buf;
    };
    const models: [string, Dtype][][] = [
      [
        ['bf16', 'BF16'],
        ['f16', 'F16'],
        ['f32', 'F32'],
        ['mixed', 'BF16'],
      ],
      [
        ['bf16', 'BF16'],
        ['f16', 'F16'],
        ['f32', 'F32'],
        ['mixed', 'F32'],
      ],
    ];
    const dirs = await Promise.all(
      models.map(async (tensors, k) => {
        const dir = fresh(k === 0 ? 'special-instruct' : 'special-thinking');
        fs.mkdirSync(dir);
        await writeSafetensorsFile(
          path.join(dir, 'model.safetensors'),
          tensors.map(([name, t], i) => ({ name: `model.layers.0.mlp.${name}.weight`, dtype: t, shape: [512], data: special(t, 100 * k + i) })),
        );
        return dir;
      }),
    );
    for (const recipe of [{ lambda: 0.8 }, { lambda: 0.3 }, { lambda: 0.8, dtype: 'F16' as const }, { lambda: 0.7, dtype: 'BF16' as const }]) {
      const out = fresh('special-out');
      await interpolate({ instruct: dirs[0], thinking: dirs[1], output: out, ...recipe });
      const report = await verify({ dir: out, recompute: true, samples: 'all' });
      expect({ recipe, problems: report.problems, mismatches: report.recomputed?.mismatches }).toEqual({ recipe, problems: [], mismatches: [] });
    }
  });
});

describe('damaged models fail verification', () => {
  async function merged(): Promise<string> {
    const out = fresh();
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: out });
    return out;
  }
  const SHARD = 'model-00002-of-00002.safetensors';
  const INDEX = 'model.safetensors.index.json';

  test('one flipped bit is found by --recompute, with the tensor and element named', async () => {
    const out = await merged();
    const file = path.join(out, SHARD);
    const header = await readSafetensorsHeader(file);
    const t = header.tensors[3];
    const fd = fs.openSync(file, 'r+');
    const at = header.dataStart + t.dataOffsets[0] + 2 * 5; // element 5
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] ^= 0x01;
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);
    expect((await verify({ dir: out })).ok).toBe(true); // the structure is intact: only recomputing sees it
    const report = await verify({ dir: out, recompute: true, samples: 'all' });
    expect(report.ok).toBe(false);
    expect(report.recomputed!.mismatchCount).toBe(1);
    expect(report.recomputed!.mismatches[0]).toMatchObject({ tensor: t.name, element: 5 });
    expect(report.problems[0]).toEqual({
      code: 'ElementsDiffer',
      message: expect.stringMatching(new RegExp(`1 of \\d+ recomputed elements differ .*${t.name.replace(/\./g, '\\.')} element 5`)),
    });
  });

  test('a truncated (half-written) shard', async () => {
    const out = await merged();
    fs.truncateSync(path.join(out, SHARD), fs.statSync(path.join(out, SHARD)).size - 1000);
    const report = await verify({ dir: out });
    expect(report).toMatchObject({ ok: false, opened: false, recipe: null });
    expect(report.problems[0]).toEqual({ code: 'MetadataIncompleteBuffer', message: expect.stringMatching(/data is cut short/) });
  });

  test('a wrong total_size, a tensor missing from the index, a stray shard', async () => {
    const out = await merged();
    const index = JSON.parse(fs.readFileSync(path.join(out, INDEX), 'utf8'));
    index.metadata.total_size += 2;
    fs.writeFileSync(path.join(out, INDEX), JSON.stringify(index));
    fs.copyFileSync(path.join(out, SHARD), path.join(out, 'model-00003-of-00002.safetensors'));
    const report = await verify({ dir: out });
    expect(report.problems).toEqual([
      { code: 'IndexMismatch', message: expect.stringMatching(/total_size is \d+ but the shards hold \d+ bytes/) },
      { code: 'IndexMismatch', message: expect.stringMatching(/model-00003-of-00002\.safetensors: a shard that the index does not name/) },
    ]);
    delete index.weight_map['model.norm.weight'];
    index.metadata.total_size -= 2;
    fs.writeFileSync(path.join(out, INDEX), JSON.stringify(index));
    expect((await verify({ dir: out })).problems[0]).toEqual({
      code: 'IndexMismatch',
      message: expect.stringMatching(/model\.norm\.weight is in .* but the index says nothing/),
    });
  });

  test('a config.json that does not describe the tensors (vocab_size, hidden_size, num_hidden_layers, an untied model without its head)', async () => {
    const out = await merged();
    const file = path.join(out, 'config.json');
    const config = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect((await verify({ dir: out })).problems).toEqual([]);
    const embed = (await verify({ dir: pair.instruct })).ok && config.vocab_size;
    fs.writeFileSync(
      file,
      JSON.stringify({ ...config, vocab_size: embed + 8, hidden_size: config.hidden_size * 2, num_hidden_layers: config.num_hidden_layers + 1 }),
    );
    const messages = (await verify({ dir: out })).problems.map((p) => `${p.code} ${p.message.replace(`${file}: `, '')}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        `ConfigMismatch vocab_size is ${embed + 8} but model.embed_tokens.weight has ${embed} rows`,
        `ConfigMismatch hidden_size is ${config.hidden_size * 2} but model.embed_tokens.weight has ${config.hidden_size} columns`,
        `ConfigMismatch num_hidden_layers is ${config.num_hidden_layers + 1} but the tensors hold ${config.num_hidden_layers} decoder layers`,
      ]),
    );
    // A model without lm_head (qwen3Names: embeddings, layers, final norm) loads only with tied embeddings.
    const headless = await writeRandomBf16Model(fresh(), qwen3Names(2), rng(5), 'headless');
    const headlessConfig = path.join(headless, 'config.json');
    const tied = (tie: boolean) => fs.writeFileSync(headlessConfig, JSON.stringify({ num_hidden_layers: 2, tie_word_embeddings: tie }));
    tied(true);
    expect((await verify({ dir: headless })).problems).toEqual([]);
    // A multimodal config's language model is described in text_config; its top level may be stale (PaliGemma's vocab_size).
    fs.writeFileSync(headlessConfig, JSON.stringify({ vocab_size: 7, text_config: { num_hidden_layers: 2, vocab_size: 9999 }, tie_word_embeddings: true }));
    expect((await verify({ dir: headless })).problems.map((p) => p.message.replace(`${headlessConfig}: `, ''))).toEqual([
      expect.stringMatching(/^vocab_size is 9999 but model\.embed_tokens\.weight has \d+ rows$/),
    ]);
    // A multi-token-prediction layer (DeepSeek-V3) is stored as one more decoder layer than num_hidden_layers counts.
    fs.writeFileSync(headlessConfig, JSON.stringify({ num_hidden_layers: 1, num_nextn_predict_layers: 1, tie_word_embeddings: true }));
    expect((await verify({ dir: headless })).problems).toEqual([]);
    tied(false);
    expect((await verify({ dir: headless })).problems).toEqual([
      {
        code: 'ConfigMismatch',
        message: `${headlessConfig}: tie_word_embeddings is false but the model has no lm_head: transformers would initialize one at random`,
      },
    ]);
  });

  test('shards that record different recipes, or none', async () => {
    const a = await merged();
    const b = fresh();
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.7, output: b });
    fs.copyFileSync(path.join(b, SHARD), path.join(a, SHARD)); // same layout, another λ
    expect((await verify({ dir: a })).problems).toEqual([{ code: 'InvalidRecipe', message: expect.stringMatching(/the shards record 2 different recipes/) }]);

    const c = await merged();
    const h = await readSafetensorsHeader(path.join(c, SHARD));
    const data = fs.readFileSync(path.join(c, SHARD)).subarray(h.dataStart);
    const tensors = h.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: data.subarray(t.dataOffsets[0], t.dataOffsets[1]) }));
    fs.rmSync(path.join(c, SHARD));
    await writeSafetensorsFile(path.join(c, SHARD), tensors, { format: 'pt' });
    expect((await verify({ dir: c })).problems).toEqual([
      { code: 'InvalidRecipe', message: expect.stringMatching(/no weightmix recipe, unlike 1 other shard/) },
    ]);
  });

  test('sources that moved after the merge: --recompute fails and says so', async () => {
    const moved = path.join(work, 'moved');
    fs.cpSync(path.dirname(pair.instruct), moved, { recursive: true });
    const out = fresh();
    await interpolate({ instruct: path.join(moved, 'instruct'), thinking: path.join(moved, 'thinking'), lambda: 0.8, output: out });
    fs.rmSync(moved, { recursive: true });
    expect((await verify({ dir: out })).ok).toBe(true);
    const report = await verify({ dir: out, recompute: true });
    expect(report.problems).toEqual([
      { code: 'ModelNotFound', message: expect.stringMatching(/cannot recompute from the recorded sources: model folder not found: .*moved/) },
    ]);
  });

  test('a model that weightmix did not write: structure checked, nothing to recompute', async () => {
    const report = await verify({ dir: pair.instruct });
    expect({ ok: report.ok, recipe: report.recipe, tensors: report.tensors }).toEqual({ ok: true, recipe: null, tensors: 47 });
    expect((await verify({ dir: pair.instruct, recompute: true })).problems).toEqual([
      { code: 'RecipeNotRecorded', message: expect.stringMatching(/no weightmix recipe is recorded/) },
    ]);
  });

  test('an aborted verification rejects with code Aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(verify({ dir: pair.instruct, signal: controller.signal })).rejects.toMatchObject({ code: 'Aborted' });
  });
});

describe('weightmix verify (CLI)', () => {
  beforeAll(() => ensureCliBuilt(), 180_000);

  test('a good model: exit 0 and a report on stdout', async () => {
    const out = fresh();
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: out });
    const r = await runCli(['verify', out, '--recompute', '--samples', '16']);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout).toMatch(/^verified .*: 2 shard files, 47 tensors/m);
    expect(r.stdout).toMatch(/^recomputed \d+ elements of 47 tensors from the sources: all identical, bit for bit$/m);
  });

  test('a damaged model: exit 1 with one error line; the report lists the problems', async () => {
    const out = fresh();
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: out });
    fs.truncateSync(path.join(out, 'model-00001-of-00002.safetensors'), 100);
    const r = await runCli(['verify', out]);
    expect(expectOneLineError(r, 1)).toMatch(/^weightmix: error: verification failed: .*model-00001-of-00002\.safetensors/);
    // A damaged weightmix output is not called "not a weightmix output": its recipe was not read.
    expect(r.stdout).toMatch(new RegExp(`^FAILED ${out}: the model did not open, so its tensors and recorded recipe were not read\nproblem: `));
    expect(r.stdout).not.toMatch(/not a weightmix output|0 shard files/);
  });

  test('usage errors exit 2', async () => {
    expectOneLineError(await runCli(['verify', pair.instruct, '--samples', '0']), 2);
    expectOneLineError(await runCli(['verify']), 2);
    // Decimal digits only (Number() took 0x10 and 1e3), and only where something is sampled.
    expect(expectOneLineError(await runCli(['verify', pair.instruct, '--recompute', '--samples', '0x10']), 2)).toMatch(/--samples must be a whole number/);
    expect(expectOneLineError(await runCli(['verify', pair.instruct, '--recompute', '--seed', '1e3']), 2)).toMatch(/--seed must be a whole number/);
    expect(expectOneLineError(await runCli(['verify', pair.instruct, '--seed', '3']), 2)).toMatch(/--samples and --seed apply only with --recompute/);
    await expect(verify({ dir: pair.instruct, samples: 8 })).rejects.toMatchObject({
      code: 'Usage',
      message: 'verify: samples and seed apply only with recompute: true',
    });
  });

  test('a folder that does not exist: exit 1, one line', async () => {
    expect(expectOneLineError(await runCli(['verify', path.join(work, 'nowhere')]), 1)).toMatch(/model folder not found/);
  });
});

describe('--recompute on outputs of other methods: structure checked, the skip stated', () => {
  beforeAll(() => ensureCliBuilt(), 180_000);

  async function merged(): Promise<string> {
    const out = fresh('merge');
    await merge(
      {
        merge_method: 'linear',
        models: [
          { model: pair.instruct, parameters: { weight: 0.2 } },
          { model: pair.thinking, parameters: { weight: 0.8 } },
        ],
      },
      { output: out, threads: 2 },
    );
    return out;
  }

  test('a merge output verifies with --recompute: ok, values not recomputed, and why', async () => {
    const out = await merged();
    const report = await verify({ dir: out, recompute: true });
    expect(report).toMatchObject({
      ok: true,
      problems: [],
      recomputed: null,
      recomputeSkipped: expect.stringMatching(/^linear outputs are not supported by --recompute/),
    });
    const r = await runCli(['verify', out, '--recompute']);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout).toMatch(/^verified .*: 2 shard files, 47 tensors/m);
    expect(r.stdout.match(/^values not recomputed: linear outputs are not supported by --recompute .*$/gm)).toHaveLength(1);
    expect(r.stdout).not.toMatch(/FAILED|problem/);
    const json = await runCli(['verify', out, '--recompute', '--json']);
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, recomputed: null, recomputeSkipped: expect.stringMatching(/^linear outputs/) });
  });

  test('an interpolate output is still recomputed', async () => {
    const out = fresh();
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: out });
    const report = await verify({ dir: out, recompute: true, samples: 8 });
    expect(report).toMatchObject({ ok: true, recomputeSkipped: null, recomputed: { tensors: 47, mismatchCount: 0 } });
  });

  test('a damaged merge output still fails under --recompute', async () => {
    const out = await merged();
    const shard = path.join(out, 'model-00001-of-00002.safetensors');
    const fd = fs.openSync(shard, 'r+');
    fs.writeSync(fd, Buffer.from('!'), 0, 1, 9); // a byte of the JSON header
    fs.closeSync(fd);
    const r = await runCli(['verify', out, '--recompute']);
    expect(expectOneLineError(r, 1)).toMatch(/^weightmix: error: verification failed: .*model-00001-of-00002\.safetensors/);
    expect(r.stdout).toMatch(/^FAILED /);
  });

  test('verify --help says which outputs --recompute supports', async () => {
    const r = await runCli(['verify', '--help']);
    expect(r.stdout.replace(/\s+/g, ' ')).toMatch(/--recompute .*interpolate and sweep outputs/);
  });
});
