/** `sweep`: one model per λ from a single pass over the inputs, each published atomically. */
import * as path from 'node:path';
import { usageError } from '../errors';
import { INTERPOLATION_COMMON_KEYS, InterpolationCommon, InterpolationSummary, runInterpolation } from './interpolate';
import { parseLambda, parseOutputFolder, showValue } from '../options';
import { API_NAMES, checkOptions, OptionKeys, OptionNamer } from '../api/validate-options';
import { withGuardedCallbacks } from '../api/guarded-callbacks';

/** The options of `sweep`. */
export interface SweepOptions extends InterpolationCommon {
  /** `0:1:0.1` (start:stop:step, inclusive), `0.2,0.4,0.8`, or an array. */
  lambdas: string | number[];
  /** The folder that receives `lambda-0.80/`, `lambda-0.125/`, … */
  output: string;
}

const MAX_MODELS = 1000;

/**
 * Parses a λ list; a range's points are start + i·step up to stop, exact decimals of the precision the range is written with.
 * `name` is how messages spell the option (`lambdas`, the library's spelling, by default; the command passes `--lambdas`).
 * @throws {@link WeightmixError} `Usage` for a malformed list, a repeated value or more than 1000 values.
 */
export function parseLambdaList(spec: string | number[], name = 'lambdas'): number[] {
  let values: number[];
  if (Array.isArray(spec)) {
    values = spec.map((x) => parseLambda(x, name));
  } else if (typeof spec === 'string' && spec.includes(':')) {
    const parts = spec.split(':');
    if (parts.length !== 3) throw usageError(`${name} range must be start:stop:step, got ${JSON.stringify(spec)}`);
    const [start, stop, step] = parts.map((p) => parseLambda(p, name));
    if (!(step > 0) || stop < start) throw usageError(`${name} range needs step > 0 and stop ≥ start, got ${JSON.stringify(spec)}`);
    values = rangePoints(parts, [start, stop, step], (count) => usageError(`${name} ${spec} makes ${count} models; at most ${MAX_MODELS}`));
  } else if (typeof spec === 'string') {
    values = spec.split(',').map((p) => parseLambda(p.trim(), name));
  } else if (spec === undefined || spec === null) {
    throw usageError(`${name} is required`);
  } else {
    throw usageError(`${name} must be a list of λ values, "a,b,c" or "start:stop:step", got ${JSON.stringify(spec)}`);
  }
  if (values.length === 0) throw usageError(`${name} names no λ`);
  if (new Set(values).size !== values.length) throw usageError(`${name} repeats a value: ${values.join(',')}`);
  if (values.length > MAX_MODELS) throw usageError(`${name} makes ${values.length} models; at most ${MAX_MODELS}`);
  return values;
}

/** Decimal places a number is written with (`0.125`: 3, `1e-13`: 13, `2.5e2`: 0). */
function decimalsOf(text: string): number {
  const m = /^[+-]?\d*(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(text.trim());
  return m ? Math.max(0, (m[1]?.length ?? 0) - Number(m[2] ?? 0)) : Infinity;
}

/**
 * A range's points start + i·step up to stop, in decimal: with d the most decimals the three are written with, each is an integer
 * of 10^-d, so the points are exact decimals (0.3, not 0.30000000000000004; never past stop, never rounded onto a neighbour).
 * Where the scaled integers would not be exact, the points are computed in binary, up to stop by a relative tolerance.
 */
function rangePoints(texts: string[], [start, stop, step]: number[], tooMany: (count: number) => Error): number[] {
  const d = Math.max(...texts.map(decimalsOf));
  const scale = 10 ** d;
  const [s, e, p] = [start, stop, step].map((x) => Math.round(x * scale));
  const exact = d <= 22 && [s, e, p].every((x) => Number.isSafeInteger(x)) && p > 0;
  const count = exact ? Math.floor((e - s) / p) + 1 : Math.floor((stop - start) / step + 1e-9) + 1;
  if (count > MAX_MODELS) throw tooMany(count);
  // s ≤ s + i·p ≤ e for every i < count: the exact points stay safe integers.
  return Array.from({ length: count }, (_, i) => (exact ? (s + i * p) / scale : start + i * step));
}

/**
 * The folder a sweep writes λ into: `lambda-0.80`, two decimals at least, more when the value needs them
 * (`lambda-0.125`), and past twelve the shortest text that reads back as λ (`lambda-1e-13`), never a rounded one.
 */
export function lambdaFolderName(lambda: number): string {
  if (typeof lambda !== 'number' || !Number.isFinite(lambda)) throw usageError(`lambdaFolderName: lambda must be a finite number, got ${showValue(lambda)}`);
  for (let digits = 2; digits <= 12; digits++) {
    const fixed = lambda.toFixed(digits);
    if (Number(fixed) === lambda) return `lambda-${fixed}`;
  }
  return `lambda-${String(lambda)}`;
}

const SWEEP_KEYS: OptionKeys<SweepOptions> = { ...INTERPOLATION_COMMON_KEYS, lambdas: 'required', output: 'required' };

/**
 * Writes one interpolated model per λ (`output/lambda-0.80/`, …) from a single pass over the inputs:
 * each input byte is read once, each model is published atomically.
 *
 * @example
 * ```ts
 * import { sweep } from 'weightmix';
 * const summary = await sweep({ instruct: 'instruct', thinking: 'thinking', lambdas: '0:1:0.1', output: 'sweep', onProgress: (p) => console.log(p.bytesDone / p.bytesTotal) });
 * console.log(summary.outputs); // 11 folders
 * ```
 * @throws {@link WeightmixError} as `interpolate` does; `Usage` also for a malformed `lambdas`.
 */
export async function sweep(options: SweepOptions): Promise<InterpolationSummary> {
  checkOptions<SweepOptions>('sweep', options, SWEEP_KEYS);
  return withGuardedCallbacks(options, (guarded) => sweepAs(guarded, API_NAMES));
}

/** `sweep` for a front door that has checked its own input; its messages name options by `name` (the command line: flags). */
export async function sweepAs(options: SweepOptions, name: OptionNamer): Promise<InterpolationSummary> {
  parseOutputFolder(options.output, name('output'));
  const lambdas = parseLambdaList(options.lambdas, name('lambdas'));
  const names = lambdas.map(lambdaFolderName);
  if (new Set(names).size !== names.length) throw usageError('two λ values share an output folder name');
  const isLambdaFolder = (name: string) => /^lambda-[-+0-9.e]+$/.test(name);
  return runInterpolation(
    options,
    lambdas.map((lambda, i) => ({ lambda, dir: path.join(options.output, names[i]) })),
    isLambdaFolder,
    name,
  );
}
