import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { classifyTensor, type ModuleClass } from '../lib/model/tensor-names';
import { setUpFixtureRoot, freshDir, type LoadedModel, loadModel, tensorBytes, isNormGain, relativeDistance, readJson } from './helpers/checkpoint-pair';

setUpFixtureRoot();

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
