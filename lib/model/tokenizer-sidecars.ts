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
// A tiktoken vocabulary (qwen.tiktoken), and a remote-code tokenizer's class (tokenization_qwen.py) beside it.
const TIKTOKEN_OR_CODE = /^(?:[A-Za-z0-9_.-]+\.tiktoken|tokenization_[A-Za-z0-9_]+\.py)$/;

/**
 * A tokenizer file or a chat template file (`chat_template.jinja`, `chat_template.json`, `chat_template.NAME.jinja`), a tiktoken
 * vocabulary, or a remote-code tokenizer's `tokenization_*.py`.
 */
export function isTokenizerSidecar(name: string): boolean {
  return TOKENIZER_FILES.has(name) || CHAT_TEMPLATE.test(name) || TIKTOKEN_OR_CODE.test(name);
}
