/** `sweep`: one model per λ from a single pass over the inputs, each published atomically. */
import * as path from 'node:path';
import { usageError } from '../errors';
import { InterpolationCommon, InterpolationSummary, runInterpolation } from './interpolate';
import { parseLambda } from '../options';

export interface SweepOptions extends InterpolationCommon {
  /** `0:1:0.1` (start:stop:step, inclusive), `0.2,0.4,0.8`, or an array. */
  lambdas: string | number[];
  /** The folder that receives `lambda-0.80/`, `lambda-0.125/`, … */
  output: string;
}

const MAX_MODELS = 1000;

/** Parses a λ list; a range's points are computed as start + i·step and rounded to 12 decimals. */
export function parseLambdaList(spec: string | number[]): number[] {
  let values: number[];
  if (Array.isArray(spec)) {
    values = spec.map((x) => parseLambda(x, 'lambdas'));
  } else if (typeof spec === 'string' && spec.includes(':')) {
    const parts = spec.split(':');
    if (parts.length !== 3) throw usageError(`--lambdas range must be start:stop:step, got ${JSON.stringify(spec)}`);
    const [start, stop, step] = parts.map((p) => parseLambda(p, 'lambdas'));
    if (!(step > 0) || stop < start) throw usageError(`--lambdas range needs step > 0 and stop ≥ start, got ${JSON.stringify(spec)}`);
    const count = Math.floor((stop - start) / step + 1e-9) + 1;
    if (count > MAX_MODELS) throw usageError(`--lambdas ${spec} makes ${count} models; at most ${MAX_MODELS}`);
    values = Array.from({ length: count }, (_, i) => Number((start + i * step).toFixed(12)));
  } else if (typeof spec === 'string') {
    values = spec.split(',').map((p) => parseLambda(p.trim(), 'lambdas'));
  } else {
    throw usageError('--lambdas is required');
  }
  if (values.length === 0) throw usageError('--lambdas names no λ');
  if (new Set(values).size !== values.length) throw usageError(`--lambdas repeats a value: ${values.join(',')}`);
  if (values.length > MAX_MODELS) throw usageError(`--lambdas makes ${values.length} models; at most ${MAX_MODELS}`);
  return values;
}

/** `lambda-0.80`: two decimals at least, more when the value needs them (`lambda-0.125`). */
export function lambdaFolderName(lambda: number): string {
  let digits = 2;
  while (digits < 12 && Number(lambda.toFixed(digits)) !== lambda) digits++;
  return `lambda-${lambda.toFixed(digits)}`;
}

export async function sweep(options: SweepOptions): Promise<InterpolationSummary> {
  if (typeof options.output !== 'string' || options.output === '') throw usageError('an output folder is required (-o DIR)');
  const lambdas = parseLambdaList(options.lambdas);
  const names = lambdas.map(lambdaFolderName);
  if (new Set(names).size !== names.length) throw usageError('two λ values share an output folder name');
  const isLambdaFolder = (name: string) => /^lambda-[-0-9.]+$/.test(name);
  return runInterpolation(options, lambdas.map((lambda, i) => ({ lambda, dir: path.join(options.output, names[i]) })), isLambdaFolder);
}
