/**
 * mergekit's `chat_template`: the output's tokenizer gets a chat template, given as the template
 * text itself, as the name of a built-in template, or as `auto` (the template most of the recipe's
 * models carry). It is written as transformers 5 saves a single template: `chat_template.jinja`, the
 * `chat_template` entry of tokenizer_config.json removed (the file wins over the entry when loading).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import type { Checkpoint } from '../model/checkpoint';
import { confinedRealPath } from '../model/paths';
import { parseJsonStrict } from '../format/json-strict';

export const CHAT_TEMPLATE_FILE = 'chat_template.jinja';
const TOKENIZER_CONFIG = 'tokenizer_config.json';

/** What the recipe asked for: the most common template of its models, or a template's text. */
export type ChatTemplateSetting = { kind: 'auto' } | { kind: 'text'; text: string };

/**
 * weightmix's own templates for mergekit's built-in names, written to render exactly what mergekit's
 * files render under transformers' Jinja settings (trim_blocks, lstrip_blocks); the side-by-side test compares them.
 */
export const BUILT_IN_CHAT_TEMPLATES: Readonly<Record<string, string>> = Object.freeze({
  chatml:
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  // mergekit's llama3 ends every turn with a newline after <|eot_id|>, unlike Meta's template, and fails without a bos_token: both kept.
  llama3:
    "{% for m in messages %}{{ (bos_token if loop.first else '') + '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  mistral:
    "{%- set has_system = messages[0]['role'] == 'system' -%}{{- bos_token -}}" +
    '{%- for m in (messages[1:] if has_system else messages) -%}' +
    "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}{{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') -}}{%- endif -%}" +
    "{%- if m['role'] == 'user' -%}{{- ' [INST] ' + (messages[0]['content'] + '\\n\\n' if has_system and loop.first else '') + m['content'] + ' [/INST]' -}}" +
    "{%- elif m['role'] == 'assistant' -%}{{- ' ' + m['content'] + eos_token -}}" +
    "{%- else -%}{{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') -}}{%- endif -%}" +
    '{%- endfor -%}',
});

/** mergekit's other built-in names, refused: their files render malformed prompts, which weightmix will not reproduce silently. */
export const REFUSED_CHAT_TEMPLATES: Readonly<Record<string, string>> = Object.freeze({
  alpaca: 'mergekit\'s alpaca template puts no newline between an instruction and "### Response:" and starts with two blank lines without a system message',
  exaone: "mergekit's exaone template leaks its own indentation (spaces and blank lines) into every prompt",
});

/** The recipe's `chat_template` value → what to write; mergekit's check for a literal template (≥ 20 characters with a '{'). */
export function parseChatTemplate(value: unknown): ChatTemplateSetting | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value === '') throw new WeightmixError('InvalidRecipe', 'chat_template: expected a template, a built-in name or "auto"');
  if (value === 'auto') return { kind: 'auto' };
  if (Object.hasOwn(BUILT_IN_CHAT_TEMPLATES, value)) return { kind: 'text', text: BUILT_IN_CHAT_TEMPLATES[value] };
  if (Object.hasOwn(REFUSED_CHAT_TEMPLATES, value)) {
    throw new WeightmixError(
      'UnsupportedRecipe',
      `chat_template: ${value} is not supported: ${REFUSED_CHAT_TEMPLATES[value]} (give the template text instead)`,
    );
  }
  if (value.length < 20 || !value.includes('{')) {
    const names = [...Object.keys(BUILT_IN_CHAT_TEMPLATES), 'auto'].join(', ');
    throw new WeightmixError('InvalidRecipe', `chat_template: ${JSON.stringify(value)} is neither a built-in name (${names}) nor a Jinja template`);
  }
  return { kind: 'text', text: value };
}

function readJsonObject(ckpt: Checkpoint, name: string): Record<string, unknown> {
  const file = confinedRealPath(ckpt.dir, name, ckpt.dir);
  const doc = parseJsonStrict(fs.readFileSync(file, 'utf8'), { what: file, maxDepth: 64 });
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new WeightmixError('InvalidRecipe', `${file}: not a JSON object`);
  return doc as Record<string, unknown>;
}

/** A model's chat template as transformers loads it: chat_template.jinja, else tokenizer_config.json's entry (a list: its "default"). */
export function modelChatTemplate(ckpt: Checkpoint): string | null {
  if (ckpt.sidecars.includes(CHAT_TEMPLATE_FILE)) return fs.readFileSync(confinedRealPath(ckpt.dir, CHAT_TEMPLATE_FILE, ckpt.dir), 'utf8');
  if (!ckpt.sidecars.includes(TOKENIZER_CONFIG)) return null;
  const entry = readJsonObject(ckpt, TOKENIZER_CONFIG).chat_template;
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry)) {
    const named = entry.find((t) => typeof t === 'object' && t !== null && (t as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    if (typeof named?.template === 'string') return named.template;
  }
  return null;
}

/**
 * The template to write, or null for none (`auto` when no model has one: mergekit leaves the tokenizer
 * as it is). `auto` takes the most common of the models' templates, trimmed; a tie goes to the model
 * named first in the recipe (mergekit's order there is its set's iteration order).
 */
export function chooseChatTemplate(setting: ChatTemplateSetting | null, ckpts: Checkpoint[]): string | null {
  if (setting === null) return null;
  if (setting.kind === 'text') return setting.text;
  const counts = new Map<string, number>();
  for (const ckpt of ckpts) {
    const t = modelChatTemplate(ckpt)?.trim();
    if (t) counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  let best: string | null = null;
  for (const [t, n] of counts) if (best === null || n > counts.get(best)!) best = t;
  return best;
}

/** Writes `text` as the output's template: chat_template.jinja, and no competing entry in tokenizer_config.json. */
export async function writeChatTemplate(dir: string, text: string): Promise<void> {
  await fs.promises.writeFile(path.join(dir, CHAT_TEMPLATE_FILE), text);
  const config = path.join(dir, TOKENIZER_CONFIG);
  if (!fs.existsSync(config)) return;
  const doc = JSON.parse(await fs.promises.readFile(config, 'utf8')) as Record<string, unknown>;
  if (!('chat_template' in doc)) return;
  delete doc.chat_template;
  await fs.promises.writeFile(config, JSON.stringify(doc, null, 2) + '\n');
}
