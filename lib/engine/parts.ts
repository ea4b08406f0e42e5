/** `--part I/N`: a fixed assignment of output shards to N parts, balanced by bytes. */
import { plural } from '../plural';

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

/**
 * Whether an output shard is part I of N's (assignParts over `shards`). A part may get none (more parts than shards: a job
 * array sized for larger models); it then writes only the shared index and files, and `notice` says so.
 */
export function partShardFilter(
  shards: { name: string; size: number }[],
  part: { index: number; count: number },
  notice?: (message: string) => void,
): (shard: string) => boolean {
  const parts = assignParts(shards, part.count);
  if (![...parts.values()].includes(part.index)) {
    notice?.(
      `part ${part.index}/${part.count} gets none of the ${plural(shards.length, 'output shard')}: it writes only the shared files (index, config, tokenizer, model card)`,
    );
  }
  return (shard) => parts.get(shard) === part.index;
}
