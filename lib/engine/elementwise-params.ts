/**
 * The `nearswap` and `ram` ops' parameters (native/kernels/elementwise.h's flat layouts), which name
 * their sources by index in the job: nearswap [base, model, t]; ram [base, epsilon, (source, λ)…].
 */
import type { NativeOp } from './native-plan';

export type ElementwiseOp = Extract<NativeOp, 'nearswap' | 'ram'>;

/**
 * The layout from a tensor recipe's sources (base first) as job source indices and its numbers: for
 * nearswap w = [t]; for ram w = [epsilon, λ per model].
 */
export function encodeElementwiseParams(op: ElementwiseOp, sources: readonly number[], w: readonly number[]): number[] {
  if (op === 'nearswap') return [sources[0], sources[1], w[0]];
  return [sources[0], w[0], ...sources.slice(1).flatMap((s, k) => [s, w[k + 1]])];
}

/** The same parameters with every source index renumbered (plans fused into one job). */
export function remapElementwiseSources(op: ElementwiseOp, params: readonly number[], to: (source: number) => number): number[] {
  if (op === 'nearswap') return [to(params[0]), to(params[1]), params[2]];
  return params.map((x, i) => (i === 0 || (i >= 2 && i % 2 === 0) ? to(x) : x));
}
