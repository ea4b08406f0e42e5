/** `--part I/N`: a fixed assignment of output shards to N parts, balanced by bytes. */

/** Greedy by size (largest first) onto the lightest part; ties go to the lower part and the earlier shard. */
export function assignParts(shards: { name: string; size: number }[], count: number): Map<string, number> {
  const order = shards.map((s, i) => ({ ...s, i })).sort((a, b) => b.size - a.size || a.i - b.i);
  const load = new Array<number>(count).fill(0);
  const part = new Map<string, number>();
  for (const s of order) {
    let best = 0;
    for (let p = 1; p < count; p++) if (load[p] < load[best]) best = p;
    load[best] += s.size;
    part.set(s.name, best + 1);
  }
  return part;
}
