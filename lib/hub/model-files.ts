/** Which files of a hub repo a merge needs: the safetensors weights, their index, config and tokenizer files. */
import type { RepoFile } from './api';

export const HUB_INDEX_FILE = 'model.safetensors.index.json';

/** Sidecars a merged model carries over, and what `score --tokenizer` reads. */
const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
];
const CONFIG_FILES = ['config.json', 'generation_config.json'];
const CHAT_TEMPLATE = /^chat_template(\.[A-Za-z0-9_-]+)?\.(jinja|json)$/;

/** What a purpose needs: everything for a merge, the tokenizer files (and config) for token counting, a PEFT LoRA adapter's two files. */
export type HubPurpose = 'model' | 'tokenizer' | 'adapter';
const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];

/**
 * Top-level files only (never `original/`, never *.bin, *.pth, *.gguf or ONNX). The weights are
 * `model.safetensors`, or the index and — once it is read — the shards it names (`shards`).
 */
export function neededFiles(files: RepoFile[], purpose: HubPurpose, shards?: ReadonlySet<string>): RepoFile[] {
  const top = files.filter((f) => !f.path.includes('/'));
  const names = new Set(top.map((f) => f.path));
  const wanted = (name: string) => {
    if (purpose === 'adapter') return ADAPTER_FILES.includes(name);
    if (TOKENIZER_FILES.includes(name) || CHAT_TEMPLATE.test(name) || name === 'config.json') return true;
    if (purpose === 'tokenizer') return false;
    if (CONFIG_FILES.includes(name)) return true;
    if (names.has(HUB_INDEX_FILE)) return name === HUB_INDEX_FILE || (shards?.has(name) ?? false);
    if (names.has('model.safetensors')) return name === 'model.safetensors';
    return name.endsWith('.safetensors');
  };
  return top.filter((f) => wanted(f.path));
}
