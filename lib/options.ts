/** Validation of the options shared by every merge front door (API and CLI alike). */
import * as os from 'node:os';
import { usageError } from './errors';
import { DeviceChoice, DEVICE_CHOICES } from './engine/device';
import { FloatDtype, FLOAT_DTYPES, TORCH_DTYPE_NAMES } from './format/dtypes';

/** 'exact': torch.lerp in f32, one rounding. 'mi': the paper's script, bf16 arithmetic rounded after each operation. */
export type Numerics = 'exact' | 'mi';
export const NUMERICS: readonly Numerics[] = ['exact', 'mi'];
/** Which model's config, tokenizer and chat template an interpolation copies. */
export type FilesFrom = 'instruct' | 'thinking';
/** How an output dtype may be written: `BF16`, `bf16`, `bfloat16` (likewise F16 and F32). */
export type FloatDtypeName = FloatDtype | Lowercase<FloatDtype> | 'bfloat16' | 'float16' | 'float32';

/** How the engine runs: threads, output blocks, O_DIRECT, device. None of them changes an output byte. */
export interface EngineOptions {
  /** Worker threads (default: the number of cores). */
  threads?: number;
  /** Output block size in bytes (multiple of 4096; default 8 MiB, or 1 MiB when every output is on tmpfs; halved, down to 64 KiB, while the blocks in flight of all outputs (a batch's, a sweep's λ) and threads exceed the write pass's memory budget). */
  blockBytes?: number;
  /** O_DIRECT output where the file system allows it (default true). */
  direct?: boolean;
  /** Where the arithmetic runs: 'cpu', 'cuda' (an error without a usable GPU) or 'auto' (default: the GPU when usable). */
  device?: DeviceChoice;
}

// Each parser takes the option's name as its front door spells it (lib/api/validate-options.ts): `lambda` in the API, `--lambda` on the command line.

export function parseDevice(value: unknown, name = '--device'): DeviceChoice {
  if (value === undefined) return 'auto';
  const v = typeof value === 'string' ? value.toLowerCase() : value;
  if (!(DEVICE_CHOICES as readonly unknown[]).includes(v)) throw usageError(`${name} must be one of ${DEVICE_CHOICES.join(', ')}, got ${showValue(value)}`);
  return v as DeviceChoice;
}

/** A decimal number as written on a command line: 0.8, -0.25, .5, 1e-3 (Number() would also take 0x1, 0b1 and Infinity). */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** The value of a decimal number written as text, or NaN for anything else (hexadecimal, Infinity, empty). */
export function decimalNumber(text: string): number {
  return DECIMAL.test(text.trim()) ? Number(text) : NaN;
}

/** An option value for a message: JSON.stringify would print NaN and Infinity as null. */
export function showValue(value: unknown): string {
  return typeof value === 'number' || typeof value === 'bigint' ? String(value) : (JSON.stringify(value) ?? String(value));
}

/** An `env` option (where `${NAME}` and the `HF_*` variables are read): an object whose variables are text, as process.env's. */
export function checkEnvOption(env: unknown, where: string): void {
  if (env !== undefined && (typeof env !== 'object' || env === null))
    throw usageError(`${where}: option 'env' must be an object of variables, got ${showValue(env)}`);
  // A number would be spelled however String() spells it.
  const notText = env === undefined ? undefined : Object.entries(env as Record<string, unknown>).find(([, v]) => v !== undefined && typeof v !== 'string');
  if (notText) throw usageError(`${where}: option 'env': variable '${notText[0]}' must be a string, got ${showValue(notText[1])}`);
}

/** The folder (or parent folder) a merge writes: any non-empty path; the output transaction checks the rest. */
export function parseOutputFolder(value: unknown, name = '--output'): string {
  if (typeof value !== 'string' || value === '') throw usageError(`${name} must be a non-empty folder path, got ${showValue(value)}`);
  return value;
}

/** λ: any finite number. Values outside [0, 1] are accepted on purpose: they extrapolate past Instruct or Thinking. */
export function parseLambda(value: unknown, name = '--lambda'): number {
  const x = typeof value === 'string' ? decimalNumber(value) : value;
  if (typeof x !== 'number' || !Number.isFinite(x)) throw usageError(`${name} must be a finite decimal number, got ${showValue(value)}`);
  return x;
}

export function parseNumerics(value: unknown, name = '--numerics'): Numerics {
  if (value === undefined) return 'exact';
  if (!(NUMERICS as readonly unknown[]).includes(value)) throw usageError(`${name} must be one of ${NUMERICS.join(', ')}, got ${showValue(value)}`);
  return value as Numerics;
}

export function parseDtype(value: unknown, name = '--dtype'): FloatDtype | undefined {
  if (value === undefined) return undefined;
  const up = typeof value === 'string' ? value.toUpperCase() : value;
  // torch's names are accepted too (BFLOAT16 → BF16, …).
  const alias: Record<string, FloatDtype> = Object.fromEntries(FLOAT_DTYPES.map((d) => [TORCH_DTYPE_NAMES[d].toUpperCase(), d]));
  const d = typeof up === 'string' ? (alias[up] ?? up) : up;
  if (!(FLOAT_DTYPES as readonly unknown[]).includes(d)) throw usageError(`${name} must be one of ${FLOAT_DTYPES.join(', ')}, got ${showValue(value)}`);
  return d as FloatDtype;
}

export function parseFilesFrom(value: unknown, name = '--files-from'): FilesFrom {
  if (value === undefined) return 'thinking';
  if (value !== 'instruct' && value !== 'thinking') throw usageError(`${name} must be instruct or thinking, got ${showValue(value)}`);
  return value;
}

/** A whole number option's value: a number as given, or a string of digits as its number (a setting read from text); else NaN. */
function wholeNumberOf(value: unknown): unknown {
  return typeof value === 'string' ? (/^\d+$/.test(value.trim()) ? Number(value) : NaN) : value;
}

export function parseThreads(value: unknown, name = '--threads'): number {
  if (value === undefined) return os.availableParallelism();
  const n = wholeNumberOf(value);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1024)
    throw usageError(`${name} must be an integer from 1 to 1024, got ${showValue(value)}`);
  return n;
}

/** The output block size without `blockBytes` (a write pass to tmpfs uses engine/block-bytes.ts's smaller one). */
export const DEFAULT_BLOCK_BYTES = 8 << 20;

/** A multiple of 4096 up to 1 GiB; a string of digits too, as `threads` takes one (a caller's setting read from text). */
export function parseBlockBytes(value: unknown, name = 'blockBytes'): number {
  if (value === undefined) return DEFAULT_BLOCK_BYTES;
  const n = wholeNumberOf(value);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 4096 || n % 4096 !== 0 || n > 1 << 30) {
    throw usageError(`${name} must be a multiple of 4096 up to 1 GiB, got ${showValue(value)}`);
  }
  return n;
}

/** The most parts a job array may have: the assignment holds a list per part (engine/parts.ts). */
const MAX_PARTS = 65536;

/** `--part I/N`: which of N balanced parts this run writes (1-based on the command line). */
export function parsePart(value: unknown, name = '--part'): { index: number; count: number } | undefined {
  if (value === undefined) return undefined;
  const valid = (index: number, count: number) => Number.isInteger(index) && Number.isInteger(count) && index >= 1 && index <= count && count <= MAX_PARTS;
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { index, count } = value as { index: number; count: number };
    // Only those two keys, as the options' own keys are checked (a typo'd {index, cout} would otherwise pass as another key).
    const extra = Object.keys(value).filter((k) => k !== 'index' && k !== 'count');
    if (extra.length > 0) throw usageError(`${name}: unknown key '${extra[0]}' (a part is {index, count}, or 'I/N')`);
    if (valid(index, count)) return { index, count };
  }
  const m = typeof value === 'string' ? /^(\d+)\/(\d+)$/.exec(value.trim()) : null;
  if (m && valid(Number(m[1]), Number(m[2]))) return { index: Number(m[1]), count: Number(m[2]) };
  throw usageError(`${name} must be I/N with 1 ≤ I ≤ N ≤ ${MAX_PARTS} (e.g. 2/8), got ${showValue(value)}`);
}
