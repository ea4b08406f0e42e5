/** Random safetensors tensor entries for the column tests: names from pieces (some needing JSON escapes), every dtype, zero-sized tensors. */
import { DTYPE_BITS, DTYPE_NAMES, SafetensorsDtype } from '../../lib/format/dtypes';

const PIECES = ['model', 'layers', '0', '17', 'mlp', 'experts', 'weight', '__proto__', 'é', '\u{1f600}', 'a"b', 'x\\y', '\t', ' '];

export interface RandomTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

export function randomTensors(next: () => number, escapes: boolean): RandomTensor[] {
  const int = (n: number) => Math.floor(next() * n);
  const names = new Set<string>();
  const count = 1 + int(25);
  while (names.size < count) {
    const parts = Array.from({ length: 1 + int(4) }, () => PIECES[int(escapes ? PIECES.length : 7)]);
    names.add(parts.join('.'));
  }
  return [...names].map((name) => {
    const dtype = DTYPE_NAMES[int(DTYPE_NAMES.length)];
    // Packed dtypes (F4, F6) need element counts that fill whole bytes: a multiple of 8 always does.
    const shape = Array.from({ length: int(4) }, () => (next() < 0.1 ? 0 : 1 + int(5)));
    if (DTYPE_BITS[dtype] % 8 !== 0) shape.push(8);
    return { name, dtype, shape };
  });
}
