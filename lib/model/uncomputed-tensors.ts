/**
 * Tensors of a float dtype weightmix does not compute with (FP8, FP6, FP4, F64, C64) that a merge would combine. Integer
 * buffers are copied from the first model, as documented; for these floats a copy is a merge only where every model holds
 * the same bytes (a quantization scale both share). Elsewhere the merge is refused before anything is written.
 */
import { WeightmixError } from '../errors';
import { DTYPE_NAMES, isUncomputedFloatDtype } from '../format/dtypes';
import { sameTensorBytes } from '../format/tensor-data';
import { tensorTableOf, type TensorLocation } from './tensor-table';

const UNCOMPUTED_CODES = DTYPE_NAMES.map(isUncomputedFloatDtype);

/** Whether a model holds any tensor of such a dtype (its table's dtype codes, no tensor looked up): the usual answer is no. */
function holdsUncomputedFloats(ckpt: Parameters<typeof tensorTableOf>[0]): boolean {
  return tensorTableOf(ckpt).dtypes.some((code) => UNCOMPUTED_CODES[code]);
}

/** One output tensor and the models' tensors it would combine (`where`: the model as the message names it). */
export interface CombinedTensor {
  name: string;
  sources: readonly { tensor: TensorLocation; where: string }[];
}

/**
 * Refuses the first combined tensor of such a dtype whose models differ; `leaveOut` says how to keep it out of the merge. The
 * combined tensors are listed only where one of the models holds such a dtype (a MoE model has tens of thousands of tensors).
 */
export async function refuseUncomputedTensors(
  models: readonly Parameters<typeof tensorTableOf>[0][],
  combined: () => Iterable<CombinedTensor>,
  leaveOut: string,
): Promise<void> {
  if (!models.some(holdsUncomputedFloats)) return;
  for (const { name, sources } of combined()) {
    const odd = sources.find((s) => isUncomputedFloatDtype(s.tensor.dtype));
    if (odd === undefined || (await sameTensorBytes(sources.map((s) => s.tensor)))) continue;
    const dtype = odd.tensor.dtype;
    throw new WeightmixError(
      'UnsupportedDtype',
      `tensor ${name} is ${dtype} in ${odd.where} and differs between the models: weightmix merges BF16, F16 and F32 tensors, and a copy of ` +
        `one model's ${dtype} bytes would not be a merge; ${leaveOut}, or convert the models first (an FP8 checkpoint: dequantize it)`,
    );
  }
}
