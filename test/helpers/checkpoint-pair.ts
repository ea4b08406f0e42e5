/** Shared setup of the fixture tests (test/fixture*.test.ts): a temporary root for the pairs, and the pairs read back and decoded. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type FixtureDtype } from '../../lib/fixtures/fixture';
import { decodeFloat } from '../../lib/format/float-bits';
import { readSafetensorsHeader, type SafetensorsHeader } from '../../lib/format/safetensors';
import { freshPath, useTempDir } from './temp-dir';

/** A temporary root for the file's pairs, removed after the file. */
export function setUpFixtureRoot(): void {
  useTempDir('weightmix-fixture-');
}

/** A new folder path for a pair under the root. */
export const freshDir = (): string => freshPath('pair');

export interface LoadedModel {
  files: string[];
  headers: Map<string, SafetensorsHeader>;
  /** tensor name → file holding it, from the index (or the single file). */
  location: Map<string, string>;
  index: { metadata: { total_size: number }; weight_map: Record<string, string> } | null;
}

export async function loadModel(folder: string): Promise<LoadedModel> {
  const files = fs
    .readdirSync(folder)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
  const headers = new Map<string, SafetensorsHeader>();
  for (const file of files) headers.set(file, await readSafetensorsHeader(path.join(folder, file)));
  const indexPath = path.join(folder, 'model.safetensors.index.json');
  const index = fs.existsSync(indexPath) ? JSON.parse(fs.readFileSync(indexPath, 'utf8')) : null;
  const location = new Map<string, string>();
  if (index) {
    for (const [name, file] of Object.entries(index.weight_map as Record<string, string>)) location.set(name, file);
  } else {
    for (const t of headers.get('model.safetensors')!.tensors) location.set(t.name, 'model.safetensors');
  }
  return { files, headers, location, index };
}

/** Raw bytes of every tensor, by name. */
export function tensorBytes(folder: string, model: LoadedModel): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [file, header] of model.headers) {
    const data = fs.readFileSync(path.join(folder, file));
    for (const t of header.tensors) {
      out.set(t.name, data.subarray(header.dataStart + t.dataOffsets[0], header.dataStart + t.dataOffsets[1]));
    }
  }
  return out;
}

export const decodeTables = new Map<FixtureDtype, Float64Array>();

export function decodeAll(bytes: Buffer, dtype: FixtureDtype): Float64Array {
  if (dtype === 'F32') {
    const copy = Buffer.from(bytes); // aligned
    return Float64Array.from(new Float32Array(copy.buffer, copy.byteOffset, copy.length / 4));
  }
  let table = decodeTables.get(dtype);
  if (!table) {
    table = Float64Array.from({ length: 1 << 16 }, (_, bits) => decodeFloat(bits, dtype));
    decodeTables.set(dtype, table);
  }
  const out = new Float64Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = table[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
  return out;
}

export const isNormGain = (name: string) => /norm\.weight$/.test(name);

/** ‖T − I‖ / ‖I‖ over the pair's tensors that pass `include`. */
export function relativeDistance(
  instruct: Map<string, Buffer>,
  thinking: Map<string, Buffer>,
  dtype: FixtureDtype,
  include: (name: string) => boolean = () => true,
): number {
  let diff = 0;
  let energy = 0;
  for (const [name, bytes] of instruct) {
    if (!include(name)) continue;
    const a = decodeAll(bytes, dtype);
    const b = decodeAll(thinking.get(name)!, dtype);
    for (let i = 0; i < a.length; i++) {
      diff += (b[i] - a[i]) ** 2;
      energy += a[i] ** 2;
    }
  }
  return Math.sqrt(diff / energy);
}

export function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}
