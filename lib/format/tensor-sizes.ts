/** The crate's size arithmetic: element counts and byte lengths, exact in doubles, failing past 2^53 − 1 with its error codes. */
import { DTYPE_BITS, SafetensorsDtype } from './dtypes';
import { SafetensorsError, showShape } from './safetensors-errors';
import { tensorSubject } from './header-entries';

/** Bytes that `elementCount` elements of `dtype` occupy; throws on overflow past 2^53-1 or a partial byte. */
export function dtypeByteLength(dtype: SafetensorsDtype, elementCount: number): number {
  if (!Object.hasOwn(DTYPE_BITS, dtype)) throw new RangeError(`dtypeByteLength: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Number.isSafeInteger(elementCount) || elementCount < 0) {
    throw new RangeError(`dtypeByteLength: elementCount must be a non-negative safe integer, got ${elementCount}`);
  }
  return byteLengthOf(dtype, elementCount, 'dtypeByteLength');
}

/** Who a size error is about: `where` (a file, a function), and the tensor when there is one. Strings, not a closure per tensor: a MoE header has tens of thousands. */
function subject(where: string, name: string | undefined): string {
  return name === undefined ? where : `${where}: ${tensorSubject(name)}`;
}

/** The product of the dimensions, left to right like the crate's checked fold, failing past 2^53-1. */
export function elementCountOf(shape: readonly number[], where: string, name?: string): number {
  let count = 1;
  for (const dim of shape) {
    if (dim !== 0 && count > Math.floor(Number.MAX_SAFE_INTEGER / dim)) {
      throw new SafetensorsError('ValidationOverflow', `${subject(where, name)}: shape ${showShape(shape)} has more than 2^53-1 elements`);
    }
    count *= dim;
  }
  return count;
}

/** Exact in doubles: `elementCount * bits / 8` is computed as (whole groups of elements that fill whole bytes) × (bytes per group). */
export function byteLengthOf(dtype: SafetensorsDtype, elementCount: number, where: string, name?: string): number {
  const bits = DTYPE_BITS[dtype];
  const common = gcd(bits, 8);
  const elementsPerGroup = 8 / common;
  const bytesPerGroup = bits / common;
  if (elementCount % elementsPerGroup !== 0) {
    throw new SafetensorsError(
      'MisalignedSlice',
      `${subject(where, name)}: ${elementCount} × ${dtype} is ${elementCount * bits} bits, not a whole number of bytes`,
    );
  }
  const groups = elementCount / elementsPerGroup;
  if (groups > Math.floor(Number.MAX_SAFE_INTEGER / bytesPerGroup)) {
    throw new SafetensorsError('ValidationOverflow', `${subject(where, name)}: ${elementCount} × ${dtype} is more than 2^53-1 bytes`);
  }
  return groups * bytesPerGroup;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
