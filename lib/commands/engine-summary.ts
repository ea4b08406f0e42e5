/** What every merging command shares: the `--device` option and the parts of its summary line. */
import { Option } from 'commander';
import { describeDevice, type ResolvedDevice } from '../engine/device';
import { plural } from '../plural';

/** `--device`, shared by interpolate, sweep and merge. */
export function deviceOption(): Option {
  return new Option(
    '--device <device>',
    'where the arithmetic runs: cpu, cuda, or auto (the GPU when one is usable and passes its self-check, else the CPU; the summary says which)',
  )
    .choices(['cpu', 'cuda', 'auto'])
    .default('auto');
}

/** "1 shard file", "3 shard files"; for a --part run that got none of the shards, that it wrote none. */
export function shardFiles(n: number, part?: string): string {
  return n === 0 && part ? 'no shard file (this part gets none of the shards)' : plural(n, 'shard file');
}

/** "; on the GPU", "; on the CPU (no usable GPU: …)" — nothing when --device cpu asked for the CPU. */
export function withDevice(summary: ResolvedDevice): string {
  const where = describeDevice(summary);
  return where === '' ? '' : `; ${where}`;
}
