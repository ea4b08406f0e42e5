/**
 * A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), read and checked:
 * which model tensors it changes, with which A and B and which scale (lora_alpha / r, or / √r with
 * rslora; alpha_pattern and rank_pattern as PEFT matches them), and which tensors it replaces whole
 * (modules_to_save). Kinds PEFT merges differently (DoRA, LoRA biases, other PEFT types) are refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../../errors';
import { parseJsonStrict } from '../../format/json-strict';
import { isFloatDtype } from '../../format/dtypes';
import { readSafetensorsHeader, TensorEntry } from '../../format/safetensors';
import type { StoredTensor } from '../../format/tensor-data';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** One low-rank update of a model tensor: W' = W + scale · B·A (transposed for embeddings and fan_in_fan_out). */
export interface LoraUpdate {
  /** The model tensor it changes. */
  target: string;
  /** A: [r, in] (an embedding's A: [r, rows]). */
  a: StoredTensor & { shape: number[] };
  /** B: [out, r] (an embedding's B: [columns, r]). */
  b: StoredTensor & { shape: number[] };
  /** lora_alpha / r, or lora_alpha / √r with use_rslora (PEFT's float64 `scaling`). */
  scale: number;
  /** B·A is stored transposed in the model: embeddings (PEFT's Embedding layer) and fan_in_fan_out (GPT-2's Conv1D). */
  transpose: boolean;
}

/** An adapter, read: its updates by target tensor, and tensors it replaces (modules_to_save, an adapted embedding's saved base), before any update. */
export interface LoraAdapter {
  dir: string;
  updates: Map<string, LoraUpdate>;
  replacements: Map<string, StoredTensor & { shape: number[] }>;
}

function adapterError(dir: string, why: string): WeightmixError {
  return new WeightmixError('InvalidLoraAdapter', `${dir}: ${why}`);
}

interface AdapterConfig {
  r: number;
  alpha: number;
  rslora: boolean;
  fanInFanOut: boolean;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
}

function numberMap(v: unknown, key: string, dir: string): Record<string, number> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'number' && x > 0)) {
    throw adapterError(dir, `${ADAPTER_CONFIG}: ${key} must map module patterns to positive numbers`);
  }
  return v as Record<string, number>;
}

function readConfig(dir: string): AdapterConfig {
  const file = path.join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(file)) throw adapterError(dir, `no ${ADAPTER_CONFIG}: a model+lora reference names a PEFT LoRA adapter folder`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    // A folder of that name, or one the user cannot read: the adapter's fault, said as the adapter's (not the output's).
    throw adapterError(dir, `cannot read ${ADAPTER_CONFIG}: ${(e as Error).message}`);
  }
  const doc = parseJsonStrict(text, { what: file, maxDepth: 16 }) as Record<string, unknown>;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw adapterError(dir, `${ADAPTER_CONFIG} is not a JSON object`);
  const unsupported = (why: string) => new WeightmixError('UnsupportedRecipe', `${dir}: ${why}`);
  if (doc.peft_type !== undefined && doc.peft_type !== 'LORA')
    throw unsupported(`peft_type ${JSON.stringify(doc.peft_type)}: weightmix applies LoRA adapters only`);
  if (doc.use_dora === true) throw unsupported('a DoRA adapter (use_dora) rescales each column by a learned magnitude, which weightmix does not apply');
  if (doc.lora_bias === true) throw unsupported('an adapter with LoRA biases (lora_bias) also changes biases, which weightmix does not apply');
  for (const key of ['target_parameters', 'trainable_token_indices', 'layer_replication']) {
    const v = doc[key];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0) && !(typeof v === 'object' && Object.keys(v).length === 0)) {
      throw unsupported(`an adapter with ${key} changes the model in a way weightmix does not apply (plain LoRA on linear and embedding layers only)`);
    }
  }
  const r = doc.r;
  const alpha = doc.lora_alpha ?? 8;
  if (!Number.isInteger(r) || (r as number) <= 0) throw adapterError(dir, `${ADAPTER_CONFIG}: r must be a positive integer, got ${JSON.stringify(r)}`);
  if (typeof alpha !== 'number' || !Number.isFinite(alpha))
    throw adapterError(dir, `${ADAPTER_CONFIG}: lora_alpha must be a number, got ${JSON.stringify(alpha)}`);
  return {
    r: r as number,
    alpha,
    rslora: doc.use_rslora === true,
    fanInFanOut: doc.fan_in_fan_out === true,
    rankPattern: numberMap(doc.rank_pattern, 'rank_pattern', dir),
    alphaPattern: numberMap(doc.alpha_pattern, 'alpha_pattern', dir),
  };
}

/** PEFT's get_pattern_key: the first pattern that matches the module name's end at a dot boundary. */
function patternValue(patterns: Record<string, number>, module: string, fallback: number): number {
  for (const [pattern, value] of Object.entries(patterns)) {
    let re: RegExp;
    try {
      re = new RegExp(`^(.*\\.)?(${pattern})$`);
    } catch {
      continue;
    }
    if (re.test(module)) return value;
  }
  return fallback;
}

/** PEFT's saved names: base_model.model.<module>.lora_A.weight (lora_embedding_A for embeddings; an adapter name may follow). */
const LORA_NAME = /^base_model\.model\.(.+)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.[A-Za-z0-9_-]+)?(?:\.weight)?$/;
const PREFIX = 'base_model.model.';

/** Reads and checks an adapter folder. */
export async function readLoraAdapter(dir: string): Promise<LoraAdapter> {
  const config = readConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS);
  if (!fs.existsSync(file)) throw adapterError(dir, `no ${ADAPTER_WEIGHTS} (weightmix reads safetensors adapters only)`);
  const header = await readSafetensorsHeader(file);
  const stored = (t: TensorEntry) => ({
    file,
    offset: header.dataStart + t.dataOffsets[0],
    byteLength: t.byteLength,
    elementCount: t.elementCount,
    dtype: t.dtype,
    shape: t.shape,
  });
  const halves = new Map<string, { a?: TensorEntry; b?: TensorEntry; embedding: boolean }>();
  const replacements = new Map<string, StoredTensor & { shape: number[] }>();
  for (const t of header.tensors) {
    if (!isFloatDtype(t.dtype)) throw adapterError(dir, `${t.name} is ${t.dtype}; LoRA weights must be F32, F16 or BF16`);
    const m = LORA_NAME.exec(t.name);
    if (!m) {
      // modules_to_save: a whole tensor saved under the model's own name.
      if (!t.name.startsWith(PREFIX) || /\.lora_/.test(t.name)) throw adapterError(dir, `${ADAPTER_WEIGHTS}: ${t.name} is not a LoRA weight weightmix knows`);
      // An adapted embedding's own weight is saved too, as <module>.base_layer.weight.
      replacements.set(t.name.slice(PREFIX.length).replace(/\.base_layer\.weight$/, '.weight'), stored(t));
      continue;
    }
    const [, module, kind] = m;
    const entry = halves.get(module) ?? { embedding: kind.startsWith('lora_embedding') };
    if (kind.endsWith('A')) entry.a = t;
    else entry.b = t;
    halves.set(module, entry);
  }
  const updates = new Map<string, LoraUpdate>();
  for (const [module, { a, b, embedding }] of halves) {
    if (!a || !b) throw adapterError(dir, `${module} has lora_${a ? 'A' : 'B'} without lora_${a ? 'B' : 'A'}`);
    const r = patternValue(config.rankPattern, module, config.r);
    if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[0] !== r || b.shape[1] !== r) {
      throw adapterError(dir, `${module}: lora A [${a.shape}] and B [${b.shape}] do not have rank ${r} (adapter_config.json's r)`);
    }
    const alpha = patternValue(config.alphaPattern, module, config.alpha);
    const target = `${module}.weight`;
    updates.set(target, {
      target,
      a: stored(a),
      b: stored(b),
      scale: config.rslora ? alpha / Math.sqrt(r) : alpha / r,
      transpose: embedding || config.fanInFanOut,
    });
  }
  return { dir, updates, replacements };
}
