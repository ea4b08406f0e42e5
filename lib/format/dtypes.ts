/**
 * Every dtype fact in one place: the safetensors element types and their sizes, the float dtypes
 * weightmix computes with (bit layouts, torch names) and the engine's dtype codes. Imports nothing.
 */

/** Every element type of the safetensors format (the Rust crate's `Dtype`, in its order). */
export type SafetensorsDtype =
  | 'BOOL'
  | 'F4'
  | 'F6_E2M3'
  | 'F6_E3M2'
  | 'U8'
  | 'I8'
  | 'F8_E5M2'
  | 'F8_E4M3'
  | 'F8_E8M0'
  | 'F8_E4M3FNUZ'
  | 'F8_E5M2FNUZ'
  | 'I16'
  | 'U16'
  | 'F16'
  | 'BF16'
  | 'I32'
  | 'U32'
  | 'F32'
  | 'C64'
  | 'F64'
  | 'I64'
  | 'U64';

/** Bits per element, as the crate's `Dtype::bitsize`; F4 and F6 pack several elements per byte. */
export const DTYPE_BITS: Record<SafetensorsDtype, number> = Object.freeze({
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
});

/** Every dtype name in DTYPE_BITS order: the addon's header columns and the checkpoint tables store a dtype as its index here. */
export const DTYPE_NAMES: readonly SafetensorsDtype[] = Object.freeze(Object.keys(DTYPE_BITS) as SafetensorsDtype[]);

/** The float dtypes weightmix computes with; every other dtype is only ever byte-copied. */
export type FloatDtype = 'BF16' | 'F16' | 'F32';
export const FLOAT_DTYPES: readonly FloatDtype[] = Object.freeze(['BF16', 'F16', 'F32'] as const);

export function isFloatDtype(d: string): d is FloatDtype {
  return (FLOAT_DTYPES as readonly string[]).includes(d);
}

/**
 * Float dtypes weightmix does not compute with (FP8, FP6, FP4, F64, C64): a merge refuses to combine tensors of these, where a
 * byte copy of one model (as for integer buffers) would be a wrong result presented as a merged one.
 */
export function isUncomputedFloatDtype(d: string): boolean {
  return /^[FC]\d/.test(d) && !isFloatDtype(d);
}

/** An IEEE-style binary float: sign, `expBits` of biased exponent, `mantBits` of mantissa. */
export interface FloatLayout {
  bytes: 2 | 4;
  expBits: number;
  mantBits: number;
}

export const FLOAT_LAYOUTS: Readonly<Record<FloatDtype, FloatLayout>> = Object.freeze({
  BF16: { bytes: 2, expBits: 8, mantBits: 7 },
  F16: { bytes: 2, expBits: 5, mantBits: 10 },
  F32: { bytes: 4, expBits: 8, mantBits: 23 },
});

/** What config.json's torch_dtype and a mergekit recipe's dtype call each float dtype. */
export const TORCH_DTYPE_NAMES: Readonly<Record<FloatDtype, string>> = Object.freeze({ BF16: 'bfloat16', F16: 'float16', F32: 'float32' });

/** The engine's dtype codes: U8 stands for any non-float tensor, which is only ever byte-copied. */
export type NativeDtype = FloatDtype | 'U8';
export const NATIVE_DTYPE_BYTES: Readonly<Record<NativeDtype, number>> = Object.freeze({ F32: 4, F16: 2, BF16: 2, U8: 1 });

/** The engine's dtype for a tensor's: non-float tensors are bytes. */
export function nativeDtype(dtype: SafetensorsDtype): NativeDtype {
  return isFloatDtype(dtype) ? dtype : 'U8';
}
