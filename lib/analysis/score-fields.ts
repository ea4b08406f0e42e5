/** Where `score` finds each logical field in a generations record: presets, overrides, dotted paths. */
import { usageError } from '../errors';

/** Where each logical field lives in a record (a key or a dotted path). */
export interface FieldMap {
  /** question identity (string or number); required */
  question: string;
  /** sample index within the question (non-negative integer); optional, else file order */
  sample: string;
  /** generated text; needed for Think #R */
  response: string;
  /** correctness (true/false or 1/0); required */
  correct: string;
  /** generated token count (integer) or the token ids (array, its length is used) */
  tokens: string;
  /** extracted final answer (string, number or null); needed for Vote@k */
  answer: string;
  /** benchmark name; records without it go to `ScoreOptions.benchmark` */
  benchmark: string;
}

/** A field `score` reads from each generation record. */
export type FieldName = keyof FieldMap;
export const FIELD_NAMES: readonly FieldName[] = ['question', 'sample', 'response', 'correct', 'tokens', 'answer', 'benchmark'];

/** Field names of a known generations format. */
export type FieldPreset = 'default' | 'vllm' | 'opencompass';

/**
 * Field presets. `default` is weightmix's own shape; `vllm` is one vLLM `CompletionOutput`
 * (index, text, token_ids) per line beside its `RequestOutput.request_id`, plus the grader's
 * `correct` and `extracted_answer`; `opencompass` is one entry of an OpenCompass results file's
 * `details` per line (`jq -c '.details[]'`), whose `correct`/`pred`/`prediction` hold one value
 * per sample when the dataset was run with n > 1.
 */
export const FIELD_PRESETS: Readonly<Record<FieldPreset, Readonly<FieldMap>>> = {
  default: {
    question: 'question_id',
    sample: 'sample_index',
    response: 'response',
    correct: 'correct',
    tokens: 'num_tokens',
    answer: 'answer',
    benchmark: 'benchmark',
  },
  vllm: {
    question: 'request_id',
    sample: 'index',
    response: 'text',
    correct: 'correct',
    tokens: 'token_ids',
    answer: 'extracted_answer',
    benchmark: 'benchmark',
  },
  opencompass: {
    question: 'example_abbr',
    sample: 'sample_index',
    response: 'prediction',
    correct: 'correct',
    tokens: 'num_tokens',
    answer: 'pred',
    benchmark: 'dataset',
  },
};

/** Parses repeated `--field name=path` options (name ∈ FIELD_NAMES). */
export function parseFieldAssignments(assignments: readonly string[]): Partial<FieldMap> {
  const out: Partial<FieldMap> = {};
  for (const a of assignments) {
    const eq = a.indexOf('=');
    const name = a.slice(0, eq).trim();
    const value = a.slice(eq + 1).trim();
    if (eq < 0 || !(FIELD_NAMES as readonly string[]).includes(name) || value === '') {
      throw usageError(`--field expects NAME=KEY with NAME one of ${FIELD_NAMES.join(', ')} and a non-empty key or dotted path, got '${a}'`);
    }
    out[name as FieldName] = value;
  }
  return out;
}

export function parseFieldPreset(text: string): FieldPreset {
  if (text in FIELD_PRESETS) return text as FieldPreset;
  throw usageError(`--preset expects one of ${Object.keys(FIELD_PRESETS).join(', ')}, got '${text}'`);
}

/** The field map a score run uses: the preset's, with overrides on top. */
export function resolveFields(preset: FieldPreset = 'default', overrides: Partial<FieldMap> = {}): FieldMap {
  if (!(preset in FIELD_PRESETS)) throw usageError(`preset must be one of ${Object.keys(FIELD_PRESETS).join(', ')}, got '${preset}'`);
  const fields: FieldMap = { ...FIELD_PRESETS[preset] };
  for (const [name, value] of Object.entries(overrides)) {
    if (!(FIELD_NAMES as readonly string[]).includes(name)) throw usageError(`unknown field '${name}' (fields: ${FIELD_NAMES.join(', ')})`);
    if (typeof value !== 'string' || value.trim() === '') throw usageError(`field '${name}' needs a non-empty key or dotted path`);
    fields[name as FieldName] = value.trim();
  }
  return fields;
}

export const MISSING = Symbol('missing');

/** Resolves a key or dotted path; a key spelled exactly like the whole path wins. */
export function lookup(record: Record<string, unknown>, key: string): unknown {
  if (Object.prototype.hasOwnProperty.call(record, key)) return record[key];
  let cur: unknown = record;
  for (const part of key.split('.')) {
    if (Array.isArray(cur) && /^[0-9]+$/.test(part) && Number(part) < cur.length) cur = cur[Number(part)];
    else if (cur !== null && typeof cur === 'object' && !Array.isArray(cur) && Object.prototype.hasOwnProperty.call(cur, part)) {
      cur = (cur as Record<string, unknown>)[part];
    } else return MISSING;
  }
  return cur;
}
