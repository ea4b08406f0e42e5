/** --layers / --modules / --skip-modules against a model's tensors: a skip that would change nothing is refused, not ignored. */
import * as path from 'node:path';
import { interpolate } from '../lib/interpolation/interpolate';
import { checkSkippedModulesExist, parseSelection, type SelectionInput } from '../lib/model/selection';
import { qwen3Names, rng, writeRandomBf16Model } from './helpers/models';
import { dir, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-selection-');

test('skipping a module class the model has none of is a usage error; the tied head names embed', async () => {
  // qwen3Names: embeddings, layers and final norm, no lm_head (a tied model, as Qwen3-4B).
  const next = rng(3);
  const [a, b] = await Promise.all(['a', 'b'].map((tag) => writeRandomBf16Model(path.join(dir, tag), qwen3Names(2), next, tag)));
  await expect(interpolate({ instruct: a, thinking: b, lambda: 0.8, output: path.join(dir, 'out'), skipModules: 'head' })).rejects.toMatchObject({
    code: 'Usage',
    message:
      'skipModules head: the model has no head tensor, so skipping it would change nothing (its embeddings are tied, tie_word_embeddings: embed_tokens is its head; skip embed to keep it)',
  });
  // Selecting only the head a tied model lacks matches nothing: the refusal says why, as the skip's does.
  await expect(interpolate({ instruct: a, thinking: b, lambda: 0.8, output: path.join(dir, 'out'), modules: 'head' })).rejects.toMatchObject({
    code: 'Usage',
    message: `the selection (all layers, modules head) matches none of the ${qwen3Names(2).length} tensors: nothing would be interpolated (the model has no head tensor; its embeddings are tied, tie_word_embeddings: embed_tokens is its head, select embed to interpolate it)`,
  });
  const summary = await interpolate({ instruct: a, thinking: b, lambda: 0.8, output: path.join(dir, 'out'), skipModules: 'embed' });
  expect(summary.selectedTensors).toBe(qwen3Names(2).length - 1);
  expect(() => checkSkippedModulesExist(parseSelection({ skipModules: 'attn,norm' }), ['model.layers.0.mlp.up_proj.weight'])).toThrow(
    /^--skip-modules attn: the model has no attn tensor, so skipping it would change nothing$/,
  );
});

test("an array naming a class outside the selectable ones ('other', a typo) is Usage naming the option; the type leaves 'other' out", () => {
  const api = (k: string) => k;
  expect(() => parseSelection({ modules: ['attn', 'other'] as never }, api)).toThrow(
    /^modules: unknown module class "other" \(accepted: attn, mlp, norm, embed, head, final_norm\)$/,
  );
  expect(() => parseSelection({ skipModules: ['mpl'] as never })).toThrow(/^--skip-modules: unknown module class "mpl" /);
  // @ts-expect-error: 'other' is no SelectableModule (ModuleClass allowed it, and the run then refused it)
  const other: SelectionInput['modules'] = ['other'];
  expect(other).toEqual(['other']);
});
