/** A model with tie_word_embeddings stores no lm_head.weight: its head is model.embed_tokens.weight. */
import type { Checkpoint } from '../model/checkpoint';
import type { TensorLocation } from '../model/tensor-table';

const HEAD = 'lm_head.weight';
const EMBED = 'model.embed_tokens.weight';

/**
 * mergekit's `tied_names`: a model that stores no lm_head.weight reads its embed_tokens as its head, where the output has a head
 * (an untied layout model's). The output's layout and config stay the layout model's.
 */
export function tiedHead(ckpt: Checkpoint, name: string): TensorLocation | undefined {
  return name === HEAD ? ckpt.tensors.get(EMBED) : undefined;
}

/** Why a model may lack lm_head.weight, for the message that says it does. */
export function tiedHint(name: string): string {
  return name === HEAD ? ' (a model with tie_word_embeddings stores none: its head is embed_tokens)' : '';
}
