/**
 * Whole-tensor oracle for end-to-end tests: unpacks a tensor's bytes into bit patterns and runs the
 * element-level reference numerics (./numerics.ts), written from the contract, not from the C++.
 */
import { SafetensorsDtype } from '../../lib/format/safetensors';
import { Dtype, DTYPE_BYTES, lerpExact, lerpMi, Tensor } from './numerics';

function unpack(buf: Buffer, dtype: SafetensorsDtype): Tensor {
  const t = dtype as Dtype;
  const size = DTYPE_BYTES[t];
  const bits = Array.from({ length: buf.length / size }, (_, i) => (size === 4 ? buf.readUInt32LE(4 * i) : buf.readUInt16LE(2 * i)));
  return { dtype: t, bits };
}

function pack(bits: number[], dtype: SafetensorsDtype): Buffer {
  const size = DTYPE_BYTES[dtype as Dtype];
  const out = Buffer.alloc(bits.length * size);
  bits.forEach((b, i) => (size === 4 ? out.writeUInt32LE(b >>> 0, 4 * i) : out.writeUInt16LE(b, 2 * i)));
  return out;
}

/** The bytes `interpolate` must write for one tensor. */
export function referenceInterpolation(
  a: Buffer,
  ta: SafetensorsDtype,
  b: Buffer,
  tb: SafetensorsDtype,
  w: number,
  numerics: 'exact' | 'mi',
  to: SafetensorsDtype,
): Buffer {
  const A = unpack(a, ta);
  const B = unpack(b, tb);
  return pack(numerics === 'exact' ? lerpExact(A, B, to as Dtype, w) : lerpMi(A, B, to as Dtype, w), to);
}
