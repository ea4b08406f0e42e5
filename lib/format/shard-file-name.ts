/** How Hugging Face names a model's safetensors files. */

/** Shard `index` (from 0) of `count`, numbered: `model-00001-of-00003.safetensors`. */
export function numberedShardFileName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/** Shard `index` (from 0) of `count`: `model.safetensors` when it is the only one, else numbered. */
export function shardFileName(index: number, count: number): string {
  return count === 1 ? 'model.safetensors' : numberedShardFileName(index, count);
}
