/** mergekit recipes: every refusal's message names what it refuses. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NOT_YET_SUPPORTED } from '../lib/recipes/methods';
import { MERGE_METHOD_NAMES } from '../lib/merge-method-names';
import { parseRecipe, readRecipeFile } from '../lib/recipes/recipe';
import { dir, A, B, C, setUpRecipeModels, lin } from './helpers/recipe-models';

setUpRecipeModels();

describe('refusals name what they refuse', () => {
  const refuses = (doc: unknown, message: RegExp) => expect(() => parseRecipe(doc as Record<string, unknown>)).toThrow(message);

  test("an unknown top-level key; a module other than mergekit's 'default' with its reason (the default module: recipe-modules.test.ts)", () => {
    // A key that looks like a misspelling of one weightmix reads (others are ignored, as mergekit ignores them: recipe-mergekit-leniency.test.ts).
    refuses(lin({ base_modle: A }), /^recipe: unsupported key 'base_modle' \(did you mean 'base_model'\?\)$/);
    const modules = (m: Record<string, unknown>) => ({ merge_method: 'linear', modules: m });
    refuses(
      modules({ text_decoder: { models: [{ model: A }] } }),
      /modules: 'text_decoder' is not supported: weightmix merges one module, mergekit's 'default'.*vision tower/,
    );
    refuses(modules({}), /^modules: names no module; give 'default' with its models or slices$/);
    refuses(lin({ modules: { default: { models: [{ model: A }] } } }), /give exactly one of 'models', 'slices' or 'modules'/);
    refuses(modules({ default: { models: [{ model: A }], paramters: {} } }), /modules.default: unsupported key 'paramters' \(did you mean 'parameters'\?\)/);
    expect(parseRecipe(modules({ default: { models: [{ model: A, parameters: { weight: 1 } }], name: 'text' } })).ignored).toEqual([
      "modules.default: key 'name' ignored: weightmix reads no such key here (mergekit ignores it too)",
    ]);
    refuses(modules({ default: { parameters: { weight: 1 } } }), /modules.default: give exactly one of 'models' or 'slices'/);
    refuses(
      modules({ default: { models: [{ model: A, parameters: { wieght: 1 } }] } }),
      /models\[0\].parameters: merge_method linear takes no parameter 'wieght' \(did you mean 'weight'\?\)/,
    );
  });
  test('keys in a models entry, a slice and a source', () => {
    refuses(
      { merge_method: 'linear', models: [{ model: A, paramters: { weight: 1 } }] },
      /models\[0\]: unsupported key 'paramters' \(did you mean 'parameters'\?\)/,
    );
    refuses(
      { merge_method: 'passthrough', slices: [{ sources: [{ model: A, layer_range: [0, 1] }], base: A }] },
      /slices\[0\]: unsupported key 'base' \(did you mean 'base_model'\?\)/,
    );
    // mergekit declares a slice's residual_weight and never reads it: accepted, as the no-op it is there.
    expect(parseRecipe({ merge_method: 'passthrough', slices: [{ sources: [{ model: A, layer_range: [0, 1] }], residual_weight: 1 }] }).slices).toHaveLength(1);
    refuses(
      { merge_method: 'passthrough', slices: [{ sources: [{ model: A, layer_ranges: [0, 1] }] }] },
      /slices\[0\].sources\[0\]: unsupported key 'layer_ranges' \(did you mean 'layer_range'\?\)/,
    );
    refuses(lin({ parameters: { weight: [{ filter: 'mlp', value: 1, extra: 2 }] } }), /unsupported key 'extra'/);
    // A method-wide parameter in a model's own entry: mergekit never reads it there (it would be ignored silently).
    refuses(
      {
        merge_method: 'linear',
        models: [
          { model: A, parameters: { weight: 1, normalize: false } },
          { model: B, parameters: { weight: 1 } },
        ],
      },
      /^models\[0\]\.parameters: 'normalize' is method-wide for merge_method linear: mergekit reads it only from a parameters: block \(recipe, module or slice\), never from a model's own, so here it has no effect; move it there$/,
    );
    refuses(
      {
        merge_method: 'slerp',
        base_model: A,
        slices: [
          {
            sources: [
              { model: A, layer_range: [0, 1] },
              { model: B, layer_range: [0, 1], parameters: { t: 0.1 } },
            ],
          },
        ],
      },
      /^slices\[0\]\.sources\[1\]\.parameters: 't' is method-wide for merge_method slerp/,
    );
    refuses(
      { merge_method: 'ties', base_model: C, models: [{ model: A, parameters: { weight: 1, density: 0.5, lambda: 2, int8_mask: true } }] },
      /'lambda', 'int8_mask' are method-wide/,
    );
    // mergekit's models: form adds the base as a second source, which passthrough cannot take.
    refuses(
      { merge_method: 'passthrough', base_model: B, models: [{ model: A }] },
      /passthrough takes exactly one model; base_model .* is not among the models/,
    );
  });
  // mergekit a6e4028's merge methods (merge_methods/registry.py and the @merge_method ones): all run, none refused by name.
  const MERGEKIT_METHODS = [
    'linear',
    'slerp',
    'nuslerp',
    'passthrough',
    'model_stock',
    'arcee_fusion',
    'karcher',
    'task_arithmetic',
    'ties',
    'dare_ties',
    'dare_linear',
    'breadcrumbs',
    'breadcrumbs_ties',
    'della',
    'della_linear',
    'multislerp',
    'nearswap',
    'ram',
    'ramplus_tl',
    'sce',
  ];
  test('every mergekit merge method runs: none is refused by name', () => {
    expect(NOT_YET_SUPPORTED).toEqual([]);
    expect([...MERGE_METHOD_NAMES].sort()).toEqual([...MERGEKIT_METHODS].sort());
  });
  test('an unknown merge_method, or none', () => {
    refuses({ ...lin(), merge_method: 'frobnicate' }, /merge_method "frobnicate" is unknown/);
    refuses({ models: [{ model: A }] }, /'merge_method' is required/);
  });
  test('parameters a method does not take, at each level', () => {
    // Misspellings of a parameter the method takes (any other is ignored, as mergekit ignores it: recipe-mergekit-leniency.test.ts).
    refuses(lin({ parameters: { normalise: true } }), /^parameters: merge_method linear takes no parameter 'normalise' \(did you mean 'normalize'\?\)$/);
    refuses({ merge_method: 'linear', models: [{ model: A, parameters: { weigth: 1 } }] }, /models\[0\].parameters: .*'weigth' \(did you mean 'weight'\?\)/);
    refuses(
      { merge_method: 'passthrough', slices: [{ sources: [{ model: A, layer_range: [0, 1] }], parameters: { scales: 1 } }] },
      /slices\[0\].parameters: merge_method passthrough takes no parameter 'scales' \(did you mean 'scale'\?\)/,
    );
  });
  test('hub ids are kept as written (resolved when the merge opens them), a LoRA adapter too; missing folders are refused', () => {
    const hub = parseRecipe({ merge_method: 'linear', models: [{ model: 'Qwen/Qwen3-4B-Instruct-2507' }, { model: 'Qwen/Qwen3-4B-Thinking-2507@v1.0' }] });
    expect(hub.models).toEqual(['Qwen/Qwen3-4B-Instruct-2507', 'Qwen/Qwen3-4B-Thinking-2507@v1.0']);
    expect(parseRecipe({ merge_method: 'linear', models: [{ model: `${A}+some/lora` }] }).adapters).toEqual(['some/lora']);
    refuses({ merge_method: 'linear', models: [{ model: path.join(dir, 'missing') }] }, /model folder not found/);
  });
  test('structure: both or neither of models/slices, bad layer_range, unequal slice sources, duplicates', () => {
    refuses({ merge_method: 'linear' }, /exactly one of 'models' or 'slices'/);
    refuses({ ...lin(), slices: [{ sources: [{ model: A, layer_range: [0, 1] }] }] }, /exactly one of 'models' or 'slices'/);
    refuses({ merge_method: 'passthrough', slices: [{ sources: [{ model: A, layer_range: [3, 1] }] }] }, /layer_range: expected \[start, end\)/);
    refuses(
      {
        merge_method: 'linear',
        slices: [
          {
            sources: [
              { model: A, layer_range: [0, 2] },
              { model: B, layer_range: [0, 3] },
            ],
          },
        ],
      },
      /same number of layers/,
    );
    refuses({ merge_method: 'linear', models: [{ model: A }, { model: A }] }, /listed twice/);
    refuses(
      {
        merge_method: 'linear',
        slices: [
          {
            sources: [
              { model: A, layer_range: [0, 2] },
              { model: A, layer_range: [2, 4] },
            ],
          },
        ],
      },
      /appears twice in one slice/,
    );
  });
  test('values: dtype names, a token source outside the merge, random_seed, parameter shapes', () => {
    refuses(lin({ dtype: 'bf16' }), /dtype: expected one of bfloat16, float16, float32/);
    refuses(lin({ out_dtype: 'int8' }), /out_dtype: expected one of/);
    refuses(lin({ dtype: 'constructor' }), /dtype: expected one of/); // not a property of the name table
    // mergekit's dtype_from_name drops a leading torch.
    expect([parseRecipe(lin({ dtype: 'torch.bfloat16' })).dtype, parseRecipe(lin({ out_dtype: 'torch.float32' })).outDtype]).toEqual(['BF16', 'F32']);
    refuses(lin({ dtype: 'torch.bf16' }), /dtype: expected one of .*got "torch.bf16"/);
    expect(parseRecipe(lin({ tokenizer_source: 'union' })).vocabularyFrom).toBe('union'); // supported now: recipe-tokenizer-union.test.ts
    refuses(lin({ tokenizer_source: 'base' }), /'base' needs a base_model/);
    // A model outside the merge gives its tokenizer alone (recipe-tokenizer-union.test.ts); a token's source must be a recipe model.
    expect(parseRecipe(lin({ tokenizer_source: C }))).toMatchObject({ vocabularyFrom: 'outside', outsideTokenizer: { model: C, name: C } });
    refuses(lin({ tokenizer: { source: 'union', tokens: { x: { source: C } } } }), /is not one of the recipe's models/);
    refuses(lin({ random_seed: -1 }), /random_seed: expected a non-negative integer/);
    refuses(lin({ parameters: { normalize: { a: 1 } } }), /expected a number, a boolean, a string, a gradient list/);
    refuses(lin({ parameters: { normalize: [] } }), /an empty list has no value/);
    refuses(lin({ parameters: { normalize: [1, { value: 2 }] } }), /only numbers\/strings \(a gradient\) or only \{filter, value\}/);
    refuses(lin({ parameters: { normalize: [{ filter: 'x' }] } }), /needs a 'value'/);
  });
  test("a value of the wrong kind for its parameter, wherever it is: refused as the recipe is read, not at the first tensor after the models' download", () => {
    const models = (weight: unknown) => ({
      merge_method: 'linear',
      models: [
        { model: A, parameters: { weight } },
        { model: B, parameters: { weight: 1 } },
      ],
    });
    // A decimal number as text is the number, as pydantic reads mergekit's float parameters.
    expect(parseRecipe(models('0.5')).slices[0].sources[0].parameters.weight).toBe(0.5);
    refuses(models([0, 'x']), /^models\[0\]\.parameters\.weight\[1\]: 'weight' takes a number, got "x"$/);
    refuses(models([{ filter: 'mlp', value: 1 }, { value: true }]), /^models\[0\]\.parameters\.weight\[1\]\.value: 'weight' takes a number, got true$/);
    refuses(lin({ parameters: { normalize: 'yes' } }), /^parameters\.normalize: 'normalize' takes true or false, got "yes"$/);
    refuses(lin({ parameters: { normalize: 2 } }), /'normalize' takes true or false, got 2/);
    const ties = (parameters: Record<string, unknown>) => ({
      merge_method: 'ties',
      base_model: A,
      parameters,
      models: [{ model: B, parameters: { weight: 1 } }],
    });
    refuses(ties({ density: '50%' }), /^parameters\.density: 'density' takes a number, got "50%"$/);
    // The kinds each reader takes stay accepted: numbers and gradients, true/false and 0/1, rescale's 'inverse' and consensus_method's names.
    for (const doc of [
      models(0.5),
      models([0, 1]),
      lin({ parameters: { normalize: 1 } }),
      ties({ density: [0.2, 0.8], rescale: 'inverse', consensus_method: 'count' }),
    ])
      expect(() => parseRecipe(doc)).not.toThrow();
    // A parameter the method does not take is named as such, whatever its value.
    refuses(ties({ lamda: 'x' }), /merge_method ties takes no parameter 'lamda' \(did you mean 'lambda'\?\)/);
  });
  test('method preconditions: base models and model counts', () => {
    refuses({ merge_method: 'slerp', models: [{ model: A }, { model: B }], parameters: { t: 0.5 } }, /slerp needs a base_model/);
    refuses(
      { merge_method: 'slerp', base_model: A, models: [{ model: A }, { model: B }, { model: C }], parameters: { t: 0.5 } },
      /slerp merges exactly two models, the recipe names 3/,
    );
    refuses({ merge_method: 'task_arithmetic', models: [{ model: A, parameters: { weight: 1 } }] }, /task_arithmetic needs a base_model/);
    refuses({ merge_method: 'model_stock', base_model: A, models: [{ model: B }] }, /model_stock needs at least two models besides the base/);
    refuses({ merge_method: 'model_stock', models: [{ model: B }, { model: C }] }, /model_stock needs a base_model/);
    refuses(
      {
        merge_method: 'passthrough',
        slices: [
          {
            sources: [
              { model: A, layer_range: [0, 1] },
              { model: B, layer_range: [0, 1] },
            ],
          },
        ],
      },
      /passthrough takes exactly one source per slice/,
    );
  });
  test('YAML errors: one line that names line and column', () => {
    const cases: [string, RegExp][] = [
      ['models: [a\n', /at line 2, column 1$/],
      ['merge_method: linear\nmodels:\n  - model: a\n  model: b\n', /All mapping items must start at the same column at line 4, column 1$/],
      ['merge_method: linear\nmodels:\n  - model: a\n   parameters: 1\n', /Sequence item without - indicator at line 4, column 1$/],
      ['merge_method: linear\nmodels:\n\t- model: a\n', /Tabs are not allowed as indentation at line 3, column 1$/],
      ['merge_method: "linear\n', /Missing closing "quote at line 2, column 1$/],
      ['merge_method: linear\n---\nmodels: []\n', /multiple documents.* at line 2, column 1$/],
    ];
    for (const [text, message] of cases) {
      let err: unknown;
      try {
        parseRecipe(text);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'InvalidRecipe', message: expect.stringMatching(/^the recipe is not valid YAML: /) });
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toMatch(message);
    }
    expect(() => parseRecipe('merge_method: *m\n')).toThrow(/^the recipe is not valid YAML: [^\n]*alias[^\n]*$/i);
    // A billion laughs: nine levels of ten aliases each.
    const laughs = ['a0: &a0 [x]', ...Array.from({ length: 9 }, (_, i) => `a${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]`)].join('\n');
    expect(() => parseRecipe(`${laughs}\nmerge_method: linear\n`)).toThrow(/^the recipe is not valid YAML: [^\n]*(alias|resource)[^\n]*$/i);
  });

  test('a folder or a special file given as the recipe', async () => {
    await expect(readRecipeFile(A)).rejects.toMatchObject({
      code: 'RecipeNotAFile',
      message: `${A} is a directory: merge takes a YAML recipe file (e.g. examples/mi-0.8.yml)`,
    });
    await expect(readRecipeFile('/dev/null')).rejects.toMatchObject({ code: 'RecipeNotAFile', message: expect.stringMatching(/is not a regular file/) });
  });

  test('a recipe path that is a loop of links is unreadable, not missing', async () => {
    const [one, two] = [path.join(dir, 'loop-1.yml'), path.join(dir, 'loop-2.yml')];
    fs.symlinkSync(two, one);
    fs.symlinkSync(one, two);
    await expect(readRecipeFile(one)).rejects.toMatchObject({ code: 'RecipeUnreadable', message: `cannot read recipe file ${one}: a loop of symbolic links` });
  });
});
