/** The architectures fixtures imitate: real Qwen3 hyper-parameters, and the tensors HF checkpoints hold for them. */
import { usageError } from './errors';

export type FixtureShapeName = 'qwen3-4b' | 'qwen3-30b-a3b' | 'tiny';
export const FIXTURE_SHAPES: readonly FixtureShapeName[] = Object.freeze(['qwen3-4b', 'qwen3-30b-a3b', 'tiny'] as const);

export interface MoeShape {
  experts: number;
  expertsPerToken: number;
  /** Rows of each expert's gate/up projection (`moe_intermediate_size`). */
  intermediate: number;
}

export interface ModelShape {
  name: FixtureShapeName;
  modelType: 'qwen3' | 'qwen3_moe';
  architecture: 'Qwen3ForCausalLM' | 'Qwen3MoeForCausalLM';
  layers: number;
  hidden: number;
  /** Dense MLP width (for MoE models: config's `intermediate_size`, unused by the tensors). */
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  /** Tied embeddings: the checkpoint holds no `lm_head.weight`. */
  tiedEmbeddings: boolean;
  moe: MoeShape | null;
  ropeTheta: number;
  maxPositions: number;
  /** Shard count of the released checkpoints (Qwen3-*-2507), the default for fixtures. */
  shards: number;
}

/** Values from the released Qwen3-4B-{Instruct,Thinking}-2507 and Qwen3-30B-A3B-{Instruct,Thinking}-2507 config.json files. */
export const MODEL_SHAPES: Readonly<Record<FixtureShapeName, ModelShape>> = Object.freeze({
  'qwen3-4b': {
    name: 'qwen3-4b',
    modelType: 'qwen3',
    architecture: 'Qwen3ForCausalLM',
    layers: 36,
    hidden: 2560,
    intermediate: 9728,
    heads: 32,
    kvHeads: 8,
    headDim: 128,
    vocab: 151936,
    tiedEmbeddings: true,
    moe: null,
    ropeTheta: 5000000,
    maxPositions: 262144,
    shards: 3,
  },
  'qwen3-30b-a3b': {
    name: 'qwen3-30b-a3b',
    modelType: 'qwen3_moe',
    architecture: 'Qwen3MoeForCausalLM',
    layers: 48,
    hidden: 2048,
    intermediate: 6144,
    heads: 32,
    kvHeads: 4,
    headDim: 128,
    vocab: 151936,
    tiedEmbeddings: false,
    moe: { experts: 128, expertsPerToken: 8, intermediate: 768 },
    ropeTheta: 10000000,
    maxPositions: 262144,
    shards: 16,
  },
  // Qwen3-shaped but untied (like Qwen3-8B), so every module class has a tensor.
  tiny: {
    name: 'tiny',
    modelType: 'qwen3',
    architecture: 'Qwen3ForCausalLM',
    layers: 4,
    hidden: 64,
    intermediate: 128,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    vocab: 256,
    tiedEmbeddings: false,
    moe: null,
    ropeTheta: 1000000,
    maxPositions: 4096,
    shards: 1,
  },
});

/**
 * A shape with its widths divided by `scale` (hidden, intermediate, expert width, vocabulary and
 * head_dim, each at least 1; head and expert counts kept so tensor names and counts stay real)
 * and optionally another layer count.
 */
export function resolveModelShape(name: FixtureShapeName, options: { scale?: number; layers?: number } = {}): ModelShape {
  const base = MODEL_SHAPES[name];
  if (!base) throw usageError(`shape "${String(name)}": expected one of ${FIXTURE_SHAPES.join(', ')}`);
  const scale = options.scale ?? 1;
  if (!Number.isSafeInteger(scale) || scale < 1) {
    throw usageError(`scale ${scale}: expected a whole width divisor of 1 or more`);
  }
  const layers = options.layers ?? base.layers;
  if (!Number.isSafeInteger(layers) || layers < 1) throw usageError(`layers ${layers}: expected a whole number of 1 or more`);
  const narrow = (width: number) => Math.max(1, Math.floor(width / scale));
  return {
    ...base,
    layers,
    hidden: narrow(base.hidden),
    intermediate: narrow(base.intermediate),
    headDim: narrow(base.headDim),
    vocab: narrow(base.vocab),
    moe: base.moe && { ...base.moe, intermediate: narrow(base.moe.intermediate) },
  };
}

/** How a tensor's values are drawn: `normal` ~ N(0, 0.02) like trained projections, `norm` ~ N(1, 0.02) like RMSNorm gains. */
export type TensorInit = 'normal' | 'norm';

export interface FixtureTensor {
  name: string;
  shape: number[];
  init: TensorInit;
}

/** Every tensor of the checkpoint in HF state_dict (module) order: embeddings, layers 0..N-1, final norm, lm_head. */
export function listModelTensors(shape: ModelShape): FixtureTensor[] {
  const { hidden, headDim } = shape;
  const qWidth = shape.heads * headDim;
  const kvWidth = shape.kvHeads * headDim;
  const tensors: FixtureTensor[] = [{ name: 'model.embed_tokens.weight', shape: [shape.vocab, hidden], init: 'normal' }];
  for (let layer = 0; layer < shape.layers; layer++) {
    const p = `model.layers.${layer}.`;
    tensors.push(
      { name: `${p}self_attn.q_proj.weight`, shape: [qWidth, hidden], init: 'normal' },
      { name: `${p}self_attn.k_proj.weight`, shape: [kvWidth, hidden], init: 'normal' },
      { name: `${p}self_attn.v_proj.weight`, shape: [kvWidth, hidden], init: 'normal' },
      { name: `${p}self_attn.o_proj.weight`, shape: [hidden, qWidth], init: 'normal' },
      { name: `${p}self_attn.q_norm.weight`, shape: [headDim], init: 'norm' },
      { name: `${p}self_attn.k_norm.weight`, shape: [headDim], init: 'norm' },
    );
    if (shape.moe) {
      const width = shape.moe.intermediate;
      tensors.push({ name: `${p}mlp.gate.weight`, shape: [shape.moe.experts, hidden], init: 'normal' });
      for (let e = 0; e < shape.moe.experts; e++) {
        tensors.push(
          { name: `${p}mlp.experts.${e}.gate_proj.weight`, shape: [width, hidden], init: 'normal' },
          { name: `${p}mlp.experts.${e}.up_proj.weight`, shape: [width, hidden], init: 'normal' },
          { name: `${p}mlp.experts.${e}.down_proj.weight`, shape: [hidden, width], init: 'normal' },
        );
      }
    } else {
      tensors.push(
        { name: `${p}mlp.gate_proj.weight`, shape: [shape.intermediate, hidden], init: 'normal' },
        { name: `${p}mlp.up_proj.weight`, shape: [shape.intermediate, hidden], init: 'normal' },
        { name: `${p}mlp.down_proj.weight`, shape: [hidden, shape.intermediate], init: 'normal' },
      );
    }
    tensors.push(
      { name: `${p}input_layernorm.weight`, shape: [hidden], init: 'norm' },
      { name: `${p}post_attention_layernorm.weight`, shape: [hidden], init: 'norm' },
    );
  }
  tensors.push({ name: 'model.norm.weight', shape: [hidden], init: 'norm' });
  if (!shape.tiedEmbeddings) tensors.push({ name: 'lm_head.weight', shape: [shape.vocab, hidden], init: 'normal' });
  return tensors;
}

/** Number of elements of a tensor shape. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}
