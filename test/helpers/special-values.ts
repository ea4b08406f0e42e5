/** Random tensors with special values (NaN, ±Inf, ±0, subnormals, the largest finite) for the elementwise and della tests. */
import { rng } from './models';

const F32_MAX = 3.4028234663852886e38;
export const SPECIALS = [NaN, Infinity, -Infinity, 0, -0, 2 ** -149, -(2 ** -149), 2 ** -126, F32_MAX, -F32_MAX, 1e-6, -1e-6];

/** A base and models: mostly ordinary weights, near the base (differences around epsilon and t) or special. */
export function randomTensors(n: number, models: number, seed: number, near: number[]): { base: number[]; models: number[][] } {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const value = () => (r() < 0.08 ? pick(SPECIALS) : Math.fround((r() - 0.5) * 2 ** Math.floor(r() * 8 - 6)));
  const base = Array.from({ length: n }, value);
  const ms = Array.from({ length: models }, () =>
    base.map((b) => {
      const k = r();
      if (k < 0.1) return pick(SPECIALS);
      if (k < 0.2) return b; // no task vector
      if (k < 0.6 && Number.isFinite(b)) return Math.fround(b + pick([-1, 1]) * pick(near) * (1 + (r() - 0.5) * 1e-3));
      return value();
    }),
  );
  return { base, models: ms };
}
