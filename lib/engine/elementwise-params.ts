/**
 * The `nearswap`, `ram` and `row_linear` ops' parameters (native/kernels/elementwise.h's flat
 * layouts), which name their sources by index in the job: nearswap [base, model, t]; ram [base,
 * epsilon, (source, λ)…] and, for ramplus_tl's λ left open, [r, alpha, epsilon] after them (an odd length); row_linear [+row length or −group count, base or −1, m, m sources, groups × m coefficients].
 */
import type { NativeOp } from './native-plan';

export type ElementwiseOp = Extract<NativeOp, 'nearswap' | 'ram' | 'row_linear'>;

/** Per-row coefficients of a `row_linear` tensor recipe. */
export interface RowWeights {
  /** Elements per row (the tensor's last dimension); with `interleaved`, the number of groups (element i is in group i mod length: the vectors along dim 0). */
  length: number;
  interleaved: boolean;
  /** Whether the recipe's first model is a base (out = base + Σ c·(x − base)) or not (out = Σ c·x). */
  base: boolean;
  /** Rows × models coefficients, row-major (models: the recipe's, after the base). */
  w: number[];
}

/** ramplus_tl's λ left open: the engine counts the tensor in memory and applies methods/ram.ts's ramPlusLambda (native/local_ram.h). */
export interface RamPlusOpen {
  r: number;
  alpha: number;
  epsilon: number;
}

/** Numbers after a ram op's (source, λ) pairs when its λ are open. */
const RAM_OPEN_TAIL = 3;

/**
 * The layout from a tensor recipe's sources (base first) as job source indices and its numbers: for
 * nearswap w = [t]; for ram w = [epsilon, λ per model] (and `ramPlus` where the λ are open); row_linear takes `rows`.
 */
export function encodeElementwiseParams(
  op: ElementwiseOp,
  sources: readonly number[],
  w: readonly number[],
  rows?: RowWeights,
  ramPlus?: RamPlusOpen,
): number[] {
  if (op === 'nearswap') return [sources[0], sources[1], w[0]];
  if (op === 'ram') {
    const params = [sources[0], w[0], ...sources.slice(1).flatMap((s, k) => [s, w[k + 1]])];
    return ramPlus ? [...params, ramPlus.r, ramPlus.alpha, ramPlus.epsilon] : params;
  }
  if (!rows) throw new Error('internal: row_linear without its rows');
  const models = rows.base ? sources.slice(1) : sources;
  const params = [rows.interleaved ? -rows.length : rows.length, rows.base ? sources[0] : -1, models.length, ...models];
  for (const x of rows.w) params.push(x);
  return params;
}

/** Whether a ram dest leaves its λ open (ramplus_tl's tail, an odd length): a tensor-local job, its job's sources held whole. */
export function ramParamsOpen(params: readonly number[]): boolean {
  return params.length % 2 === 1;
}

/** The same parameters with every source index renumbered (plans fused into one job). */
export function remapElementwiseSources(op: ElementwiseOp, params: readonly number[], to: (source: number) => number): number[] {
  if (op === 'nearswap') return [to(params[0]), to(params[1]), params[2]];
  if (op === 'ram') {
    const pairsEnd = ramParamsOpen(params) ? params.length - RAM_OPEN_TAIL : params.length;
    return params.map((x, i) => (i === 0 || (i >= 2 && i < pairsEnd && i % 2 === 0) ? to(x) : x));
  }
  const m = params[2];
  return params.map((x, i) => ((i === 1 && x !== -1) || (i >= 3 && i < 3 + m) ? to(x) : x));
}
