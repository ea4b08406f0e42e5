/** Small hand-made model pairs for end-to-end tests: random bits with the special values mixed in. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensorsFile, SafetensorsDtype } from '../../lib/format/safetensors';

/** A seeded generator (mulberry32): tests print the seed so a failure can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const SPECIAL_BF16 = [0x0000, 0x8000, 0x0001, 0x8001, 0x007f, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x7f7f, 0xff7f, 0x3f80, 0xbf80];
export const SPECIAL_F16 = [0x0000, 0x8000, 0x0001, 0x83ff, 0x7c00, 0xfc00, 0x7e00, 0xfe01, 0x7c01, 0x7bff, 0xfbff, 0x3c00];
export const SPECIAL_F32 = [
  0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x7f7fffff, 0xff7fffff, 0x3f800000,
];

/** Random values near N(0, 0.02) with one special value in ~8, encoded as `dtype` bits. */
export function randomTensor(dtype: 'BF16' | 'F16' | 'F32', count: number, next: () => number, base?: Buffer): Buffer {
  const size = dtype === 'F32' ? 4 : 2;
  const out = Buffer.alloc(count * size);
  const specials = dtype === 'BF16' ? SPECIAL_BF16 : dtype === 'F16' ? SPECIAL_F16 : SPECIAL_F32;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < count; i++) {
    let bits: number;
    if (next() < 0.125) {
      bits = specials[Math.floor(next() * specials.length)];
    } else {
      const prev = base ? decode(base, i, dtype) : 0;
      f32[0] = (Number.isFinite(prev) ? prev : 0) + (next() + next() + next() - 1.5) * (base ? 0.002 : 0.04);
      bits = dtype === 'F32' ? u32[0] : dtype === 'BF16' ? u32[0] >>> 16 : f16Bits(f32[0]);
    }
    if (size === 4) out.writeUInt32LE(bits >>> 0, 4 * i);
    else out.writeUInt16LE(bits, 2 * i);
  }
  return out;
}

function decode(buf: Buffer, i: number, dtype: string): number {
  if (dtype === 'F32') return buf.readFloatLE(4 * i);
  if (dtype === 'BF16') {
    const b = Buffer.alloc(4);
    b.writeUInt16LE(buf.readUInt16LE(2 * i), 2);
    return b.readFloatLE(0);
  }
  const h = buf.readUInt16LE(2 * i);
  const e = (h >> 10) & 31;
  const m = h & 1023;
  const s = h & 0x8000 ? -1 : 1;
  return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Truncating f16 encoding: only used to make test inputs, never as an oracle. */
function f16Bits(x: number): number {
  const s = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a < 2 ** -24) return s;
  if (a >= 65504) return s | 0x7bff;
  const e = Math.floor(Math.log2(a));
  if (e < -14) return s | Math.floor(a / 2 ** -24);
  return s | ((e + 15) << 10) | Math.floor((a / 2 ** e - 1) * 1024);
}

export interface TensorSpec {
  name: string;
  shape: number[];
}

/** Qwen3-shaped names for a model with `layers` layers (tied embeddings: no lm_head). */
export function qwen3Names(layers: number, hidden = 16, inter = 24): TensorSpec[] {
  const specs: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [40, hidden] }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    specs.push(
      { name: p + 'input_layernorm.weight', shape: [hidden] },
      { name: p + 'mlp.down_proj.weight', shape: [hidden, inter] },
      { name: p + 'mlp.gate_proj.weight', shape: [inter, hidden] },
      { name: p + 'mlp.up_proj.weight', shape: [inter, hidden] },
      { name: p + 'post_attention_layernorm.weight', shape: [hidden] },
      { name: p + 'self_attn.k_norm.weight', shape: [8] },
      { name: p + 'self_attn.k_proj.weight', shape: [hidden, hidden] },
      { name: p + 'self_attn.o_proj.weight', shape: [hidden, hidden] },
      { name: p + 'self_attn.q_norm.weight', shape: [8] },
      { name: p + 'self_attn.q_proj.weight', shape: [hidden, hidden] },
      { name: p + 'self_attn.v_proj.weight', shape: [hidden, hidden] },
    );
  }
  specs.push({ name: 'model.norm.weight', shape: [hidden] });
  return specs;
}

export interface WrittenModel {
  dir: string;
  data: Map<string, { dtype: SafetensorsDtype; bytes: Buffer }>;
}

/**
 * Writes a model folder: tensors split over `shards` files (HF names and index when > 1), with
 * per-tensor dtypes from `dtypeOf`, data from `dataOf`, and a config + tokenizer sidecar tagged `tag`.
 */
export async function writeModel(
  dir: string,
  specs: TensorSpec[],
  shards: number,
  dtypeOf: (name: string) => SafetensorsDtype,
  dataOf: (spec: TensorSpec, dtype: SafetensorsDtype) => Buffer,
  tag: string,
): Promise<WrittenModel> {
  await fs.promises.mkdir(dir, { recursive: true });
  const data = new Map<string, { dtype: SafetensorsDtype; bytes: Buffer }>();
  const per = Math.ceil(specs.length / shards);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards; s++) {
    const file = shards === 1 ? 'model.safetensors' : `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = specs.slice(s * per, (s + 1) * per).map((spec) => {
      const dtype = dtypeOf(spec.name);
      const bytes = dataOf(spec, dtype);
      data.set(spec.name, { dtype, bytes });
      weightMap[spec.name] = file;
      total += bytes.length;
      return { name: spec.name, dtype, shape: spec.shape, data: bytes };
    });
    await writeSafetensorsFile(path.join(dir, file), part, { format: 'pt' });
  }
  if (shards > 1) {
    await fs.promises.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  }
  await fs.promises.writeFile(
    path.join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'qwen3',
      num_hidden_layers: Math.max(0, ...specs.map((s) => Number(/layers\.(\d+)\./.exec(s.name)?.[1] ?? -1))) + 1,
      torch_dtype: 'bfloat16',
      tag,
    }),
  );
  await fs.promises.writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: `template of ${tag}` }));
  return { dir, data };
}

/** Everything under `dir` (files and folders), for "nothing left behind" assertions. */
export function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

/** A BF16 model of random values (special values mixed in) drawn from `next`, written in `shards` shards; its tensors' bytes in `data`. */
export function writeBf16Model(dir: string, specs: TensorSpec[], next: () => number, tag: string, shards = 1): Promise<WrittenModel> {
  const count = (shape: number[]) => shape.reduce((x, y) => x * y, 1);
  return writeModel(
    dir,
    specs,
    shards,
    () => 'BF16',
    (s) => randomTensor('BF16', count(s.shape), next),
    tag,
  );
}

/** writeBf16Model's folder. */
export async function writeRandomBf16Model(dir: string, specs: TensorSpec[], next: () => number, tag: string, shards = 1): Promise<string> {
  return (await writeBf16Model(dir, specs, next, tag, shards)).dir;
}
