/**
 * The library's front door: an options object is checked as strictly as the command line checks its
 * flags (unknown keys, missing or null values, callbacks and signals of the wrong kind), and each
 * front door names options its own way in messages: the API by key, the command line by flag.
 */
import { usageError } from '../errors';
import { showValue } from '../options';

/** How a front door spells an option in a message. */
export type OptionNamer = (key: string) => string;

/** The library's spelling: the option's key, as the caller wrote it. */
export const API_NAMES: OptionNamer = (key) => key;

/** The command line's spelling: `skipModules` is `--skip-modules`. */
export const CLI_FLAGS: OptionNamer = (key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * Every key a function's options object may hold, and whether it must be given. Declared as
 * `OptionKeys<XOptions>`, the compiler keeps the list equal to the options type.
 */
export type OptionKeys<T> = { readonly [K in keyof Required<T>]: 'required' | 'optional' };

/** The keys every merge and analysis run shares for its callbacks and cancellation. */
const FUNCTION_KEYS = new Set(['onProgress', 'onNotice', 'onDownload']);
/** Switches: only true or false (a caller's `force: 'false'` from a config string would otherwise replace an output). */
const BOOLEAN_KEYS = new Set(['force', 'direct', 'whitespaceTokens', 'recompute', 'overwrite', 'allowCrimes']);

/** The Levenshtein distance, for "did you mean": option names are short. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The known key within two edits of `key`, the nearest: 'shard' means 'shards' (1 edit), not 'shape' (2). */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  const scored = known.map((k) => ({ k, d: distance(k.toLowerCase(), key.toLowerCase()) })).filter((s) => s.d <= 2);
  return scored.sort((a, b) => a.d - b.d)[0]?.k;
}

function suggestion(key: string, known: readonly string[]): string {
  const nearest = nearestKey(key, known);
  return nearest ? ` (did you mean '${nearest}'?)` : ` (the options are ${known.map((k) => `'${k}'`).join(', ')})`;
}

/**
 * Checks `options` before a run starts: a plain object; no key outside `keys`; every required key
 * present and neither undefined nor null; no optional key null; `onProgress`/`onNotice`/`onDownload` functions;
 * `signal` an AbortSignal; switches (`force`, `direct`, …) booleans. Values are checked later by the option parsers, with the same names.
 */
export function checkOptions<T>(fn: string, options: unknown, keys: OptionKeys<T>): asserts options is T {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw usageError(`${fn}(options): options must be an object, got ${options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options}`);
  }
  const table = keys as Record<string, 'required' | 'optional'>;
  const known = Object.keys(table);
  const record = options as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!known.includes(key)) throw usageError(`${fn}: unknown option '${key}'${suggestion(key, known)}`);
  }
  for (const key of known) {
    const value = record[key];
    if (table[key] === 'required' && (value === undefined || value === null)) throw usageError(`${fn}: option '${key}' is required`);
    if (value === null) throw usageError(`${fn}: option '${key}' is null; leave it out (or undefined) for the default`);
    if (value === undefined) continue;
    if (FUNCTION_KEYS.has(key) && typeof value !== 'function') throw usageError(`${fn}: option '${key}' must be a function, got ${typeof value}`);
    if (BOOLEAN_KEYS.has(key) && typeof value !== 'boolean') throw usageError(`${fn}: option '${key}' must be true or false, got ${showValue(value)}`);
    if (key === 'signal' && !(value instanceof AbortSignal)) throw usageError(`${fn}: option 'signal' must be an AbortSignal, got ${describe(value)}`);
  }
}

function describe(value: unknown): string {
  if (typeof value !== 'object') return typeof value;
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'a plain object';
}
