import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WeightmixError } from '../lib/errors';
import { makeCheckpointPair, type CheckpointPairOptions, type FixtureDtype } from '../lib/fixtures/fixture';
import { decodeFloat, encodeFloat } from '../lib/format/float-bits';
import { elementCount, listModelTensors, resolveModelShape } from '../lib/fixtures/model-shapes';
import { readSafetensorsHeader, type SafetensorsHeader } from '../lib/format/safetensors';
import { classifyTensor, type ModuleClass } from '../lib/model/tensor-names';

let root: string;
let serial = 0;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'weightmix-fixture-'));
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function freshDir(): string {
  return path.join(root, `pair-${serial++}`);
}

interface LoadedModel {
  files: string[];
  headers: Map<string, SafetensorsHeader>;
  /** tensor name → file holding it, from the index (or the single file). */
  location: Map<string, string>;
  index: { metadata: { total_size: number }; weight_map: Record<string, string> } | null;
}

async function loadModel(folder: string): Promise<LoadedModel> {
  const files = fs
    .readdirSync(folder)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
  const headers = new Map<string, SafetensorsHeader>();
  for (const file of files) headers.set(file, await readSafetensorsHeader(path.join(folder, file)));
  const indexPath = path.join(folder, 'model.safetensors.index.json');
  const index = fs.existsSync(indexPath) ? JSON.parse(fs.readFileSync(indexPath, 'utf8')) : null;
  const location = new Map<string, string>();
  if (index) {
    for (const [name, file] of Object.entries(index.weight_map as Record<string, string>)) location.set(name, file);
  } else {
    for (const t of headers.get('model.safetensors')!.tensors) location.set(t.name, 'model.safetensors');
  }
  return { files, headers, location, index };
}

/** Raw bytes of every tensor, by name. */
function tensorBytes(folder: string, model: LoadedModel): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [file, header] of model.headers) {
    const data = fs.readFileSync(path.join(folder, file));
    for (const t of header.tensors) {
      out.set(t.name, data.subarray(header.dataStart + t.dataOffsets[0], header.dataStart + t.dataOffsets[1]));
    }
  }
  return out;
}

const decodeTables = new Map<FixtureDtype, Float64Array>();

function decodeAll(bytes: Buffer, dtype: FixtureDtype): Float64Array {
  if (dtype === 'F32') {
    const copy = Buffer.from(bytes); // aligned
    return Float64Array.from(new Float32Array(copy.buffer, copy.byteOffset, copy.length / 4));
  }
  let table = decodeTables.get(dtype);
  if (!table) {
    table = Float64Array.from({ length: 1 << 16 }, (_, bits) => decodeFloat(bits, dtype));
    decodeTables.set(dtype, table);
  }
  const out = new Float64Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = table[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
  return out;
}

const isNormGain = (name: string) => /norm\.weight$/.test(name);

/** ‖T − I‖ / ‖I‖ over the pair's tensors that pass `include`. */
function relativeDistance(
  instruct: Map<string, Buffer>,
  thinking: Map<string, Buffer>,
  dtype: FixtureDtype,
  include: (name: string) => boolean = () => true,
): number {
  let diff = 0;
  let energy = 0;
  for (const [name, bytes] of instruct) {
    if (!include(name)) continue;
    const a = decodeAll(bytes, dtype);
    const b = decodeAll(thinking.get(name)!, dtype);
    for (let i = 0; i < a.length; i++) {
      diff += (b[i] - a[i]) ** 2;
      energy += a[i] ** 2;
    }
  }
  return Math.sqrt(diff / energy);
}

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

describe('encodeFloat / decodeFloat', () => {
  test('bf16 rounds to nearest, ties to even', () => {
    expect(encodeFloat(1, 'BF16')).toBe(0x3f80);
    expect(encodeFloat(1 + 2 ** -8, 'BF16')).toBe(0x3f80); // tie, 0x3f80 is even
    expect(encodeFloat(1 + 3 * 2 ** -8, 'BF16')).toBe(0x3f82); // tie, rounds up to even
    expect(encodeFloat(1 + 2 ** -8 + 2 ** -30, 'BF16')).toBe(0x3f81); // just past the tie
    expect(encodeFloat(-2, 'BF16')).toBe(0xc000);
    expect(encodeFloat(-0, 'BF16')).toBe(0x8000);
    expect(encodeFloat(3.5e38, 'BF16')).toBe(0x7f80); // past bf16's largest finite value
  });

  test('bf16 agrees with rounding the f32 bit pattern for random f32 values', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    let x = 12345;
    const wrong: string[] = [];
    for (let i = 0; i < 20000; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      u[0] = (x & 0xff7fffff) >>> 0; // finite f32 patterns of both signs
      const bits = u[0];
      const expected = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
      if (encodeFloat(f[0], 'BF16') !== expected) wrong.push(bits.toString(16));
    }
    expect(wrong).toEqual([]);
  });

  test('f16 handles ties, overflow and subnormals', () => {
    expect(encodeFloat(1, 'F16')).toBe(0x3c00);
    expect(encodeFloat(1 + 2 ** -11, 'F16')).toBe(0x3c00);
    expect(encodeFloat(1 + 3 * 2 ** -11, 'F16')).toBe(0x3c02);
    expect(encodeFloat(65504, 'F16')).toBe(0x7bff);
    expect(encodeFloat(65519, 'F16')).toBe(0x7bff);
    expect(encodeFloat(65520, 'F16')).toBe(0x7c00);
    expect(encodeFloat(2 ** -24, 'F16')).toBe(0x0001);
    expect(encodeFloat(2 ** -25, 'F16')).toBe(0x0000); // tie between 0 and the smallest subnormal: even is 0
    expect(encodeFloat(2 ** -14 - 2 ** -26, 'F16')).toBe(0x0400); // rounds up into the smallest normal
  });

  test('f32 equals Math.fround, and every pattern decodes back to itself', () => {
    for (const v of [0.1, -1e-40, 3.4028235677973366e38, 1 / 3, 123456.789]) {
      const f = new Float32Array([v]);
      expect(encodeFloat(v, 'F32')).toBe(new Uint32Array(f.buffer)[0]);
    }
    const wrong: string[] = [];
    for (const dtype of ['BF16', 'F16'] as const) {
      for (let bits = 0; bits < 0x10000; bits++) {
        const value = decodeFloat(bits, dtype);
        if (!Number.isNaN(value) && encodeFloat(value, dtype) !== bits) wrong.push(`${dtype} ${bits.toString(16)}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('model shapes', () => {
  test('Qwen3-4B: 398 tensors, tied embeddings (no lm_head), 8,044,936,192 bf16 bytes', () => {
    const tensors = listModelTensors(resolveModelShape('qwen3-4b'));
    expect(tensors).toHaveLength(398);
    expect(tensors.some((t) => t.name === 'lm_head.weight')).toBe(false);
    expect(tensors.reduce((n, t) => n + elementCount(t.shape), 0) * 2).toBe(8044936192);
    const byName = new Map(tensors.map((t) => [t.name, t.shape]));
    expect(byName.get('model.embed_tokens.weight')).toEqual([151936, 2560]);
    expect(byName.get('model.layers.35.self_attn.q_proj.weight')).toEqual([4096, 2560]);
    expect(byName.get('model.layers.35.self_attn.k_proj.weight')).toEqual([1024, 2560]);
    expect(byName.get('model.layers.35.self_attn.o_proj.weight')).toEqual([2560, 4096]);
    expect(byName.get('model.layers.0.self_attn.q_norm.weight')).toEqual([128]);
    expect(byName.get('model.layers.0.mlp.down_proj.weight')).toEqual([2560, 9728]);
  });

  test('Qwen3-30B-A3B: 18,867 tensors = 48 × (6 attn + 2 norm + 1 router + 128 × 3 experts) + embed, norm, lm_head', () => {
    const tensors = listModelTensors(resolveModelShape('qwen3-30b-a3b'));
    expect(tensors).toHaveLength(18867);
    expect(tensors.reduce((n, t) => n + elementCount(t.shape), 0) * 2).toBe(61064245248);
    const byName = new Map(tensors.map((t) => [t.name, t.shape]));
    expect(byName.get('model.layers.47.mlp.gate.weight')).toEqual([128, 2048]);
    expect(byName.get('model.layers.47.mlp.experts.127.gate_proj.weight')).toEqual([768, 2048]);
    expect(byName.get('model.layers.47.mlp.experts.127.down_proj.weight')).toEqual([2048, 768]);
    expect(byName.get('model.layers.0.self_attn.k_proj.weight')).toEqual([512, 2048]);
    expect(byName.get('lm_head.weight')).toEqual([151936, 2048]);
  });

  test('scale narrows widths but keeps head and expert counts, so names and counts stay real', () => {
    const shape = resolveModelShape('qwen3-30b-a3b', { scale: 64 });
    expect(shape).toMatchObject({ hidden: 32, headDim: 2, vocab: 2374, heads: 32, kvHeads: 4, moe: { experts: 128, intermediate: 12 } });
    const byName = new Map(listModelTensors(shape).map((t) => [t.name, t.shape]));
    expect(byName.get('model.layers.0.self_attn.q_proj.weight')).toEqual([64, 32]); // 32 heads × head_dim 2
    expect(byName.get('model.layers.0.self_attn.k_proj.weight')).toEqual([8, 32]);
    expect(byName.get('model.layers.0.self_attn.o_proj.weight')).toEqual([32, 64]);
    expect(byName.get('model.layers.0.self_attn.q_norm.weight')).toEqual([2]);
  });

  test('bad scale or layer counts are usage errors', () => {
    expect(() => resolveModelShape('tiny', { scale: 0 })).toThrow(/scale 0/);
    expect(() => resolveModelShape('tiny', { scale: 1.5 })).toThrow(/scale 1.5/);
    expect(() => resolveModelShape('tiny', { layers: 0 })).toThrow(/layers 0/);
  });
});

describe('makeCheckpointPair: tiny', () => {
  let dir: string;
  let pair: Awaited<ReturnType<typeof makeCheckpointPair>>;
  let instruct: LoadedModel;
  let thinking: LoadedModel;

  beforeAll(async () => {
    dir = freshDir();
    pair = await makeCheckpointPair({ dir, shape: 'tiny', seed: 7 });
    instruct = await loadModel(pair.instruct);
    thinking = await loadModel(pair.thinking);
  });

  test('writes one model.safetensors per model, no index, and the sidecar files', () => {
    for (const folder of [pair.instruct, pair.thinking]) {
      expect(fs.readdirSync(folder).sort()).toEqual([
        'config.json',
        'generation_config.json',
        'merges.txt',
        'model.safetensors',
        'tokenizer.json',
        'tokenizer_config.json',
        'vocab.json',
      ]);
    }
    expect(pair.tensors).toBe(47);
    expect(pair.bytesPerModel).toBe(361856);
  });

  test('holds the Qwen3 tensors, every module class among them, with __metadata__ format pt', () => {
    const header = instruct.headers.get('model.safetensors')!;
    expect(header.metadata).toEqual({ format: 'pt' });
    const expected = listModelTensors(resolveModelShape('tiny'));
    expect(header.tensors.map((t) => [t.name, t.shape, t.dtype]).sort()).toEqual(expected.map((t) => [t.name, t.shape, 'BF16']).sort());
    const classes = new Set(header.tensors.map((t) => classifyTensor(t.name).module));
    expect([...classes].sort()).toEqual(['attn', 'embed', 'final_norm', 'head', 'mlp', 'norm']);
  });

  test('lays tensor data out in name order, as the safetensors crate does', () => {
    const names = instruct.headers.get('model.safetensors')!.tensors.map((t) => t.name);
    expect(names).toEqual([...names].sort());
  });

  test('config.json describes the tensors that were written', () => {
    const config = readJson(path.join(pair.instruct, 'config.json'));
    expect(config).toMatchObject({
      architectures: ['Qwen3ForCausalLM'],
      model_type: 'qwen3',
      num_hidden_layers: 4,
      hidden_size: 64,
      intermediate_size: 128,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      vocab_size: 256,
      tie_word_embeddings: false,
      torch_dtype: 'bfloat16',
    });
    expect(fs.readFileSync(path.join(pair.thinking, 'config.json'), 'utf8')).toBe(fs.readFileSync(path.join(pair.instruct, 'config.json'), 'utf8'));
  });

  test('generation configs carry each model’s sampling settings', () => {
    expect(readJson(path.join(pair.instruct, 'generation_config.json'))).toMatchObject({ temperature: 0.7, top_p: 0.8 });
    expect(readJson(path.join(pair.thinking, 'generation_config.json'))).toMatchObject({ temperature: 0.6, top_p: 0.95, top_k: 20 });
  });

  test('chat templates differ: only Thinking’s opens <think>; tokenizer files are shared', () => {
    const instructTemplate = readJson(path.join(pair.instruct, 'tokenizer_config.json')).chat_template as string;
    const thinkingTemplate = readJson(path.join(pair.thinking, 'tokenizer_config.json')).chat_template as string;
    expect(thinkingTemplate).toContain('<think>');
    expect(instructTemplate).not.toContain('<think>');
    for (const file of ['tokenizer.json', 'vocab.json', 'merges.txt']) {
      expect(fs.readFileSync(path.join(pair.thinking, file)).equals(fs.readFileSync(path.join(pair.instruct, file)))).toBe(true);
    }
    expect(readJson(path.join(pair.instruct, 'tokenizer.json'))).toMatchObject({ model: { type: 'BPE' } });
  });

  test('Instruct weights look trained: projections ~ N(0, 0.02), norm gains ~ 1', () => {
    const bytes = tensorBytes(pair.instruct, instruct);
    const q = decodeAll(bytes.get('model.embed_tokens.weight')!, 'BF16');
    const mean = q.reduce((s, v) => s + v, 0) / q.length;
    const std = Math.sqrt(q.reduce((s, v) => s + (v - mean) ** 2, 0) / q.length);
    expect(Math.abs(mean)).toBeLessThan(0.001);
    expect(std).toBeGreaterThan(0.019);
    expect(std).toBeLessThan(0.021);
    const norm = decodeAll(bytes.get('model.layers.2.input_layernorm.weight')!, 'BF16');
    expect(norm.every((v) => v > 0.85 && v < 1.15)).toBe(true);
  });

  test('Thinking is Instruct moved by the paper’s 0.027 relative distance, sign for sign', () => {
    const a = tensorBytes(pair.instruct, instruct);
    const b = tensorBytes(pair.thinking, thinking);
    // 180k projection elements pin the distance; the 704 norm gains only roughly.
    expect(Math.abs(relativeDistance(a, b, 'BF16', (n) => !isNormGain(n)) / 0.027 - 1)).toBeLessThan(0.02);
    expect(Math.abs(relativeDistance(a, b, 'BF16', isNormGain) / 0.027 - 1)).toBeLessThan(0.15);
    const x = decodeAll(a.get('lm_head.weight')!, 'BF16');
    const y = decodeAll(b.get('lm_head.weight')!, 'BF16');
    expect(x.every((v, i) => Number.isFinite(y[i]) && Math.sign(v) === Math.sign(y[i]))).toBe(true);
    expect(x.filter((v, i) => v !== y[i]).length).toBeGreaterThan(x.length * 0.8);
  });

  test('refuses to write into a non-empty folder unless told to overwrite', async () => {
    const attempt = makeCheckpointPair({ dir, shape: 'tiny', seed: 7 });
    await expect(attempt).rejects.toBeInstanceOf(WeightmixError);
    await expect(makeCheckpointPair({ dir, shape: 'tiny', seed: 7 })).rejects.toMatchObject({ code: 'FixtureExists' });
    fs.writeFileSync(path.join(pair.instruct, 'stale-extra-file'), 'x');
    await makeCheckpointPair({ dir, shape: 'tiny', seed: 7, overwrite: true });
    expect(fs.existsSync(path.join(pair.instruct, 'stale-extra-file'))).toBe(false);
  });
});

describe('makeCheckpointPair: reduced-width Qwen3-30B-A3B (scale 64, all 48 layers)', () => {
  let pair: Awaited<ReturnType<typeof makeCheckpointPair>>;
  let instruct: LoadedModel;
  let thinking: LoadedModel;
  const progress: { bytesWritten: number; totalBytes: number }[] = [];

  beforeAll(async () => {
    pair = await makeCheckpointPair({
      dir: freshDir(),
      shape: 'qwen3-30b-a3b',
      scale: 64,
      shards: [16, 5],
      seed: 3,
      onProgress: (p) => progress.push(p),
    });
    instruct = await loadModel(pair.instruct);
    thinking = await loadModel(pair.thinking);
  });

  test('has the real 18,867 tensors: 288 attn, 18,480 mlp, 96 norm, embed, final norm, lm_head', () => {
    expect(pair.tensors).toBe(18867);
    for (const model of [instruct, thinking]) {
      const names = [...model.headers.values()].flatMap((h) => h.tensors.map((t) => t.name));
      expect(new Set(names).size).toBe(18867);
      const counts: Partial<Record<ModuleClass, number>> = {};
      for (const name of names) {
        const { module } = classifyTensor(name);
        counts[module] = (counts[module] ?? 0) + 1;
      }
      expect(counts).toEqual({ attn: 288, mlp: 18480, norm: 96, embed: 1, final_norm: 1, head: 1 });
    }
  });

  test('shards as HF names them, with different counts for the two models', () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`);
    expect(instruct.files).toEqual(names(16));
    expect(thinking.files).toEqual(names(5));
  });

  test('each index maps every tensor to the shard that holds it, and total_size is the data size', () => {
    for (const model of [instruct, thinking]) {
      expect(model.index).not.toBeNull();
      expect(Object.keys(model.index!.weight_map)).toHaveLength(18867);
      let total = 0;
      const misplaced: string[] = [];
      for (const [name, file] of model.location) {
        const entry = model.headers.get(file)?.byName.get(name);
        if (entry) total += entry.byteLength;
        else misplaced.push(`${name} → ${file}`);
      }
      expect(misplaced).toEqual([]);
      expect(model.index!.metadata.total_size).toBe(total);
      expect(total).toBe(pair.bytesPerModel);
      const dataInShards = [...model.headers.values()].reduce((n, h) => n + h.fileSize - h.dataStart, 0);
      expect(dataInShards).toBe(total);
    }
  });

  test('shards follow module order (embeddings first, lm_head last) and are balanced by bytes', () => {
    for (const model of [instruct, thinking]) {
      const headers = model.files.map((f) => model.headers.get(f)!);
      expect(headers[0].byName.has('model.embed_tokens.weight')).toBe(true);
      expect(headers[headers.length - 1].byName.has('lm_head.weight')).toBe(true);
      expect(headers[headers.length - 1].byName.has('model.norm.weight')).toBe(true);
      let lastLayer = -1;
      for (const header of headers) {
        const layers = header.tensors.map((t) => classifyTensor(t.name).layer).filter((l): l is number => l !== null);
        expect(Math.min(...layers)).toBeGreaterThanOrEqual(lastLayer);
        lastLayer = Math.max(...layers);
        const share = (header.fileSize - header.dataStart) / pair.bytesPerModel;
        expect(share).toBeGreaterThan(0.7 / headers.length);
        expect(share).toBeLessThan(1.3 / headers.length);
      }
    }
  });

  test('shapes are the real ones narrowed by 64', () => {
    const where = instruct.location.get('model.layers.47.mlp.experts.127.up_proj.weight')!;
    expect(instruct.headers.get(where)!.byName.get('model.layers.47.mlp.experts.127.up_proj.weight')!.shape).toEqual([12, 32]);
    const config = readJson(path.join(pair.instruct, 'config.json'));
    expect(config).toMatchObject({
      architectures: ['Qwen3MoeForCausalLM'],
      model_type: 'qwen3_moe',
      num_hidden_layers: 48,
      hidden_size: 32,
      moe_intermediate_size: 12,
      num_experts: 128,
      num_experts_per_tok: 8,
      tie_word_embeddings: false,
      vocab_size: 2374,
    });
  });

  test('both layouts hold the same tensor data per name, Thinking about 0.027 away', () => {
    const a = tensorBytes(pair.instruct, instruct);
    const b = tensorBytes(pair.thinking, thinking);
    expect(Math.abs(relativeDistance(a, b, 'BF16', (n) => !isNormGain(n)) / 0.027 - 1)).toBeLessThan(0.02);
    expect(Math.abs(relativeDistance(a, b, 'BF16') / 0.027 - 1)).toBeLessThan(0.05);
  });

  test('reports progress ending at the full byte count', () => {
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[progress.length - 1]).toEqual({ bytesWritten: 2 * pair.bytesPerModel, totalBytes: 2 * pair.bytesPerModel });
  });
});

describe('makeCheckpointPair: determinism and options', () => {
  const make = (options: Partial<CheckpointPairOptions>) => makeCheckpointPair({ dir: freshDir(), shape: 'tiny', ...options });
  const bytesOf = async (folder: string) => tensorBytes(folder, await loadModel(folder));

  test('the same seed gives byte-identical files; another seed different data', async () => {
    const first = await make({ seed: 42, shards: [2, 3] });
    const second = await make({ seed: 42, shards: [2, 3] });
    const other = await make({ seed: 43, shards: [2, 3] });
    for (const variant of ['instruct', 'thinking'] as const) {
      for (const file of fs.readdirSync(first[variant])) {
        expect(fs.readFileSync(path.join(second[variant], file)).equals(fs.readFileSync(path.join(first[variant], file)))).toBe(true);
      }
    }
    const a = await bytesOf(first.instruct);
    const c = await bytesOf(other.instruct);
    for (const [name, bytes] of a) expect(c.get(name)!.equals(bytes)).toBe(false);
  });

  test('tensor data depends on the seed and name only, not on the shard layout', async () => {
    const one = await make({ seed: 5, shards: [1, 4] });
    const three = await make({ seed: 5, shards: [3, 2] });
    for (const variant of ['instruct', 'thinking'] as const) {
      const a = await bytesOf(one[variant]);
      const b = await bytesOf(three[variant]);
      expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
      for (const [name, bytes] of a) expect(b.get(name)!.equals(bytes)).toBe(true);
    }
  });

  test('odd widths (scale 3) still give layout-independent data, whatever the chunk alignment', async () => {
    const one = await make({ seed: 9, scale: 3, shards: [1, 1] });
    const other = await make({ seed: 9, scale: 3, shards: [4, 3] });
    const a = await bytesOf(one.instruct);
    expect([...a.values()].some((bytes) => (bytes.length / 2) % 2 === 1)).toBe(true);
    for (const variant of ['instruct', 'thinking'] as const) {
      const x = await bytesOf(one[variant]);
      const y = await bytesOf(other[variant]);
      for (const [name, bytes] of x) expect(y.get(name)!.equals(bytes)).toBe(true);
    }
    const distance = relativeDistance(a, await bytesOf(one.thinking), 'BF16', (n) => !isNormGain(n));
    expect(Math.abs(distance / 0.027 - 1)).toBeLessThan(0.03);
  });

  test('neighbouring elements are uncorrelated (elements are drawn in pairs)', async () => {
    const pair = await make({ seed: 1 });
    const values = decodeAll((await bytesOf(pair.instruct)).get('model.embed_tokens.weight')!, 'BF16');
    for (const lag of [1, 2]) {
      let sxy = 0;
      let sxx = 0;
      for (let i = 0; i + lag < values.length; i++) {
        sxy += values[i] * values[i + lag];
        sxx += values[i] * values[i];
      }
      expect(Math.abs(sxy / sxx)).toBeLessThan(0.02);
    }
  });

  test.each<[FixtureDtype, number]>([
    ['BF16', 0.1],
    ['F16', 0.027],
    ['F16', 0.005],
    ['F32', 0.027],
    ['F32', 0.001],
  ])('%s with delta %d: relative distance of the projections honoured within 3%%', async (dtype, delta) => {
    const pair = await make({ dtype, delta, seed: 11 });
    const header = (await loadModel(pair.instruct)).headers.get('model.safetensors')!;
    expect(header.tensors.every((t) => t.dtype === dtype)).toBe(true);
    const distance = relativeDistance(await bytesOf(pair.instruct), await bytesOf(pair.thinking), dtype, (n) => !isNormGain(n));
    expect(distance / delta).toBeGreaterThan(0.97);
    expect(distance / delta).toBeLessThan(1.03);
    expect(readJson(path.join(pair.instruct, 'config.json')).torch_dtype).toBe({ BF16: 'bfloat16', F16: 'float16', F32: 'float32' }[dtype]);
  });

  test('delta 0 makes the two models’ tensors identical', async () => {
    const pair = await make({ delta: 0, shards: [1, 2] });
    const a = await bytesOf(pair.instruct);
    const b = await bytesOf(pair.thinking);
    for (const [name, bytes] of a) expect(b.get(name)!.equals(bytes)).toBe(true);
  });

  test('layers overrides the layer count everywhere', async () => {
    const pair = await make({ shape: 'qwen3-4b', scale: 256, layers: 2, shards: [3, 1] });
    const model = await loadModel(pair.instruct);
    expect(model.location.size).toBe(2 + 2 * 11);
    expect(readJson(path.join(pair.instruct, 'config.json'))).toMatchObject({ num_hidden_layers: 2, tie_word_embeddings: true });
    expect(model.location.has('lm_head.weight')).toBe(false);
  });

  test.each<[string, Partial<CheckpointPairOptions>, RegExp]>([
    ['shape', { shape: 'qwen3-8b' as never }, /shape "qwen3-8b".*tiny/],
    ['dtype', { dtype: 'F64' as never }, /dtype "F64".*BF16, F16, F32/],
    ['seed', { seed: -1 }, /seed -1/],
    ['delta', { delta: 1 }, /delta 1/],
    ['shards', { shards: [0, 1] }, /shards 0/],
    ['shards above the tensor count', { shards: [1, 48] }, /shards 48.*47/],
    ['scale', { scale: 0.5 }, /scale 0.5/],
  ])('a bad %s is a usage error naming the accepted values', async (_what, options, message) => {
    const attempt = make(options);
    await expect(attempt).rejects.toMatchObject({ code: 'Usage', exitCode: 2 });
    await expect(make(options)).rejects.toThrow(message);
  });

  test('an aborted signal stops generation with an Aborted error', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(make({ signal: controller.signal })).rejects.toMatchObject({ code: 'Aborted' });
  });

  test('cancelling midway removes the half-written models', async () => {
    const dir = freshDir();
    const controller = new AbortController();
    const attempt = makeCheckpointPair({ dir, shape: 'qwen3-30b-a3b', scale: 64, shards: [16, 5], signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    await expect(attempt).rejects.toMatchObject({ code: 'Aborted' });
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('an existing Thinking folder is refused before the Instruct folder is touched', async () => {
    const dir = freshDir();
    fs.mkdirSync(path.join(dir, 'thinking'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'thinking', 'keep-me'), 'x');
    await expect(makeCheckpointPair({ dir, shape: 'tiny' })).rejects.toMatchObject({ code: 'FixtureExists' });
    expect(fs.readdirSync(dir)).toEqual(['thinking']);
    expect(fs.readdirSync(path.join(dir, 'thinking'))).toEqual(['keep-me']);
  });
});
