/** The least and greatest of a list in one pass: Infinity and -Infinity for none, NaN for both where any is NaN (as Math.min and Math.max). */
export function extremes(xs: Iterable<number>): { min: number; max: number } {
  // Not Math.min(...xs): a spread passes one argument per element, and past ~10^5 of them (a benchmark's questions) the stack overflows.
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    if (Number.isNaN(x)) return { min: NaN, max: NaN };
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return { min, max };
}
