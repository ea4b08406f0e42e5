/** mergekit's `chat_template` key: a template's text, a built-in name or `auto`, written as transformers 5 saves it. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { merge } from '../lib/recipes/merge-recipe';
import { parseRecipe } from '../lib/recipes/recipe';
import { BUILT_IN_CHAT_TEMPLATES, parseChatTemplate } from '../lib/recipes/chat-template';
import { dir, freshPath, useTempDir } from './helpers/temp-dir';

let A: string;
let B: string;
let C: string;

useTempDir('weightmix-chat-');

beforeAll(async () => {
  const pair = await makeCheckpointPair({ dir: path.join(dir, 'pair'), shape: 'tiny', seed: 5 });
  [A, B] = [pair.instruct, pair.thinking];
  // C: a copy of B whose template lives in chat_template.jinja (it wins over tokenizer_config.json's entry).
  C = path.join(dir, 'c');
  await fs.promises.cp(B, C, { recursive: true });
}, 60000);

const template = (m: string) => JSON.parse(fs.readFileSync(path.join(m, 'tokenizer_config.json'), 'utf8')).chat_template as string;
const recipe = (models: string[], chat: unknown) => ({
  merge_method: 'linear',
  models: models.map((model) => ({ model, parameters: { weight: 1 } })),
  chat_template: chat,
});

async function mergeWith(models: string[], chat: unknown): Promise<{ jinja: string | null; config: Record<string, unknown> }> {
  const out = freshPath('out');
  await merge(parseRecipe(recipe(models, chat)), { output: out, threads: 2 });
  const file = path.join(out, 'chat_template.jinja');
  return {
    jinja: fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null,
    config: JSON.parse(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8')),
  };
}

describe('parsing', () => {
  test('auto, a built-in name and a literal template; mergekit refuses a short or brace-less string, weightmix too', () => {
    expect(parseChatTemplate('auto')).toEqual({ kind: 'auto' });
    expect(parseChatTemplate('chatml')).toEqual({ kind: 'text', text: BUILT_IN_CHAT_TEMPLATES.chatml });
    const literal = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
    expect(parseChatTemplate(literal)).toEqual({ kind: 'text', text: literal });
    expect(parseChatTemplate(undefined)).toBeNull();
    expect(() => parseChatTemplate('vicuna')).toThrow(
      /chat_template: "vicuna" is neither a built-in name \(chatml, llama3, mistral, auto\) nor a Jinja template/,
    );
    expect(() => parseChatTemplate('a long string without any braces')).toThrow(/neither a built-in name/);
    expect(() => parseChatTemplate(3)).toThrow(/expected a template/);
  });
  test("mergekit's alpaca and exaone are refused with the reason", () => {
    expect(() => parseChatTemplate('alpaca')).toThrow(/chat_template: alpaca is not supported: .*no newline between an instruction and "### Response:"/);
    expect(() => parseChatTemplate('exaone')).toThrow(/chat_template: exaone is not supported: .*indentation/);
  });
});

describe('the merged model carries the template', () => {
  test('without chat_template the tokenizer source is copied as it is', async () => {
    const { jinja, config } = await mergeWith([A, B], undefined);
    expect(jinja).toBeNull();
    expect(config.chat_template).toBe(template(A));
  });
  test("a built-in name: weightmix's template in chat_template.jinja, none left in tokenizer_config.json", async () => {
    const { jinja, config } = await mergeWith([A, B], 'llama3');
    expect(jinja).toBe(BUILT_IN_CHAT_TEMPLATES.llama3);
    expect(config).not.toHaveProperty('chat_template');
    expect(config.eos_token).toBe('<|im_end|>');
  });
  test('a literal template is written as given', async () => {
    const literal = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}";
    expect((await mergeWith([A, B], literal)).jinja).toBe(literal);
  });
  test('auto: the most common template, trimmed; a tie goes to the model named first; chat_template.jinja wins over the config entry', async () => {
    expect(template(A)).not.toBe(template(B));
    expect((await mergeWith([A, B, C], 'auto')).jinja).toBe(template(B).trim());
    expect((await mergeWith([B, A], 'auto')).jinja).toBe(template(B).trim());
    expect((await mergeWith([A, B], 'auto')).jinja).toBe(template(A).trim());
    fs.writeFileSync(path.join(C, 'chat_template.jinja'), '  {{ messages[0].content }} from the file\n');
    expect((await mergeWith([C, A, B], 'auto')).jinja).toBe('{{ messages[0].content }} from the file');
    fs.rmSync(path.join(C, 'chat_template.jinja'));
  });
  test('auto with no model carrying a template leaves the tokenizer as it is', async () => {
    const bare = [path.join(dir, 'bare-a'), path.join(dir, 'bare-b')];
    for (const [i, m] of [A, B].entries()) {
      await fs.promises.cp(m, bare[i], { recursive: true });
      const file = path.join(bare[i], 'tokenizer_config.json');
      const config = JSON.parse(fs.readFileSync(file, 'utf8'));
      delete config.chat_template;
      fs.writeFileSync(file, JSON.stringify(config));
    }
    const { jinja, config } = await mergeWith(bare, 'auto');
    expect(jinja).toBeNull();
    expect(config).not.toHaveProperty('chat_template');
  });
});
