import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../lib/errors';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { decodeFloat, encodeFloat } from '../lib/format/float-bits';
import { elementCount, listModelTensors, resolveModelShape } from '../lib/fixtures/model-shapes';
import { classifyTensor } from '../lib/model/tensor-names';
import {
  setUpFixtureRoot,
  freshDir,
  type LoadedModel,
  loadModel,
  tensorBytes,
  decodeAll,
  isNormGain,
  relativeDistance,
  readJson,
} from './helpers/checkpoint-pair';

setUpFixtureRoot();

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
