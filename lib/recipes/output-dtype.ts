/**
 * The dtype of each merged tensor when the recipe names none, as mergekit writes it, and the one
 * dtype config.json states for the tensors actually written.
 */
import { FloatDtype, isFloatDtype, SafetensorsDtype } from '../format/dtypes';

/** torch's type promotion among float dtypes: F32 wins, and BF16 with F16 is F32. */
export function promoteFloat(dtypes: readonly FloatDtype[]): FloatDtype {
  const kinds = new Set(dtypes);
  return kinds.has('F32') || kinds.size > 1 ? 'F32' : dtypes[0];
}

/**
 * A merged tensor's dtype: out_dtype, else dtype, else what mergekit's method returns: the base
 * model's dtype for methods that cast to it (`base`: its source dtype), else the sources' promotion.
 * Non-float tensors keep their own dtype.
 */
export function tensorOutputDtype(sources: readonly SafetensorsDtype[], base: SafetensorsDtype | null, recipeDtype: FloatDtype | null): SafetensorsDtype {
  if (!sources.every(isFloatDtype)) return sources[0];
  if (recipeDtype) return recipeDtype;
  if (base !== null && isFloatDtype(base)) return base;
  return promoteFloat(sources as FloatDtype[]);
}

/** What config.json says: the float dtype of the written tensors, the one holding most elements when they differ. */
export function configDtype(written: readonly { dtype: SafetensorsDtype; elements: number }[]): FloatDtype | undefined {
  const elements = new Map<FloatDtype, number>();
  for (const t of written) if (isFloatDtype(t.dtype)) elements.set(t.dtype, (elements.get(t.dtype) ?? 0) + t.elements);
  let best: FloatDtype | undefined;
  for (const [d, n] of elements) if (best === undefined || n > elements.get(best)!) best = d;
  return best;
}
