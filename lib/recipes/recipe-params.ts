/**
 * mergekit's parameter values and where they come from: scalars, gradients (lists interpolated over
 * the layers of a slice), `filter:` conditionals, and the precedence per-model → slice → global.
 */
import { WeightmixError } from '../errors';
import { decimalNumber } from '../options';

/** A single parameter value. */
export type Scalar = number | boolean | string;
/** A conditional entry: `{filter: 'self_attn', value: …}`; `filter: '*'` or no filter matches every tensor. */
export interface ConditionalEntry {
  /** A substring of the tensor names it applies to; absent: every other tensor. */
  filter?: string;
  /** The value where the filter matches. */
  value: ParameterSetting;
}
/** A parameter's setting: a value, a gradient (a list interpolated over a slice's layers) or conditional entries. */
export type ParameterSetting = Scalar | Scalar[] | ConditionalEntry[];
/** Parameters by name (`weight`, `density`, `t`, …). */
export type ParameterMap = Record<string, ParameterSetting>;

function recipeError(message: string): WeightmixError {
  return new WeightmixError('InvalidRecipe', message);
}

const isScalar = (v: unknown): v is Scalar => typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string';

/** Checks one parameter value's shape up front, so that a bad recipe fails before any file is opened. */
export function validateSetting(value: unknown, where: string): ParameterSetting {
  if (isScalar(value)) {
    if (typeof value === 'number' && !Number.isFinite(value)) throw recipeError(`${where}: ${value} is not a finite number`);
    return value;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) throw recipeError(`${where}: an empty list has no value`);
    if (value.every(isScalar)) {
      for (const v of value) if (typeof v === 'number' && !Number.isFinite(v)) throw recipeError(`${where}: ${v} is not a finite number`);
      return value as Scalar[];
    }
    if (value.every((e) => e !== null && typeof e === 'object' && !Array.isArray(e))) {
      return value.map((e, i) => {
        const entry = e as Record<string, unknown>;
        const extra = Object.keys(entry).filter((k) => k !== 'filter' && k !== 'value');
        if (extra.length > 0)
          throw recipeError(`${where}[${i}]: unsupported key ${extra.map((k) => `'${k}'`).join(', ')} (a conditional entry has 'filter' and 'value')`);
        if (!('value' in entry)) throw recipeError(`${where}[${i}]: a conditional entry needs a 'value'`);
        // mergekit's filter is Optional[str]: null is no filter.
        if (entry.filter !== undefined && entry.filter !== null && typeof entry.filter !== 'string')
          throw recipeError(`${where}[${i}].filter: expected a string (a substring of tensor names, or '*' for every tensor)`);
        const inner = validateSetting(entry.value, `${where}[${i}].value`);
        return entry.filter === undefined || entry.filter === null ? { value: inner } : { filter: entry.filter as string, value: inner };
      });
    }
    throw recipeError(`${where}: a list must hold only numbers/strings (a gradient) or only {filter, value} entries`);
  }
  throw recipeError(`${where}: expected a number, a boolean, a string, a gradient list or a list of {filter, value} entries`);
}

/** The values a parameter takes, where its readers take only one kind: numbers (gradients of numbers too), or switches (true/false, 0/1). rescale (a switch or 'inverse') and consensus_method are checked where they are read. */
const PARAMETER_KINDS: Readonly<Record<string, 'number' | 'switch'>> = {
  weight: 'number',
  density: 'number',
  gamma: 'number',
  epsilon: 'number',
  lambda: 'number',
  t: 'number',
  select_topk: 'number',
  scale: 'number',
  max_iter: 'number',
  tol: 'number',
  eps: 'number',
  r: 'number',
  alpha: 'number',
  normalize: 'switch',
  normalize_weights: 'switch',
  nuslerp_flatten: 'switch',
  nuslerp_row_wise: 'switch',
  filter_wise: 'switch',
  int8_mask: 'switch',
};

/**
 * Refuses a value of the wrong kind for its parameter wherever it appears (a gradient's entry, a conditional entry's value), as the
 * recipe is parsed: its reader would refuse it only at the first tensor it applies to, after the models were opened or downloaded.
 */
export function checkParameterKind(name: string, setting: ParameterSetting, where: string): void {
  const kind = PARAMETER_KINDS[name];
  if (kind === undefined) return;
  const values = (s: ParameterSetting, at: string): [Scalar, string][] =>
    isScalar(s)
      ? [[s, at]]
      : s.every(isScalar)
        ? (s as Scalar[]).map((v, i): [Scalar, string] => [v, `${at}[${i}]`])
        : (s as ConditionalEntry[]).flatMap((e, i) => values(e.value, `${at}[${i}].value`));
  for (const [v, at] of values(setting, where)) {
    const ok = kind === 'number' ? typeof v === 'number' : typeof v === 'boolean' || v === 0 || v === 1;
    if (!ok) throw recipeError(`${at}: '${name}' takes ${kind === 'number' ? 'a number' : 'true or false'}, got ${JSON.stringify(v)}`);
  }
}

/**
 * `setting` with each decimal-number string of a numeric parameter as the number (`weight: "0.5"`): mergekit's parameter values
 * are floats, which pydantic reads from such strings.
 */
export function numbersOfStrings(name: string, setting: ParameterSetting): ParameterSetting {
  if (PARAMETER_KINDS[name] !== 'number') return setting;
  const number = (v: Scalar): Scalar => (typeof v === 'string' && !Number.isNaN(decimalNumber(v)) ? decimalNumber(v) : v);
  if (isScalar(setting)) return number(setting);
  if (setting.every(isScalar)) return (setting as Scalar[]).map(number);
  return (setting as ConditionalEntry[]).map((e) => ({ ...e, value: numbersOfStrings(name, e.value) }));
}

/**
 * The value of a setting for one tensor at position t ∈ [0, 1] within its slice (mergekit's
 * evaluate_setting): numeric lists are piecewise-linear gradients, other lists are stepped, and
 * conditional lists take the first entry whose filter is `*` (mergekit's wildcard), a substring of the
 * tensor name, or absent. Undefined when no conditional entry matches.
 */
export function evaluateSetting(tensorName: string, setting: ParameterSetting, t: number): Scalar | undefined {
  if (isScalar(setting)) return setting;
  if (setting.length > 0 && setting.every(isScalar)) {
    const list = setting as Scalar[];
    if (list.every((e) => typeof e === 'number')) {
      const nums = list as number[];
      const scaled = t * (nums.length - 1);
      const i0 = Math.floor(scaled);
      const i1 = Math.min(nums.length - 1, i0 + 1);
      const frac = scaled - i0;
      return (1 - frac) * nums[i0] + frac * nums[i1];
    }
    return list[Math.floor(t * (list.length - 1))];
  }
  for (const entry of setting as ConditionalEntry[]) {
    if (entry.filter === undefined || entry.filter === '*' || tensorName.includes(entry.filter)) return evaluateSetting(tensorName, entry.value, t);
  }
  return undefined;
}

/** Where a tensor's parameters are looked up, most specific first. */
export interface ParameterScope {
  /** Output tensor name: filters of the method-wide lookups (no model) match against it. */
  tensorName: string;
  /** Each model's source tensor name where a slice renames layers: a per-model lookup's filters match it, as mergekit's `for_tensor(weight_in.name)` does. */
  sourceNames?: Map<number, string>;
  /** Position within the slice: layer i of n has t = i / (n − 1) (t = 1 when n = 1); 0 outside the layers. */
  t: number;
  /** Per-model parameter maps (a slice source's, or a `models:` entry's), keyed by model index. */
  modelParams: Map<number, ParameterMap>;
  /** The slice's own `parameters:` (none for tensors outside the decoder layers). */
  sliceParams?: ParameterMap;
  /** `modules: {default: {parameters}}` (mergekit's module level). */
  moduleParams?: ParameterMap;
  globalParams?: ParameterMap;
}

/** mergekit's ConfigReader.parameter: the first level that yields a value wins. */
export function lookupParameter(scope: ParameterScope, name: string, model?: number): Scalar | undefined {
  const levels: (ParameterMap | undefined)[] = [
    model === undefined ? undefined : scope.modelParams.get(model),
    scope.sliceParams,
    scope.moduleParams,
    scope.globalParams,
  ];
  const tensorName = (model !== undefined && scope.sourceNames?.get(model)) || scope.tensorName;
  for (const level of levels) {
    if (!level || !(name in level)) continue;
    const v = evaluateSetting(tensorName, level[name], scope.t);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** Position of layer `index` among `count` layers of a slice, as mergekit computes it. */
export function slicePosition(index: number, count: number): number {
  return count > 1 ? index / (count - 1) : 1;
}

export function numberParameter(scope: ParameterScope, name: string, model: number | undefined, fallback?: number, modelLabel?: string): number {
  const v = lookupParameter(scope, name, model);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw recipeError(`parameter '${name}' is required${modelLabel ? ` for ${modelLabel}` : ''} (tensor ${scope.tensorName})`);
  }
  if (typeof v !== 'number') throw recipeError(`parameter '${name}' must be a number, got ${JSON.stringify(v)} (tensor ${scope.tensorName})`);
  return v;
}

export function booleanParameter(scope: ParameterScope, name: string, fallback: boolean): boolean {
  const v = lookupParameter(scope, name);
  if (v === undefined) return fallback;
  if (typeof v === 'boolean') return v;
  if (v === 0 || v === 1) return v === 1;
  throw recipeError(`parameter '${name}' must be true or false, got ${JSON.stringify(v)} (tensor ${scope.tensorName})`);
}
