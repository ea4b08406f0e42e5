import { WeightmixError } from '../lib/errors';
import { classifyTensor, MODULE_CLASSES, moduleOfLayerPart, parseLayerRanges, parseModuleList, type ModuleClass } from '../lib/model/tensor-names';
import { parseSelection } from '../lib/model/selection';
import { rng } from './helpers/models';

/** One checkpoint family: the per-layer tensor suffixes and the tensors outside the layers, as the HF checkpoints name them. */
interface Family {
  name: string;
  layerPrefix: string;
  layers: number;
  perLayer: [suffix: string, module: ModuleClass][];
  global: [name: string, module: ModuleClass][];
}

const qwen3Attention: [string, ModuleClass][] = [
  ['self_attn.q_proj.weight', 'attn'],
  ['self_attn.k_proj.weight', 'attn'],
  ['self_attn.v_proj.weight', 'attn'],
  ['self_attn.o_proj.weight', 'attn'],
  ['self_attn.q_norm.weight', 'attn'],
  ['self_attn.k_norm.weight', 'attn'],
];
const llamaAttention: [string, ModuleClass][] = [
  ['self_attn.q_proj.weight', 'attn'],
  ['self_attn.k_proj.weight', 'attn'],
  ['self_attn.v_proj.weight', 'attn'],
  ['self_attn.o_proj.weight', 'attn'],
];
const denseMlp: [string, ModuleClass][] = [
  ['mlp.gate_proj.weight', 'mlp'],
  ['mlp.up_proj.weight', 'mlp'],
  ['mlp.down_proj.weight', 'mlp'],
];
const layerNorms: [string, ModuleClass][] = [
  ['input_layernorm.weight', 'norm'],
  ['post_attention_layernorm.weight', 'norm'],
];
const experts = (count: number, parts: string[], stem: string): [string, ModuleClass][] =>
  Array.from({ length: count }, (_, e) => parts.map((p): [string, ModuleClass] => [`${stem}.experts.${e}.${p}.weight`, 'mlp'])).flat();

const decoderGlobals = (tied: boolean): [string, ModuleClass][] => [
  ['model.embed_tokens.weight', 'embed'],
  ['model.norm.weight', 'final_norm'],
  ...(tied ? [] : [['lm_head.weight', 'head'] as [string, ModuleClass]]),
];

const FAMILIES: Family[] = [
  {
    name: 'Qwen3-4B (dense, tied embeddings, q/k norms)',
    layerPrefix: 'model.layers.',
    layers: 36,
    perLayer: [...qwen3Attention, ...denseMlp, ...layerNorms],
    global: decoderGlobals(true),
  },
  {
    name: 'Qwen3-30B-A3B (128 experts, router mlp.gate)',
    layerPrefix: 'model.layers.',
    layers: 48,
    perLayer: [...qwen3Attention, ['mlp.gate.weight', 'mlp'], ...experts(128, ['gate_proj', 'up_proj', 'down_proj'], 'mlp'), ...layerNorms],
    global: decoderGlobals(false),
  },
  {
    name: 'Qwen2-7B (q/k/v biases)',
    layerPrefix: 'model.layers.',
    layers: 28,
    perLayer: [
      ['self_attn.q_proj.weight', 'attn'],
      ['self_attn.q_proj.bias', 'attn'],
      ['self_attn.k_proj.weight', 'attn'],
      ['self_attn.k_proj.bias', 'attn'],
      ['self_attn.v_proj.weight', 'attn'],
      ['self_attn.v_proj.bias', 'attn'],
      ['self_attn.o_proj.weight', 'attn'],
      ...denseMlp,
      ...layerNorms,
    ],
    global: decoderGlobals(false),
  },
  {
    name: 'Qwen1.5-MoE-A2.7B (qwen2_moe: 60 experts plus a gated shared expert)',
    layerPrefix: 'model.layers.',
    layers: 24,
    perLayer: [
      ['self_attn.q_proj.weight', 'attn'],
      ['self_attn.q_proj.bias', 'attn'],
      ['self_attn.k_proj.weight', 'attn'],
      ['self_attn.k_proj.bias', 'attn'],
      ['self_attn.v_proj.weight', 'attn'],
      ['self_attn.v_proj.bias', 'attn'],
      ['self_attn.o_proj.weight', 'attn'],
      ['mlp.gate.weight', 'mlp'],
      ...experts(60, ['gate_proj', 'up_proj', 'down_proj'], 'mlp'),
      ['mlp.shared_expert.gate_proj.weight', 'mlp'],
      ['mlp.shared_expert.up_proj.weight', 'mlp'],
      ['mlp.shared_expert.down_proj.weight', 'mlp'],
      ['mlp.shared_expert_gate.weight', 'mlp'],
      ...layerNorms,
    ],
    global: decoderGlobals(false),
  },
  {
    name: 'Llama-3.1-8B',
    layerPrefix: 'model.layers.',
    layers: 32,
    perLayer: [...llamaAttention, ...denseMlp, ...layerNorms],
    global: decoderGlobals(false),
  },
  {
    name: 'Llama-2-7b-hf (stores the rotary inv_freq buffer under self_attn)',
    layerPrefix: 'model.layers.',
    layers: 32,
    perLayer: [...llamaAttention, ['self_attn.rotary_emb.inv_freq', 'attn'], ...denseMlp, ...layerNorms],
    global: decoderGlobals(false),
  },
  {
    name: 'Mistral-7B-v0.3',
    layerPrefix: 'model.layers.',
    layers: 32,
    perLayer: [...llamaAttention, ...denseMlp, ...layerNorms],
    global: decoderGlobals(false),
  },
  {
    name: 'Mixtral-8x7B (block_sparse_moe, experts w1/w2/w3)',
    layerPrefix: 'model.layers.',
    layers: 32,
    perLayer: [...llamaAttention, ['block_sparse_moe.gate.weight', 'mlp'], ...experts(8, ['w1', 'w2', 'w3'], 'block_sparse_moe'), ...layerNorms],
    global: decoderGlobals(false),
  },
  {
    name: 'Gemma-2-9B (pre/post feed-forward norms)',
    layerPrefix: 'model.layers.',
    layers: 42,
    perLayer: [...llamaAttention, ...denseMlp, ...layerNorms, ['pre_feedforward_layernorm.weight', 'norm'], ['post_feedforward_layernorm.weight', 'norm']],
    global: decoderGlobals(true),
  },
  {
    name: 'Qwen3-VL-8B (LM nested under model.language_model, vision blocks are not decoder layers)',
    layerPrefix: 'model.language_model.layers.',
    layers: 36,
    perLayer: [...qwen3Attention, ...denseMlp, ...layerNorms],
    global: [
      ['model.language_model.embed_tokens.weight', 'embed'],
      ['model.language_model.norm.weight', 'final_norm'],
      ['lm_head.weight', 'head'],
      ['model.visual.patch_embed.proj.weight', 'other'],
      ['model.visual.blocks.0.attn.qkv.weight', 'other'],
      ['model.visual.blocks.0.mlp.linear_fc1.weight', 'other'],
      ['model.visual.blocks.26.norm1.weight', 'other'],
      ['model.visual.merger.linear_fc2.bias', 'other'],
    ],
  },
  {
    name: 'GPT-2 (transformer.h.N)',
    layerPrefix: 'transformer.h.',
    layers: 12,
    perLayer: [
      ['ln_1.weight', 'norm'],
      ['ln_1.bias', 'norm'],
      ['attn.c_attn.weight', 'attn'],
      ['attn.c_attn.bias', 'attn'],
      ['attn.c_proj.weight', 'attn'],
      ['attn.c_proj.bias', 'attn'],
      ['ln_2.weight', 'norm'],
      ['ln_2.bias', 'norm'],
      ['mlp.c_fc.weight', 'mlp'],
      ['mlp.c_fc.bias', 'mlp'],
      ['mlp.c_proj.weight', 'mlp'],
      ['mlp.c_proj.bias', 'mlp'],
    ],
    global: [
      ['transformer.wte.weight', 'embed'],
      ['transformer.wpe.weight', 'other'],
      ['transformer.ln_f.weight', 'final_norm'],
      ['transformer.ln_f.bias', 'final_norm'],
    ],
  },
];

describe('classifyTensor', () => {
  describe.each(FAMILIES.map((f) => [f.name, f] as const))('%s', (_name, family) => {
    test('every per-layer tensor gets its layer index and module class', () => {
      const wrong: string[] = [];
      for (let layer = 0; layer < family.layers; layer++) {
        for (const [suffix, module] of family.perLayer) {
          const name = `${family.layerPrefix}${layer}.${suffix}`;
          const got = classifyTensor(name);
          if (got.layer !== layer || got.module !== module) {
            wrong.push(`${name}: got ${JSON.stringify(got)}, expected ${module}@${layer}`);
          }
        }
      }
      expect(wrong).toEqual([]);
    });

    test('tensors outside the decoder stack have no layer', () => {
      for (const [name, module] of family.global) {
        expect(classifyTensor(name)).toEqual({ layer: null, module });
      }
    });
  });

  test('Qwen3-30B-A3B lists 18,867 tensors, as its index does', () => {
    const moe = FAMILIES[1];
    expect(moe.layers * moe.perLayer.length + moe.global.length).toBe(18867);
  });

  test('an unknown per-layer tensor is "other" but keeps its layer', () => {
    expect(classifyTensor('model.layers.17.self_attn_gate.weight')).toEqual({ layer: 17, module: 'other' });
    expect(classifyTensor('model.layers.3.some_adapter.lora_A.weight')).toEqual({ layer: 3, module: 'other' });
  });

  test("the same classes as the regular expression it replaced, on random names built from the rules' pieces", () => {
    // The rule as one regular expression per name, kept here as the reference (a zero-padded index is no layer).
    const LAYER = /^(?:model\.layers|model\.language_model\.layers|language_model\.model\.layers|transformer\.h)\.(0|[1-9]\d*)\.(.+)$/;
    const reference = (name: string) => {
      const m = LAYER.exec(name);
      return m ? { layer: Number(m[1]), module: moduleOfLayerPart(m[2].split('.', 1)[0]) } : undefined;
    };
    const pieces = [
      'model',
      'layers',
      'language_model',
      'transformer',
      'h',
      '0',
      '7',
      '12',
      '007',
      '99999999999999999999',
      'x',
      '',
      'self_attn',
      'mlp',
      'input_layernorm',
      'experts',
      'weight',
      '\n',
      '\u2028',
      '\r',
      '١',
      'é',
      ' ',
    ];
    const seed = Number(process.env.WEIGHTMIX_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log('classifyTensor reference seed', seed, '(replay with WEIGHTMIX_SEED)');
    const next = rng(seed);
    for (let n = 0; n < 20000; n++) {
      const piece = () => pieces[Math.floor(next() * pieces.length)];
      // Mostly a layer prefix, an index and a tail of 0–3 pieces, so that the edges (no digits, empty tail, a line terminator) come up often.
      const head =
        next() < 0.7 ? ['model.layers', 'model.language_model.layers', 'language_model.model.layers', 'transformer.h'][Math.floor(next() * 4)] : piece();
      const tail = Array.from({ length: Math.floor(next() * 4) }, piece);
      const name = [head, piece(), ...tail].join(next() < 0.9 ? '.' : '');
      const want = reference(name);
      // Outside the layers, the whole-name rules (unchanged) decide: only the layer part is compared there.
      if (want) expect([name, classifyTensor(name)]).toEqual([name, want]);
      else expect([name, classifyTensor(name).layer]).toEqual([name, null]);
    }
  });

  test('names that only resemble the rules are not matched', () => {
    expect(classifyTensor('model.layers.x.mlp.up_proj.weight')).toEqual({ layer: null, module: 'other' });
    expect(classifyTensor('model.embed_tokens.bias')).toEqual({ layer: null, module: 'other' });
    expect(classifyTensor('model.norm.bias')).toEqual({ layer: null, module: 'other' });
    expect(classifyTensor('lm_head.bias')).toEqual({ layer: null, module: 'other' });
    expect(classifyTensor('model.rotary_emb.inv_freq')).toEqual({ layer: null, module: 'other' });
    expect(classifyTensor('')).toEqual({ layer: null, module: 'other' });
  });

  test('multi-digit layer indices are read whole; a zero-padded one is no layer (it would be layer 1 beside layers.1.)', () => {
    expect(classifyTensor('model.layers.123.mlp.experts.45.down_proj.weight')).toEqual({ layer: 123, module: 'mlp' });
    expect(classifyTensor('model.layers.0.mlp.up_proj.weight')).toEqual({ layer: 0, module: 'mlp' });
    expect(classifyTensor('model.layers.01.mlp.up_proj.weight')).toEqual({ layer: null, module: 'other' });
    expect(classifyTensor('transformer.h.00.attn.weight').layer).toBeNull();
  });
});

describe('MODULE_CLASSES', () => {
  test('lists the six user-selectable classes and not "other"', () => {
    expect([...MODULE_CLASSES]).toEqual(['attn', 'mlp', 'norm', 'embed', 'head', 'final_norm']);
  });
});

function usageErrorOf(fn: () => unknown): WeightmixError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightmixError);
    const err = e as WeightmixError;
    expect(err.code).toBe('Usage');
    expect(err.exitCode).toBe(2);
    return err;
  }
  throw new Error('expected a usage error');
}

describe('parseLayerRanges', () => {
  test.each<[string, [number, number][]]>([
    ['7', [[7, 7]]],
    ['0', [[0, 0]]],
    ['12-35', [[12, 35]]],
    [
      '12-35,40-41',
      [
        [12, 35],
        [40, 41],
      ],
    ],
    [
      ' 0-11 , 24 - 35 ',
      [
        [0, 11],
        [24, 35],
      ],
    ],
    ['3-3', [[3, 3]]],
    [
      '30-35,0-5',
      [
        [30, 35],
        [0, 5],
      ],
    ],
  ])('"%s" parses to inclusive ranges %j', (spec, expected) => {
    expect(parseLayerRanges(spec)).toEqual(expected);
  });

  test.each([
    ['5-3', /backwards/],
    ['a-b', /not a layer index or range/],
    ['', /empty/],
    ['   ', /empty/],
    ['-1', /not a layer index or range/],
    ['2--1', /not a layer index or range/],
    ['1,,2', /not a layer index or range/],
    ['1.5', /not a layer index or range/],
    ['3-', /not a layer index or range/],
    ['99999999999999999999', /out of range/],
  ])('"%s" is a usage error matching %s', (spec, message) => {
    expect(usageErrorOf(() => parseLayerRanges(spec)).message).toMatch(message);
  });
});

describe('parseModuleList', () => {
  test('parses a comma list, trimming spaces and collapsing duplicates', () => {
    expect(parseModuleList('attn,mlp')).toEqual(['attn', 'mlp']);
    expect(parseModuleList(' mlp , attn,mlp ')).toEqual(['mlp', 'attn']);
    expect(parseModuleList(MODULE_CLASSES.join(','))).toEqual([...MODULE_CLASSES]);
  });

  test.each(['ffn', 'other', 'attn,', '', 'ATTN'])('"%s" is a usage error naming the accepted classes', (spec) => {
    expect(usageErrorOf(() => parseModuleList(spec)).message).toContain('attn, mlp, norm, embed, head, final_norm');
  });
});

test("the API's layer pairs are checked as the command line's ranges: a backwards or fractional pair is a usage error", () => {
  expect(
    parseSelection({
      layers: [
        [12, 35],
        [0, 3],
      ],
    }).layers,
  ).toEqual([
    [12, 35],
    [0, 3],
  ]);
  const refusals: [unknown, RegExp][] = [
    [[[35, 12]], /runs backwards/],
    [[[0, 3.5]], /not a layer index or range/],
    [[[-1, 2]], /not a layer index or range/],
    [[[0, NaN]], /not a layer index or range/],
    [[], /empty/],
    [[[1]], /must be text like "12-35" or \[first, last\] pairs/],
    [7, /must be text like "12-35" or \[first, last\] pairs/],
  ];
  for (const [layers, why] of refusals) {
    let err: unknown;
    try {
      parseSelection({ layers: layers as [number, number][] }, (k) => k);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightmixError);
    expect((err as WeightmixError).code).toBe('Usage');
    expect((err as Error).message).toMatch(why);
  }
});
