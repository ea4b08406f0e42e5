/** Seeded, fast, reproducible randomness for fixtures: a 32-bit mixer for seeds, xorshift128 for streams, the normal quantile. */

/** splitmix32-style finaliser: a well-mixed uint32 from any uint32. */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** FNV-1a over the UTF-16 code units of `text`, as uint32. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  }
  return h >>> 0;
}

/**
 * The starting state (four uint32 words, never all zero) of the xorshift128 stream for one named
 * item under one seed: the same (seed, name) always gives the same stream, whatever order items are
 * generated in. xorshift128's period of 2^128 − 1 keeps streams of different items from overlapping.
 */
export function streamState(seed: number, name: string): Uint32Array {
  const state = new Uint32Array(4);
  let h = mix32(seed >>> 0) ^ hashString(name);
  for (let i = 0; i < 4; i++) {
    h = mix32(h + i);
    state[i] = h;
  }
  if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 0x6d2b79f5;
  return state;
}

/** One xorshift128 step (Marsaglia 2003) on `state` in place; returns the next uint32. */
export function nextUint32(state: Uint32Array): number {
  const t = state[0] ^ (state[0] << 11);
  state[0] = state[1];
  state[1] = state[2];
  state[2] = state[3];
  const w = state[3];
  state[3] = w ^ (w >>> 19) ^ (t ^ (t >>> 8));
  return state[3];
}

/**
 * Φ⁻¹(p), the standard normal quantile, for 0 < p < 1 (Acklam's rational approximation,
 * relative error below 1.2e-9: far finer than any 16-bit float the fixtures store).
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: p must be in (0, 1), got ${p}`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  let x: number;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - low) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
      (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  return x;
}
