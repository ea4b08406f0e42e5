/** mergekit recipes: every accepted key, parameter precedence, gradients, filters; every refusal's message is in recipe-refusals.test.ts. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, TensorLocation } from '../lib/model/checkpoint';
import { planOutputTensors, renameLayer } from '../lib/recipes/recipe-plan';
import { parseRecipe, readRecipeFile } from '../lib/recipes/recipe';
import { evaluateSetting, lookupParameter, ParameterScope, slicePosition, validateSetting } from '../lib/recipes/recipe-params';
import { dir, A, B, C, setUpRecipeModels, lin } from './helpers/recipe-models';

setUpRecipeModels();

describe('evaluateSetting (mergekit evaluate_setting)', () => {
  test('a scalar is the same for every tensor and position', () => {
    expect(evaluateSetting('x', 0.3, 0)).toBe(0.3);
    expect(evaluateSetting('x', true, 0.7)).toBe(true);
  });
  test('a numeric list is a piecewise-linear gradient over t ∈ [0, 1]', () => {
    expect(evaluateSetting('x', [0, 1], 0)).toBe(0);
    expect(evaluateSetting('x', [0, 1], 0.25)).toBeCloseTo(0.25, 15);
    expect(evaluateSetting('x', [0, 0.5, 1, 0], 1)).toBe(0);
    expect(evaluateSetting('x', [0, 0.5, 1, 0], 0.5)).toBeCloseTo(0.75, 15);
    expect(evaluateSetting('x', [0.2, 0.8], 1 / 3)).toBeCloseTo(0.4, 15);
  });
  test('a list of strings steps, not interpolates', () => {
    expect(evaluateSetting('x', ['a', 'b', 'c'], 0.6)).toBe('b');
    expect(evaluateSetting('x', ['a', 'b', 'c'], 1)).toBe('c');
  });
  test('filters: substring match, first match wins, the entry without a filter is the fallback', () => {
    const s = validateSetting([{ filter: 'self_attn', value: 0.1 }, { filter: 'attn', value: 0.2 }, { filter: 'mlp', value: [0, 1] }, { value: 0.9 }], 'p');
    expect(evaluateSetting('model.layers.3.self_attn.q_proj.weight', s, 0)).toBe(0.1);
    expect(evaluateSetting('model.layers.3.cross_attn.q_proj.weight', s, 0)).toBe(0.2);
    expect(evaluateSetting('model.layers.3.mlp.up_proj.weight', s, 0.5)).toBeCloseTo(0.5, 15);
    expect(evaluateSetting('model.norm.weight', s, 0)).toBe(0.9);
  });
  test("filter '*' is mergekit's wildcard: it matches every tensor, not the literal substring '*'", () => {
    const s = validateSetting([{ filter: 'mlp', value: 0.3 }, { filter: '*', value: 0.6 }, { value: 0.9 }], 'p');
    expect(evaluateSetting('model.layers.0.self_attn.q_proj.weight', s, 0)).toBe(0.6);
    expect(evaluateSetting('model.embed_tokens.weight', s, 0)).toBe(0.6);
    expect(evaluateSetting('model.layers.0.mlp.up_proj.weight', s, 0)).toBe(0.3);
  });
  test('a conditional list with no matching entry yields nothing (the next level decides)', () => {
    expect(evaluateSetting('model.norm.weight', [{ filter: 'mlp', value: 1 }], 0)).toBeUndefined();
  });
  test('slice position: layer i of n is at i / (n − 1); a one-layer slice is at t = 1', () => {
    expect(slicePosition(0, 5)).toBe(0);
    expect(slicePosition(4, 5)).toBe(1);
    expect(slicePosition(1, 5)).toBe(0.25);
    expect(slicePosition(0, 1)).toBe(1);
  });
});

describe('parameter precedence', () => {
  const scope = (over: Partial<ParameterScope> = {}): ParameterScope => ({
    tensorName: 'model.layers.0.mlp.up_proj.weight',
    t: 0,
    modelParams: new Map([
      [0, { weight: 0.1 }],
      [1, { weight: [{ filter: 'attn', value: 0.7 }] }],
    ]),
    sliceParams: { weight: 0.2, t: 0.4 },
    globalParams: { weight: 0.3, t: 0.5, normalize: false },
    ...over,
  });
  test('per-model parameters win over the slice, the slice over global', () => {
    expect(lookupParameter(scope(), 'weight', 0)).toBe(0.1);
    expect(lookupParameter(scope(), 't')).toBe(0.4);
    expect(lookupParameter(scope(), 'normalize')).toBe(false);
    expect(lookupParameter(scope({ sliceParams: undefined }), 't')).toBe(0.5);
  });
  test('a per-model conditional that does not match falls through to the slice', () => {
    expect(lookupParameter(scope(), 'weight', 1)).toBe(0.2);
    expect(lookupParameter(scope({ tensorName: 'model.layers.0.self_attn.k_proj.weight' }), 'weight', 1)).toBe(0.7);
  });
  test("a per-model lookup's filters match that model's source tensor, a method-wide one's the output tensor (mergekit's for_tensor)", () => {
    const renamed = scope({ tensorName: 'model.layers.3.mlp.up_proj.weight', sourceNames: new Map([[1, 'model.layers.0.self_attn.k_proj.weight']]) });
    expect(lookupParameter(renamed, 'weight', 1)).toBe(0.7);
    const wide = scope({ globalParams: { t: [{ filter: 'layers.3.', value: 0.9 }, { value: 0.1 }] }, sliceParams: undefined });
    expect(lookupParameter({ ...wide, sourceNames: new Map([[1, 'model.layers.0.mlp.up_proj.weight']]) }, 't')).toBe(0.1);
    expect(lookupParameter({ ...wide, tensorName: 'model.layers.3.mlp.up_proj.weight', sourceNames: new Map([[1, 'model.layers.0.x']]) }, 't')).toBe(0.9);
  });
  test('a model without parameters of its own takes the slice value; an absent name is undefined', () => {
    expect(lookupParameter(scope(), 'weight', 5)).toBe(0.2);
    expect(lookupParameter(scope(), 'density', 0)).toBeUndefined();
  });
});

/** A checkpoint with names only (layers × 2 tensors plus embeddings, norm and head). */
function fakeCheckpoint(dirName: string, layers: number): Checkpoint {
  const names = ['model.embed_tokens.weight'];
  for (let i = 0; i < layers; i++) names.push(`model.layers.${i}.self_attn.q_proj.weight`, `model.layers.${i}.mlp.up_proj.weight`);
  names.push('model.norm.weight', 'lm_head.weight');
  const tensors = new Map<string, TensorLocation>(
    names.map((n) => [n, { name: n, dtype: 'BF16', shape: [2], shard: 's', file: dirName, offset: 0, byteLength: 4, elementCount: 2 }]),
  );
  return { dir: dirName, shards: [], tensors, names, indexed: false, sidecars: [], config: { num_hidden_layers: layers }, tensorBytes: 0 };
}

describe('output tensors of a recipe', () => {
  test('renameLayer changes only the layer number', () => {
    expect(renameLayer('model.layers.12.mlp.experts.3.up_proj.weight', 40)).toBe('model.layers.40.mlp.experts.3.up_proj.weight');
  });

  test("a vision tower's blocks take a gradient by the tower's own depth in the models: form (mergekit: a slice per module); t = 0 in the slices: form", () => {
    const withTower = (name: string): Checkpoint => {
      const c = fakeCheckpoint(name, 4);
      const tower = [0, 1, 2].flatMap((i) => [`visual.blocks.${i}.attn.proj.weight`, `visual.blocks.${i}.mlp.fc1.weight`]);
      const names = [...c.names, 'visual.patch_embed.proj.weight', ...tower, 'visual.merger.mlp.0.weight'];
      const loc = c.tensors.get('model.norm.weight')!;
      return { ...c, names, tensors: new Map(names.map((n) => [n, { ...loc, name: n }])) };
    };
    const models = parseRecipe({
      merge_method: 'linear',
      models: [
        { model: A, parameters: { weight: [1, 0] } },
        { model: B, parameters: { weight: 1 } },
      ],
    });
    const t = (r: typeof models, name: string) => planOutputTensors(r, [withTower(A), withTower(B)]).tensors.find((x) => x.name === name)!.scope.t;
    expect([0, 1, 2].map((i) => t(models, `visual.blocks.${i}.mlp.fc1.weight`))).toEqual([0, 0.5, 1]);
    expect([0, 1, 2, 3].map((i) => t(models, `model.layers.${i}.mlp.up_proj.weight`))).toEqual([0, 1 / 3, 2 / 3, 1]);
    for (const name of ['visual.patch_embed.proj.weight', 'visual.merger.mlp.0.weight', 'model.norm.weight'])
      expect([name, t(models, name)]).toEqual([name, 0]);
    const slices = parseRecipe({
      merge_method: 'linear',
      slices: [{ sources: [A, B].map((model) => ({ model, layer_range: [0, 4], parameters: { weight: 1 } })) }],
    });
    expect(t(slices, 'visual.blocks.2.mlp.fc1.weight')).toBe(0);
  });

  test('passthrough slices stack into a deeper model: renumbered layers, sources at their own layers, t per slice', () => {
    const r = parseRecipe({
      merge_method: 'passthrough',
      slices: [{ sources: [{ model: A, layer_range: [0, 3] }] }, { sources: [{ model: B, layer_range: [1, 4] }] }],
    });
    const { tensors, layers, layerSources } = planOutputTensors(r, [fakeCheckpoint(A, 4), fakeCheckpoint(B, 4)]);
    expect(layers).toBe(6);
    expect(layerSources).toEqual([0, 1, 2, 1, 2, 3].map((layer, i) => ({ model: i < 3 ? 0 : 1, layer })));
    expect(tensors.map((t) => t.name)[0]).toBe('model.embed_tokens.weight');
    expect(tensors.map((t) => t.name).slice(-2)).toEqual(['model.norm.weight', 'lm_head.weight']);
    const l4 = tensors.find((t) => t.name === 'model.layers.4.mlp.up_proj.weight')!;
    expect(l4.sources).toEqual([{ model: 1, name: 'model.layers.2.mlp.up_proj.weight' }]);
    expect(l4.scope.t).toBe(0.5);
    // A per-source filter names the source's layer (B's layer 2), not the output's (4).
    expect(lookupParameter({ ...l4.scope, modelParams: new Map([[1, { scale: [{ filter: 'layers.2.', value: 0 }, { value: 1 }] }]]) }, 'scale', 1)).toBe(0);
    // mergekit: embeddings from the first slice, final norm and lm_head from the last.
    expect(tensors.find((t) => t.name === 'model.embed_tokens.weight')!.sources).toEqual([{ model: 0, name: 'model.embed_tokens.weight' }]);
    expect(tensors.find((t) => t.name === 'model.norm.weight')!.sources).toEqual([{ model: 1, name: 'model.norm.weight' }]);
    expect(tensors.find((t) => t.name === 'lm_head.weight')!.sources).toEqual([{ model: 1, name: 'lm_head.weight' }]);
  });

  test('slices: form: tensors outside the layers take the first slice (embeddings) or the last (norm, head), with their per-source and slice parameters', () => {
    const r = parseRecipe({
      merge_method: 'linear',
      parameters: { weight: 9 },
      slices: [
        {
          sources: [
            { model: A, layer_range: [0, 2], parameters: { weight: 0.25 } },
            { model: B, layer_range: [0, 2], parameters: { weight: 0.75 } },
          ],
        },
        {
          sources: [
            { model: A, layer_range: [2, 4] },
            { model: C, layer_range: [2, 4], parameters: { weight: 0.5 } },
          ],
          parameters: { weight: 0.1 },
        },
      ],
    });
    const { tensors } = planOutputTensors(r, [fakeCheckpoint(A, 4), fakeCheckpoint(B, 4), fakeCheckpoint(C, 4)]);
    const embed = tensors.find((t) => t.name === 'model.embed_tokens.weight')!;
    expect(embed.sources.map((s) => s.model)).toEqual([0, 1]);
    expect([lookupParameter(embed.scope, 'weight', 0), lookupParameter(embed.scope, 'weight', 1)]).toEqual([0.25, 0.75]);
    for (const name of ['model.norm.weight', 'lm_head.weight']) {
      const t = tensors.find((x) => x.name === name)!;
      expect(t.sources.map((s) => s.model)).toEqual([0, 2]);
      expect([lookupParameter(t.scope, 'weight', 0), lookupParameter(t.scope, 'weight', 2)]).toEqual([0.1, 0.5]);
      expect(t.scope.t).toBe(0);
    }
  });

  test('non-layer tensors take gradients at t = 0 and the models: form per-model parameters', () => {
    const r = parseRecipe({
      merge_method: 'linear',
      models: [
        { model: A, parameters: { weight: [1, 0] } },
        { model: B, parameters: { weight: [0, 1] } },
      ],
    });
    const { tensors } = planOutputTensors(r, [fakeCheckpoint(A, 3), fakeCheckpoint(B, 3)]);
    const head = tensors.find((t) => t.name === 'lm_head.weight')!;
    expect(head.scope.t).toBe(0);
    expect(lookupParameter(head.scope, 'weight', 0)).toBe(1);
    const last = tensors.find((t) => t.name === 'model.layers.2.mlp.up_proj.weight')!;
    expect(lookupParameter(last.scope, 'weight', 1)).toBe(1);
    const mid = tensors.find((t) => t.name === 'model.layers.1.mlp.up_proj.weight')!;
    expect(lookupParameter(mid.scope, 'weight', 0)).toBe(0.5);
  });

  test("a base model not among a slice's sources joins it at the same layers (task arithmetic)", () => {
    const r = parseRecipe({
      merge_method: 'task_arithmetic',
      base_model: C,
      slices: [{ sources: [{ model: A, layer_range: [2, 4], parameters: { weight: 1 } }] }],
    });
    const { tensors } = planOutputTensors(r, [fakeCheckpoint(A, 4), fakeCheckpoint(C, 4)]);
    const t = tensors.find((x) => x.name === 'model.layers.0.self_attn.q_proj.weight')!;
    expect(t.sources).toEqual([
      { model: 0, name: 'model.layers.2.self_attn.q_proj.weight' },
      { model: 1, name: 'model.layers.2.self_attn.q_proj.weight' },
    ]);
  });

  test("a layer_range past the model's depth is refused by name", () => {
    const r = parseRecipe({ merge_method: 'passthrough', slices: [{ sources: [{ model: A, layer_range: [0, 9] }] }] });
    expect(() => planOutputTensors(r, [fakeCheckpoint(A, 4)])).toThrow(/layer_range \[0,9\] goes past the 4 layers/);
  });
});

describe('accepted keys', () => {
  test('models, merge_method, base_model, parameters, dtype, out_dtype, tokenizer_source, random_seed', () => {
    const r = parseRecipe({
      merge_method: 'task_arithmetic',
      base_model: C,
      models: [
        { model: A, parameters: { weight: 0.7 } },
        { model: B, parameters: { weight: 0.7 } },
      ],
      parameters: { normalize: false, lambda: 1 },
      dtype: 'float32',
      out_dtype: 'bfloat16',
      tokenizer_source: B,
      random_seed: 42,
    });
    expect(r.method).toBe('task_arithmetic');
    expect(r.models).toEqual([A, B, C]);
    expect(r.base).toBe(2);
    expect(r.form).toBe('models');
    expect(r.parameters).toEqual({ normalize: false, lambda: 1 });
    expect(r.modelParameters.get(0)).toEqual({ weight: 0.7 });
    expect(r.dtype).toBe('F32');
    expect(r.outDtype).toBe('BF16');
    expect(r.tokenizerSource).toBe(1);
    expect(r.randomSeed).toBe(42);
  });

  test("as mergekit's validator: models: null or [] beside slices is no list; filter: null is no filter", () => {
    for (const models of [null, []]) {
      const r = parseRecipe({ merge_method: 'passthrough', models, slices: [{ sources: [{ model: A, layer_range: [0, 1] }] }] });
      expect(r.form).toBe('slices');
    }
    expect(parseRecipe({ ...lin(), slices: [] }).form).toBe('models');
    expect(parseRecipe(lin({ parameters: { normalize: [{ filter: null, value: false }] } })).parameters).toEqual({ normalize: [{ value: false }] });
  });
  test("YAML as PyYAML's safe_load reads it: merge keys, and an alias recurring in a 120-slice passthrough", () => {
    const merged = parseRecipe(
      `merge_method: linear\nmodels:\n  - model: ${JSON.stringify(A)}\n    parameters: &p {weight: 0.5}\n  - model: ${JSON.stringify(B)}\n    parameters:\n      <<: *p\n`,
    );
    expect(merged.modelParameters.get(1)).toEqual({ weight: 0.5 });
    const slices = Array.from({ length: 120 }, (_, i) => `  - sources: [{model: ${i === 0 ? `&m ${JSON.stringify(A)}` : '*m'}, layer_range: [0, 1]}]`);
    expect(parseRecipe(`merge_method: passthrough\nslices:\n${slices.join('\n')}\n`).slices).toHaveLength(120);
  });
  test('slices with sources, layer_range and parameters at slice and source level; tokenizer_source: base', () => {
    const r = parseRecipe({
      merge_method: 'task_arithmetic',
      base_model: A,
      slices: [
        {
          sources: [
            { model: A, layer_range: [0, 2] },
            { model: B, layer_range: [2, 4], parameters: { weight: 0.1 } },
          ],
          parameters: { lambda: [0, 1] },
        },
      ],
      tokenizer_source: 'base',
    });
    expect(r.form).toBe('slices');
    expect(r.slices[0].sources[1]).toEqual({ model: 1, layerRange: [2, 4], parameters: { weight: 0.1 } });
    expect(r.slices[0].parameters).toEqual({ lambda: [0, 1] });
    expect(r.tokenizerSource).toBe(0);
  });

  test('YAML text with relative model paths resolved against baseDir; a models entry may be a bare path', async () => {
    const text = 'merge_method: model_stock\nbase_model: c\nmodels:\n  - a\n  - model: b\n';
    const r = parseRecipe(text, { baseDir: dir });
    expect(r.models).toEqual([A, B, C]);
    const file = path.join(dir, 'r.yml');
    fs.writeFileSync(file, text);
    await expect(readRecipeFile(file)).rejects.toThrow(/model folder not found: a/);
    await expect(readRecipeFile(path.join(dir, 'none.yml'))).rejects.toThrow(/recipe file not found/);
  });

  test("a tensor's parameter may be a gradient or a filter list at every level", () => {
    expect(() => parseRecipe(lin({ parameters: { normalize: [{ filter: 'norm', value: false }, { value: true }] } }))).not.toThrow();
  });
});

describe('${NAME} in model paths is the environment variable NAME', () => {
  const env = () => ({ INSTRUCT: A, THINKING: B, DIR: dir });

  test('every model path is expanded, also inside a longer path; other values are not', () => {
    const r = parseRecipe(
      {
        merge_method: 'task_arithmetic',
        base_model: '${DIR}/c',
        models: [
          { model: '${INSTRUCT}', parameters: { weight: 1 } },
          { model: '${THINKING}', parameters: { weight: 1 } },
        ],
        tokenizer_source: '${THINKING}',
      },
      { env: env() },
    );
    expect(r.models).toEqual([A, B, C]);
    expect(r.modelNames).toEqual([A, B, `${dir}/c`]);
    expect(r.tokenizerSource).toBe(1);
    const slices = parseRecipe({ merge_method: 'passthrough', slices: [{ sources: [{ model: '${INSTRUCT}', layer_range: [0, 2] }] }] }, { env: env() });
    expect(slices.models).toEqual([A]);
    expect(() => parseRecipe(lin({ dtype: '${DTYPE}' }), { env: { DTYPE: 'bfloat16' } })).toThrow(/dtype: expected one of/);
  });

  test('process.env by default, from YAML text too', () => {
    process.env.WEIGHTMIX_TEST_MODEL_A = A;
    try {
      expect(parseRecipe('merge_method: linear\nmodels:\n  - model: ${WEIGHTMIX_TEST_MODEL_A}\n    parameters: {weight: 1}\n').models).toEqual([A]);
    } finally {
      delete process.env.WEIGHTMIX_TEST_MODEL_A;
    }
  });

  test('an unset or empty variable is a one-line error naming it', () => {
    const recipe = {
      merge_method: 'linear',
      models: [
        { model: '${INSTRUCT}', parameters: { weight: 1 } },
        { model: '${THINKING}', parameters: { weight: 1 } },
      ],
    };
    expect(() => parseRecipe(recipe, { env: { INSTRUCT: A } })).toThrow(/^models\[1\]\.model: recipe uses \$\{THINKING\} but it is not set$/);
    expect(() => parseRecipe(recipe, { env: { INSTRUCT: A, THINKING: '' } })).toThrow(/^models\[1\]\.model: recipe uses \$\{THINKING\} but it is empty$/);
    // A name of an object's prototype is no variable.
    expect(() => parseRecipe({ merge_method: 'linear', models: [{ model: '${constructor}', parameters: { weight: 1 } }] }, { env: {} })).toThrow(
      /^models\[0\]\.model: recipe uses \$\{constructor\} but it is not set$/,
    );
    // A variable's value is text, as process.env's.
    expect(() => parseRecipe(recipe, { env: { INSTRUCT: A, THINKING: 1 as never } })).toThrow(
      "parseRecipe: option 'env': variable 'THINKING' must be a string, got 1",
    );
    expect(() => parseRecipe({ ...recipe, base_model: '${BASE}' }, { env: env() })).toThrow(/^base_model: recipe uses \$\{BASE\} but it is not set$/);
  });
});
