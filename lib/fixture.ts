/**
 * Synthetic Instruct/Thinking checkpoint pairs with the real tensor names, shapes, sharding and
 * sidecar files of Qwen3 releases, fast enough to write the full-size 4B pair (2 × 8 GB).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { usageError, WeightmixError } from './errors';
import {
  elementCount,
  FIXTURE_SHAPES,
  listModelTensors,
  resolveModelShape,
  type FixtureShapeName,
  type FixtureTensor,
  type ModelShape,
  type TensorInit,
} from './model-shapes';
import { normalQuantile, streamState } from './random';
import { encodeSafetensorsHeader } from './safetensors';
import { decodeFloat, encodeFloat, FLOAT_LAYOUTS, FloatLayout } from './float-bits';

export type FixtureDtype = 'BF16' | 'F16' | 'F32';
export const FIXTURE_DTYPES: readonly FixtureDtype[] = Object.freeze(['BF16', 'F16', 'F32'] as const);

/** The paper's Instruct–Thinking weight distance for Qwen3-4B-2507 (Table 1, σ = 0.0269). */
export const DEFAULT_DELTA = 0.027;

export interface FixtureProgress {
  /** Tensor bytes written so far, both models together. */
  bytesWritten: number;
  /** Tensor bytes to write, both models together. */
  totalBytes: number;
}

export interface CheckpointPairOptions {
  /** Parent folder; the models are written to `<dir>/instruct` and `<dir>/thinking`. */
  dir: string;
  shape: FixtureShapeName;
  /** Width divisor for hidden, intermediate, expert, vocabulary and head dims; 1 = real size. */
  scale?: number;
  /** Decoder layer count instead of the real one. */
  layers?: number;
  /** Shard counts for Instruct and Thinking (default: the released checkpoints' counts, 3 for 4B, 16 for 30B-A3B). */
  shards?: [number, number];
  dtype?: FixtureDtype;
  /** uint32; the same seed gives byte-identical tensor data. */
  seed?: number;
  /** Relative distance ‖Thinking − Instruct‖ / ‖Instruct‖ per tensor, 0 ≤ delta < 1. */
  delta?: number;
  /** Replace existing `instruct/` and `thinking/` folders instead of refusing. */
  overwrite?: boolean;
  onProgress?: (progress: FixtureProgress) => void;
  signal?: AbortSignal;
}

export interface CheckpointPair {
  instruct: string;
  thinking: string;
  /** Tensors per model. */
  tensors: number;
  /** Tensor data bytes per model (the index's `metadata.total_size`). */
  bytesPerModel: number;
}

interface FloatFormat extends FloatLayout {
  torchDtype: string;
}

const FORMATS: Readonly<Record<FixtureDtype, FloatFormat>> = {
  BF16: { ...FLOAT_LAYOUTS.BF16, torchDtype: 'bfloat16' },
  F16: { ...FLOAT_LAYOUTS.F16, torchDtype: 'float16' },
  F32: { ...FLOAT_LAYOUTS.F32, torchDtype: 'float32' },
};

// ---------------------------------------------------------------------------------------------
// Value tables: each element is one table lookup, so the hot loop never does float arithmetic.
// Instruct values are quantiles of the init distribution, encoded; Thinking adds a few ulps to
// the Instruct bit pattern (noise quantiles), a multiplicative perturbation whose size is
// calibrated so that E‖T − I‖² / E‖I‖² = delta². Tables stay small (≤ 64 KB) so random lookups
// hit L1/L2: that, not the PRNG, bounds the speed.

const VALUE_TABLE_BITS = 14;
const NOISE_TABLE_BITS = 12;
const VALUE_TABLE_SIZE = 1 << VALUE_TABLE_BITS;
const NOISE_TABLE_SIZE = 1 << NOISE_TABLE_BITS;
const VALUE_MASK = VALUE_TABLE_SIZE - 1;
const NOISE_SHIFT = 32 - NOISE_TABLE_BITS;
const INIT_STD = 0.02;

interface ValueTables {
  /** Encoded Instruct values (16- or 32-bit patterns). */
  values: Uint16Array | Uint32Array;
  /** Thinking − Instruct, in ulps of the bit pattern. */
  noise: Int32Array;
  /**
   * 16-bit formats make two elements per random number: entry i packs values[i] (low half) and
   * values[σ(i)] (high half) for a fixed scrambling bijection σ; `pairNoise` packs noise the same
   * way, so one 32-bit integer add perturbs both (no carry crosses halves, see the floor below).
   */
  pairValues: Int32Array;
  pairNoise: Int32Array;
}

const quantileCache = new Map<string, Uint16Array | Uint32Array>();

/** The init distribution's quantiles at (i + ½) / 2^16, encoded in `dtype`. */
function quantileTable(dtype: FixtureDtype, init: TensorInit): Uint16Array | Uint32Array {
  const key = `${dtype}/${init}`;
  let values = quantileCache.get(key);
  if (values) return values;
  values = FORMATS[dtype].bytes === 2 ? new Uint16Array(VALUE_TABLE_SIZE) : new Uint32Array(VALUE_TABLE_SIZE);
  const mean = init === 'norm' ? 1 : 0;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < VALUE_TABLE_SIZE; i++) {
    const x = mean + INIT_STD * normalQuantile((i + 0.5) / VALUE_TABLE_SIZE);
    if (FORMATS[dtype].bytes === 4) {
      f32[0] = x; // Math.fround's rounding: nearest, ties to even
      values[i] = u32[0];
    } else {
      values[i] = encodeFloat(x, dtype);
    }
  }
  quantileCache.set(key, values);
  return values;
}

const tableCache = new Map<string, ValueTables>();

/** The lookup tables for one dtype, init and delta (built once per process). */
function valueTables(dtype: FixtureDtype, init: TensorInit, delta: number): ValueTables {
  const key = `${dtype}/${init}/${delta}`;
  const cached = tableCache.get(key);
  if (cached) return cached;
  const format = FORMATS[dtype];
  const values = quantileTable(dtype, init).slice();
  const noise = calibrateNoise(values, dtype, delta);
  // Keep every perturbed pattern a normal number of the same sign: raise the few magnitudes below
  // (smallest normal + largest noise) to that floor (f16 would otherwise reach its subnormals).
  let largest = 0;
  for (const k of noise) largest = Math.max(largest, Math.abs(k));
  const signBit = 2 ** (format.expBits + format.mantBits);
  const floor = 2 ** format.mantBits + largest;
  const ceiling = (2 ** format.expBits - 1) * 2 ** format.mantBits - 1 - largest;
  for (let i = 0; i < VALUE_TABLE_SIZE; i++) {
    const sign = values[i] >= signBit ? signBit : 0;
    const magnitude = values[i] - sign;
    values[i] = sign + Math.min(ceiling, Math.max(floor, magnitude));
  }
  const pairValues = new Int32Array(VALUE_TABLE_SIZE);
  const pairNoise = new Int32Array(NOISE_TABLE_SIZE);
  if (format.bytes === 2) {
    for (let i = 0; i < VALUE_TABLE_SIZE; i++) pairValues[i] = values[i] | (values[(i * 40503 + 7919) & VALUE_MASK] << 16);
    for (let i = 0; i < NOISE_TABLE_SIZE; i++) pairNoise[i] = noise[i] + noise[(i * 2897 + 1231) & (NOISE_TABLE_SIZE - 1)] * 65536;
  }
  const tables = { values, noise, pairValues, pairNoise };
  tableCache.set(key, tables);
  return tables;
}

const decodeTables16 = new Map<FixtureDtype, Float64Array>();

/** value of every 16-bit pattern of `dtype`. */
function decodeTable16(dtype: FixtureDtype): Float64Array {
  let table = decodeTables16.get(dtype);
  if (!table) {
    table = new Float64Array(1 << 16);
    for (let bits = 0; bits < 1 << 16; bits++) table[bits] = decodeFloat(bits, dtype);
    decodeTables16.set(dtype, table);
  }
  return table;
}

/** Noise in ulps: normal quantiles times a scale fitted to the exact relative distance over a value sample. */
function calibrateNoise(values: Uint16Array | Uint32Array, dtype: FixtureDtype, delta: number): Int32Array {
  const noise = new Int32Array(NOISE_TABLE_SIZE);
  if (delta === 0) return noise;
  const table16 = FORMATS[dtype].bytes === 2 ? decodeTable16(dtype) : null;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const decode = (bits: number) => {
    if (table16) return table16[bits];
    u32[0] = bits;
    return f32[0];
  };
  const z = new Float64Array(NOISE_TABLE_SIZE);
  for (let i = 0; i < NOISE_TABLE_SIZE; i++) z[i] = normalQuantile((i + 0.5) / NOISE_TABLE_SIZE);
  const signBit = 2 ** (FORMATS[dtype].expBits + FORMATS[dtype].mantBits);
  // Every 256th table entry: evenly spaced quantiles of the value distribution.
  const SAMPLES = 256;
  const sample = new Float64Array(SAMPLES);
  const sampleBits = new Float64Array(SAMPLES);
  let energy = 0;
  for (let j = 0; j < SAMPLES; j++) {
    sampleBits[j] = values[(j + 0.5) * (VALUE_TABLE_SIZE / SAMPLES)];
    sample[j] = decode(sampleBits[j]);
    energy += sample[j] ** 2;
  }
  const ks = new Float64Array(NOISE_TABLE_SIZE);
  const counts = new Float64Array(NOISE_TABLE_SIZE);
  const relativeDistance = (scale: number) => {
    // z is sorted, so round(scale · z) comes in runs: visit each distinct k once with its count;
    // when nearly all are distinct (f32), every 16th quantile stands for its neighbours.
    let runs = 0;
    for (let i = 0; i < NOISE_TABLE_SIZE; i++) {
      const k = Math.round(scale * z[i]);
      if (runs > 0 && ks[runs - 1] === k) counts[runs - 1]++;
      else {
        ks[runs] = k;
        counts[runs++] = 1;
      }
    }
    if (runs > 256) {
      runs = 0;
      for (let i = 8; i < NOISE_TABLE_SIZE; i += 16) {
        ks[runs] = Math.round(scale * z[i]);
        counts[runs++] = 16;
      }
    }
    let diff = 0;
    for (let j = 0; j < SAMPLES; j++) {
      const bits = sampleBits[j];
      const sign = bits >= signBit ? signBit : 0;
      const magnitude = bits - sign;
      for (let r = 0; r < runs; r++) {
        const d = decode(sign + Math.max(0, magnitude + ks[r])) - sample[j];
        diff += counts[r] * d * d;
      }
    }
    return Math.sqrt(diff / NOISE_TABLE_SIZE / energy);
  };
  // The distance grows about linearly with the scale: proportional steps converge in a few
  // evaluations; bisection between the best brackets finishes where rounding makes it a staircase.
  let lo = 0;
  let hi = Infinity;
  let scale = delta * 2 ** FORMATS[dtype].mantBits;
  for (let step = 0; step < 6; step++) {
    const distance = relativeDistance(scale);
    if (Math.abs(distance / delta - 1) < 1e-4) break;
    if (distance < delta) lo = Math.max(lo, scale);
    else hi = Math.min(hi, scale);
    scale = distance === 0 ? scale * 2 : scale * (delta / distance);
    if (step === 5) {
      while (hi === Infinity) {
        hi = Math.max(scale, lo * 2);
        if (relativeDistance(hi) < delta) {
          lo = hi;
          hi = Infinity;
        }
      }
      while (hi - lo > 1e-4 * hi) {
        const mid = (lo + hi) / 2;
        if (relativeDistance(mid) < delta) lo = mid;
        else hi = mid;
      }
      scale = Math.abs(relativeDistance(lo) - delta) <= Math.abs(relativeDistance(hi) - delta) ? lo : hi;
    }
  }
  for (let i = 0; i < NOISE_TABLE_SIZE; i++) noise[i] = Math.round(scale * z[i]);
  return noise;
}

// Hot loops: one xorshift128 step (as lib/random.ts nextUint32) per element pair (16-bit formats)
// or per element (f32), then table lookups. Element 2m and 2m+1 of a tensor always come from
// step m, whatever the chunking, so the data depends only on (seed, tensor name).

/** Elements [0, count) of a 16-bit tensor chunk that starts at an even element index of its tensor. */
function fillPairs16(
  state: Uint32Array, tables: ValueTables,
  instruct: ChunkedWriter, thinking: ChunkedWriter, count: number,
): void {
  const { pairValues, pairNoise } = tables;
  const instructStart = instruct.used >>> 1;
  const thinkingStart = thinking.used >>> 1;
  const pairs = count >>> 1;
  let x = state[0] | 0;
  let y = state[1] | 0;
  let z = state[2] | 0;
  let w = state[3] | 0;
  if ((instructStart & 1) === 0 && (thinkingStart & 1) === 0) {
    // Both chunks 4-byte aligned: one 32-bit store per pair.
    const i32 = instruct.intView;
    const t32 = thinking.intView;
    const iBase = instructStart >>> 1;
    const tBase = thinkingStart >>> 1;
    for (let m = 0; m < pairs; m++) {
      const t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = w ^ (w >>> 19) ^ (t ^ (t >>> 8));
      const v = pairValues[w & VALUE_MASK];
      i32[iBase + m] = v;
      t32[tBase + m] = (v + pairNoise[w >>> NOISE_SHIFT]) | 0;
    }
  } else {
    const i16 = instruct.halfView;
    const t16 = thinking.halfView;
    for (let m = 0; m < pairs; m++) {
      const t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = w ^ (w >>> 19) ^ (t ^ (t >>> 8));
      const v = pairValues[w & VALUE_MASK];
      const u = (v + pairNoise[w >>> NOISE_SHIFT]) | 0;
      i16[instructStart + 2 * m] = v;
      i16[instructStart + 2 * m + 1] = v >>> 16;
      t16[thinkingStart + 2 * m] = u;
      t16[thinkingStart + 2 * m + 1] = u >>> 16;
    }
  }
  if (count & 1) {
    // A tensor with an odd element count ends on the low half of one more pair.
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = w ^ (w >>> 19) ^ (t ^ (t >>> 8));
    const v = pairValues[w & VALUE_MASK];
    instruct.halfView[instructStart + count - 1] = v;
    thinking.halfView[thinkingStart + count - 1] = v + pairNoise[w >>> NOISE_SHIFT];
  }
  state[0] = x;
  state[1] = y;
  state[2] = z;
  state[3] = w;
}

/** Elements [0, count) of an f32 tensor chunk. */
function fillElements32(
  state: Uint32Array, tables: ValueTables,
  instruct: ChunkedWriter, thinking: ChunkedWriter, count: number,
): void {
  const values = tables.values as Uint32Array;
  const noise = tables.noise;
  const i32 = instruct.wordView;
  const t32 = thinking.wordView;
  const iBase = instruct.used >>> 2;
  const tBase = thinking.used >>> 2;
  let x = state[0] | 0;
  let y = state[1] | 0;
  let z = state[2] | 0;
  let w = state[3] | 0;
  for (let j = 0; j < count; j++) {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = w ^ (w >>> 19) ^ (t ^ (t >>> 8));
    const v = values[w & VALUE_MASK];
    i32[iBase + j] = v;
    t32[tBase + j] = v + noise[w >>> NOISE_SHIFT];
  }
  state[0] = x;
  state[1] = y;
  state[2] = z;
  state[3] = w;
}

// ---------------------------------------------------------------------------------------------
// Shard layout.

interface ShardFile {
  fileName: string;
  /** Sorted by name, as the safetensors crate lays data out. */
  tensors: FixtureTensor[];
  header: Buffer;
  /** Absolute file position of each tensor's data, aligned with `tensors`. */
  positions: number[];
  fileSize: number;
}

interface ModelLayout {
  files: ShardFile[];
  /** name → [file index, absolute position]. */
  where: Map<string, [number, number]>;
  dataBytes: number;
}

/**
 * Split module-ordered tensors into `count` contiguous shards of about equal bytes (HF cuts
 * state_dict order at max_shard_size; a balanced cut gives the requested count exactly).
 */
function splitIntoShards(tensors: FixtureTensor[], bytesPerElement: number, count: number): FixtureTensor[][] {
  const sizes = tensors.map((t) => elementCount(t.shape) * bytesPerElement);
  const before = [0];
  for (const size of sizes) before.push(before[before.length - 1] + size);
  const total = before[tensors.length];
  const starts = [0];
  let i = 0;
  for (let k = 1; k < count; k++) {
    const target = (total * k) / count;
    while (i < tensors.length && before[i + 1] <= target) i++;
    // Cut before tensor i or after it, whichever is nearer the target; every shard keeps one tensor.
    let cut = target - before[i] <= before[i + 1] - target ? i : i + 1;
    cut = Math.max(starts[k - 1] + 1, Math.min(tensors.length - (count - k), cut));
    starts.push(cut);
  }
  starts.push(tensors.length);
  return Array.from({ length: count }, (_, k) => tensors.slice(starts[k], starts[k + 1]));
}

function shardFileName(index: number, count: number): string {
  if (count === 1) return 'model.safetensors';
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

function planModelLayout(tensors: FixtureTensor[], dtype: FixtureDtype, count: number): ModelLayout {
  const bytesPerElement = FORMATS[dtype].bytes;
  const where = new Map<string, [number, number]>();
  let dataBytes = 0;
  const files = splitIntoShards(tensors, bytesPerElement, count).map((group, index): ShardFile => {
    const sorted = [...group].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const encoded = encodeSafetensorsHeader(
      sorted.map((t) => ({ name: t.name, dtype, shape: t.shape })),
      { format: 'pt' },
    );
    const positions = encoded.offsets.map(([begin]) => encoded.dataStart + begin);
    let end = encoded.dataStart;
    sorted.forEach((t, j) => {
      const [begin, stop] = encoded.offsets[j];
      if (stop - begin !== elementCount(t.shape) * bytesPerElement) {
        throw new Error(`encodeSafetensorsHeader gave ${t.name} ${stop - begin} bytes`);
      }
      where.set(t.name, [index, positions[j]]);
      end = Math.max(end, encoded.dataStart + stop);
      dataBytes += stop - begin;
    });
    return { fileName: shardFileName(index, count), tensors: sorted, header: encoded.bytes, positions, fileSize: end };
  });
  return { files, where, dataBytes };
}

// ---------------------------------------------------------------------------------------------
// Writing: two reused chunk buffers per model; one is written (positional, libuv pool) while the
// other is filled, so generation and I/O overlap. Contiguous tensors share a chunk.

const CHUNK_BYTES = 4 << 20;

function writeFully(fd: number, buffer: Buffer, length: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number) => {
      if (done === length) return resolve();
      fs.write(fd, buffer, done, length - done, position + done, (err, written) => {
        if (err) reject(err);
        else step(done + written);
      });
    };
    step(0);
  });
}

class ChunkedWriter {
  private readonly buffers: Buffer[];
  private readonly halves: Uint16Array[];
  private readonly words: Uint32Array[];
  private readonly ints: Int32Array[];
  private readonly inFlight: (Promise<unknown> | null)[] = [null, null];
  private current = 0;
  private fd = -1;
  private start = 0;
  used = 0;
  written = 0;

  constructor(private readonly capacity: number) {
    this.buffers = [Buffer.allocUnsafeSlow(capacity), Buffer.allocUnsafeSlow(capacity)];
    this.halves = this.buffers.map((b) => new Uint16Array(b.buffer, b.byteOffset, capacity / 2));
    this.words = this.buffers.map((b) => new Uint32Array(b.buffer, b.byteOffset, capacity / 4));
    this.ints = this.buffers.map((b) => new Int32Array(b.buffer, b.byteOffset, capacity / 4));
  }

  /** The current chunk as 16-bit elements. */
  get halfView(): Uint16Array {
    return this.halves[this.current];
  }

  /** The current chunk as 32-bit elements. */
  get wordView(): Uint32Array {
    return this.words[this.current];
  }

  /** The current chunk as signed 32-bit words (pairs of 16-bit elements). */
  get intView(): Int32Array {
    return this.ints[this.current];
  }

  /** Make the current chunk continue `fd` at `position` with at least `minRoom` free bytes; returns the free bytes. */
  async continueAt(fd: number, position: number, minRoom: number): Promise<number> {
    if (this.used > 0 && (fd !== this.fd || position !== this.start + this.used || this.capacity - this.used < minRoom)) {
      await this.flush();
    }
    if (this.used === 0) {
      this.fd = fd;
      this.start = position;
    }
    return this.capacity - this.used;
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    const pending = writeFully(this.fd, this.buffers[this.current], this.used, this.start);
    // Settle to the error (not a rejection) so a failure waits, handled, for its turn to be awaited.
    this.inFlight[this.current] = pending.then(() => null, (err: unknown) => err ?? new Error('write failed'));
    this.written += this.used;
    this.used = 0;
    this.current ^= 1;
    await this.settle(this.current);
  }

  async finish(): Promise<void> {
    await this.flush();
    await this.settle(0);
    await this.settle(1);
  }

  /** Wait for writes in flight and drop the unwritten chunk (on failure, before closing the files). */
  async abandon(): Promise<void> {
    this.used = 0;
    await Promise.all(this.inFlight);
    this.inFlight.fill(null);
  }

  private async settle(index: number): Promise<void> {
    const pending = this.inFlight[index];
    this.inFlight[index] = null;
    if (pending) {
      const err = await pending;
      if (err) throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sidecar files.

interface SpecialTokens {
  endOfText: number;
  imStart: number;
  imEnd: number;
}

/** Qwen's special-token ids; a narrowed vocabulary moves them to its last three ids. */
function specialTokens(shape: ModelShape): SpecialTokens {
  if (shape.vocab > 151645) return { endOfText: 151643, imStart: 151644, imEnd: 151645 };
  return { endOfText: shape.vocab - 3, imStart: shape.vocab - 2, imEnd: shape.vocab - 1 };
}

/** JSON as transformers writes it: sorted keys, two-space indent, trailing newline. */
function hfJson(value: unknown): string {
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`;
}

function configJson(shape: ModelShape, dtype: FixtureDtype): Record<string, unknown> {
  const tokens = specialTokens(shape);
  const config: Record<string, unknown> = {
    architectures: [shape.architecture],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: tokens.endOfText,
    eos_token_id: tokens.imEnd,
    head_dim: shape.headDim,
    hidden_act: 'silu',
    hidden_size: shape.hidden,
    initializer_range: 0.02,
    intermediate_size: shape.intermediate,
    max_position_embeddings: shape.maxPositions,
    max_window_layers: shape.layers,
    model_type: shape.modelType,
    num_attention_heads: shape.heads,
    num_hidden_layers: shape.layers,
    num_key_value_heads: shape.kvHeads,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: shape.ropeTheta,
    sliding_window: null,
    tie_word_embeddings: shape.tiedEmbeddings,
    torch_dtype: FORMATS[dtype].torchDtype,
    transformers_version: '4.51.0',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: shape.vocab,
  };
  if (shape.moe) {
    Object.assign(config, {
      decoder_sparse_step: 1,
      mlp_only_layers: [],
      moe_intermediate_size: shape.moe.intermediate,
      norm_topk_prob: true,
      num_experts: shape.moe.experts,
      num_experts_per_tok: shape.moe.expertsPerToken,
      output_router_logits: false,
      router_aux_loss_coef: 0.001,
    });
  }
  return config;
}

type Variant = 'instruct' | 'thinking';

function generationConfigJson(shape: ModelShape, variant: Variant): Record<string, unknown> {
  const tokens = specialTokens(shape);
  const sampling = variant === 'instruct' ? { temperature: 0.7, top_p: 0.8, top_k: 20 } : { temperature: 0.6, top_p: 0.95, top_k: 20 };
  return {
    bos_token_id: tokens.endOfText,
    do_sample: true,
    eos_token_id: [tokens.imEnd, tokens.endOfText],
    pad_token_id: tokens.endOfText,
    ...sampling,
    transformers_version: '4.51.0',
  };
}

// Abridged from the 2507 templates: same turn format; Thinking strips earlier reasoning and opens <think>.
const CHAT_TEMPLATES: Record<Variant, string> = {
  instruct:
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}" +
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
  thinking:
    "{%- for message in messages %}{%- if message.role == 'assistant' and '</think>' in message.content %}" +
    "{%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}{%- else %}{%- set content = message.content %}{%- endif %}" +
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}{%- endfor %}" +
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}",
};

function specialTokenList(shape: ModelShape): [number, string][] {
  const t = specialTokens(shape);
  return [
    [t.endOfText, '<|endoftext|>'],
    [t.imStart, '<|im_start|>'],
    [t.imEnd, '<|im_end|>'],
  ];
}

function tokenizerConfigJson(shape: ModelShape, variant: Variant): Record<string, unknown> {
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(
      specialTokenList(shape).map(([id, content]) => [
        String(id),
        { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
      ]),
    ),
    bos_token: null,
    chat_template: CHAT_TEMPLATES[variant],
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: shape.maxPositions,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
}

/** A byte-level BPE vocabulary stub: printable ASCII plus a few merges. */
function stubVocabulary(): { vocab: Record<string, number>; merges: string[] } {
  const vocab: Record<string, number> = {};
  let id = 0;
  for (let c = 0x21; c <= 0x7e; c++) vocab[String.fromCharCode(c)] = id++;
  const merges = ['Ġ t', 'Ġ a', 'h e', 'i n', 'r e', 'o n', 'Ġt he', 'e r'];
  vocab['Ġ'] = id++;
  for (const m of merges) vocab[m.replace(' ', '')] = id++;
  return { vocab, merges };
}

function tokenizerJson(shape: ModelShape): Record<string, unknown> {
  const { vocab, merges } = stubVocabulary();
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specialTokenList(shape).map(([id, content]) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  };
}

async function writeSidecars(folder: string, shape: ModelShape, dtype: FixtureDtype, variant: Variant): Promise<void> {
  const { vocab, merges } = stubVocabulary();
  const files: [string, string][] = [
    ['config.json', hfJson(configJson(shape, dtype))],
    ['generation_config.json', hfJson(generationConfigJson(shape, variant))],
    ['tokenizer_config.json', hfJson(tokenizerConfigJson(shape, variant))],
    ['tokenizer.json', `${JSON.stringify(tokenizerJson(shape), null, 2)}\n`],
    ['vocab.json', `${JSON.stringify(vocab)}\n`],
    ['merges.txt', `#version: 0.2\n${merges.join('\n')}\n`],
  ];
  await Promise.all(files.map(([name, text]) => fs.promises.writeFile(path.join(folder, name), text)));
}

function indexJson(layout: ModelLayout): string {
  const weightMap: Record<string, string> = {};
  for (const [name, [file]] of layout.where) weightMap[name] = layout.files[file].fileName;
  return hfJson({ metadata: { total_size: layout.dataBytes }, weight_map: weightMap });
}

// ---------------------------------------------------------------------------------------------

function validateOptions(options: CheckpointPairOptions) {
  if (!options || typeof options.dir !== 'string' || options.dir === '') {
    throw usageError('fixture dir: expected a folder path');
  }
  if (!FIXTURE_SHAPES.includes(options.shape)) {
    throw usageError(`fixture shape "${String(options.shape)}": expected one of ${FIXTURE_SHAPES.join(', ')}`);
  }
  const dtype = options.dtype ?? 'BF16';
  if (!FIXTURE_DTYPES.includes(dtype)) {
    throw usageError(`fixture dtype "${String(dtype)}": expected one of ${FIXTURE_DTYPES.join(', ')}`);
  }
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw usageError(`fixture seed ${seed}: expected a whole number from 0 to 4294967295`);
  }
  const delta = options.delta ?? DEFAULT_DELTA;
  if (typeof delta !== 'number' || !(delta >= 0 && delta < 1)) {
    throw usageError(`fixture delta ${delta}: expected a relative distance from 0 up to (not including) 1`);
  }
  const shape = resolveModelShape(options.shape, { scale: options.scale, layers: options.layers });
  const tensors = listModelTensors(shape);
  const shards = options.shards ?? [shape.shards, shape.shards];
  if (!Array.isArray(shards) || shards.length !== 2) {
    throw usageError('fixture shards: expected two counts, [instruct, thinking]');
  }
  for (const count of shards) {
    if (!Number.isSafeInteger(count) || count < 1 || count > tensors.length) {
      throw usageError(`fixture shards ${count}: expected a whole number from 1 to ${tensors.length} (the tensor count)`);
    }
  }
  return { shape, tensors, dtype, seed, delta, shards };
}

async function isNonEmptyFolder(folder: string): Promise<boolean> {
  try {
    return (await fs.promises.readdir(folder)).length > 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Check both folders before touching either, then empty (when allowed) and create them. */
async function prepareFolders(folders: string[], overwrite: boolean): Promise<void> {
  for (const folder of folders) {
    if (!overwrite && (await isNonEmptyFolder(folder))) {
      throw new WeightmixError('FixtureExists', `${folder} already exists and is not empty (pass overwrite / --force to replace it)`);
    }
  }
  for (const folder of folders) {
    if (overwrite) await fs.promises.rm(folder, { recursive: true, force: true });
    await fs.promises.mkdir(folder, { recursive: true });
  }
}

/** Refuse up front when the pair cannot fit (the full-size 30B-A3B pair is 2 × 61 GB). */
async function checkFreeSpace(dir: string, bytes: number): Promise<void> {
  let folder = dir;
  while (!fs.existsSync(folder) && path.dirname(folder) !== folder) folder = path.dirname(folder);
  let free: number;
  try {
    const stats = await fs.promises.statfs(folder);
    free = stats.bavail * stats.bsize;
  } catch {
    return; // no statfs here: let the writes report a full disk
  }
  if (free < bytes) {
    throw new WeightmixError(
      'NoSpace',
      `the pair needs ${(bytes / 1e9).toFixed(2)} GB but ${folder} has ${(free / 1e9).toFixed(2)} GB free (a larger --scale makes it smaller)`,
    );
  }
}

function checkAborted(signal: AbortSignal | undefined) {
  if (signal?.aborted) throw new WeightmixError('Aborted', 'fixture generation was cancelled');
}

/**
 * Write `<dir>/instruct` and `<dir>/thinking`: same names, shapes and dtype; Thinking = Instruct
 * perturbed per element so ‖T − I‖/‖I‖ ≈ delta; tensor data depends only on (seed, tensor name).
 */
export async function makeCheckpointPair(options: CheckpointPairOptions): Promise<CheckpointPair> {
  const { shape, tensors, dtype, seed, delta, shards } = validateOptions(options);
  if (os.endianness() !== 'LE') throw new Error('fixtures are generated with little-endian typed arrays');
  checkAborted(options.signal);
  const folders = { instruct: path.resolve(options.dir, 'instruct'), thinking: path.resolve(options.dir, 'thinking') };
  const layouts = { instruct: planModelLayout(tensors, dtype, shards[0]), thinking: planModelLayout(tensors, dtype, shards[1]) };
  const fileBytes = [...layouts.instruct.files, ...layouts.thinking.files].reduce((n, f) => n + f.fileSize, 0);
  await checkFreeSpace(path.resolve(options.dir), fileBytes);
  await prepareFolders([folders.instruct, folders.thinking], options.overwrite ?? false);
  try {
    for (const variant of ['instruct', 'thinking'] as const) {
      await writeSidecars(folders[variant], shape, dtype, variant);
    }
    await writeTensorData({ folders, layouts, dtype, seed, delta, onProgress: options.onProgress, signal: options.signal });
    for (const variant of ['instruct', 'thinking'] as const) {
      if (layouts[variant].files.length > 1) {
        await fs.promises.writeFile(path.join(folders[variant], 'model.safetensors.index.json'), indexJson(layouts[variant]));
      }
    }
  } catch (e) {
    // A half-written pair is useless and can be large: take back the two folders this call made.
    await Promise.all(Object.values(folders).map((f) => fs.promises.rm(f, { recursive: true, force: true })));
    throw e;
  }
  return { ...folders, tensors: tensors.length, bytesPerModel: layouts.instruct.dataBytes };
}

interface TensorDataJob {
  folders: Record<Variant, string>;
  layouts: Record<Variant, ModelLayout>;
  dtype: FixtureDtype;
  seed: number;
  delta: number;
  onProgress?: (progress: FixtureProgress) => void;
  signal?: AbortSignal;
}

/** Every shard file of both models: headers, then each tensor's Instruct and Thinking data in one pass. */
async function writeTensorData(job: TensorDataJob): Promise<void> {
  const { folders, layouts, dtype, seed, delta } = job;
  const bytesPerElement = FORMATS[dtype].bytes;
  const tables = { normal: valueTables(dtype, 'normal', delta), norm: valueTables(dtype, 'norm', delta) };
  const handles: Record<Variant, fs.promises.FileHandle[]> = { instruct: [], thinking: [] };
  const writers = { instruct: new ChunkedWriter(CHUNK_BYTES), thinking: new ChunkedWriter(CHUNK_BYTES) };
  const totalBytes = 2 * layouts.instruct.dataBytes;
  let reported = -1;
  const report = (force: boolean) => {
    if (!job.onProgress) return;
    const bytesWritten = writers.instruct.written + writers.thinking.written;
    if (force || bytesWritten - reported >= 64 << 20) {
      reported = bytesWritten;
      job.onProgress({ bytesWritten, totalBytes });
    }
  };

  try {
    for (const variant of ['instruct', 'thinking'] as const) {
      for (const file of layouts[variant].files) {
        const handle = await fs.promises.open(path.join(folders[variant], file.fileName), 'w');
        handles[variant].push(handle);
        await handle.truncate(file.fileSize);
        await handle.write(file.header, 0, file.header.length, 0);
      }
    }
    // Walk the Instruct layout so its writes are sequential; Thinking's follow wherever its shards put each tensor.
    for (let f = 0; f < layouts.instruct.files.length; f++) {
      checkAborted(job.signal);
      const file = layouts.instruct.files[f];
      for (let t = 0; t < file.tensors.length; t++) {
        const tensor = file.tensors[t];
        const tableSet = tables[tensor.init];
        const state = streamState(seed, tensor.name);
        const [thinkingFile, thinkingStart] = layouts.thinking.where.get(tensor.name)!;
        const fds = { instruct: handles.instruct[f].fd, thinking: handles.thinking[thinkingFile].fd };
        let position = { instruct: file.positions[t], thinking: thinkingStart };
        let remaining = elementCount(tensor.shape) * bytesPerElement;
        while (remaining > 0) {
          // Chunks split tensors at even element indices (4-byte steps), so pairs never straddle chunks.
          const minRoom = Math.min(remaining, 4);
          const roomI = await writers.instruct.continueAt(fds.instruct, position.instruct, minRoom);
          const roomT = await writers.thinking.continueAt(fds.thinking, position.thinking, minRoom);
          let n = Math.min(remaining, roomI, roomT);
          if (n < remaining) n -= n % 4;
          if (bytesPerElement === 2) fillPairs16(state, tableSet, writers.instruct, writers.thinking, n / 2);
          else fillElements32(state, tableSet, writers.instruct, writers.thinking, n / 4);
          writers.instruct.used += n;
          writers.thinking.used += n;
          position = { instruct: position.instruct + n, thinking: position.thinking + n };
          remaining -= n;
          if (writers.instruct.used === CHUNK_BYTES || writers.thinking.used === CHUNK_BYTES) {
            checkAborted(job.signal);
            report(false);
          }
        }
      }
    }
    await writers.instruct.finish();
    await writers.thinking.finish();
    report(true);
  } catch (e) {
    await Promise.all([writers.instruct.abandon(), writers.thinking.abandon()]);
    throw e;
  } finally {
    await Promise.all([...handles.instruct, ...handles.thinking].map((h) => h.close()));
  }
}
