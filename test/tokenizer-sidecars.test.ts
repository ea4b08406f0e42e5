/** Which sidecars are the tokenizer: what `tokenizer_source` gives a recipe's output, and what the hub fetches for a tokenizer. */
import { isTokenizerSidecar } from '../lib/model/tokenizer-sidecars';

test('tokenizer files, chat templates, tiktoken vocabularies and remote-code tokenizer classes; not the config or the model code', () => {
  const tokenizer = ['tokenizer.json', 'merges.txt', 'chat_template.tool_use.jinja', 'qwen.tiktoken', 'tokenization_qwen.py'];
  const other = ['config.json', 'generation_config.json', 'modeling_qwen.py', 'configuration_qwen.py', 'README.md', 'tiktoken', 'tokenization_.py', 'a.py'];
  expect(tokenizer.filter((n) => !isTokenizerSidecar(n))).toEqual([]);
  expect(other.filter(isTokenizerSidecar)).toEqual([]);
});
