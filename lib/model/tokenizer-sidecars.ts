/** Which of a model folder's sidecar files make up its tokenizer (and chat template), as transformers saves one. */

const TOKENIZER_FILES = new Set([
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
]);
const CHAT_TEMPLATE = /^chat_template(\.[A-Za-z0-9_-]+)?\.(jinja|json)$/;

/** A tokenizer file or a chat template file (`chat_template.jinja`, `chat_template.json`, `chat_template.NAME.jinja`). */
export function isTokenizerSidecar(name: string): boolean {
  return TOKENIZER_FILES.has(name) || CHAT_TEMPLATE.test(name);
}
