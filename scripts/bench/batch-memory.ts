/**
 * The batch-memory section (opt-in: `--sections batch-memory`): peak RSS of one merge of 16 recipes
 * over a full-size 2 × 8 GB pair, through scripts/batch-memory/run.sh (zeros on a compressing btrfs:
 * 128 GB of output fits no disk here). Needs root and btrfs-progs; otherwise a row says why it did not run.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ROOT, type Row } from './common';

export function runBatchMemorySection(work: string, log: (line: string) => void): Row[] {
  log('batch-memory: 16 recipes over a 2 × 8 GB pair of zeros (about 10-20 minutes)');
  const run = spawnSync('bash', [path.join(ROOT, 'scripts/batch-memory/run.sh'), path.join(work, 'batch-memory')], { encoding: 'utf8' });
  const stderr = run.stderr ?? '';
  const timing = /batch-memory: ([\d.]+) s wall, .* peak RSS (\d+) KB/.exec(stderr);
  const written = /batch-memory: (\d+) shard files, (\d+) GB written/.exec(stderr);
  const row: Row = {
    section: 'batch-memory',
    pair: 'qwen3-4b (zeros)',
    what: 'merge of 16 recipes (examples/paper-grid: 9 λ, 5 layer ranges, without attention, without FFN) as one batch, outputs on zstd btrfs',
    seconds: NaN,
    outBytes: NaN,
    peakRss: null,
  };
  if (run.status !== 0 || !timing) {
    const why = stderr.trim().split('\n').pop() ?? `exit ${run.status}`;
    return [{ ...row, note: `did not run: ${why}` }];
  }
  const rss = Number(timing[2]) * 1024;
  return [
    {
      ...row,
      seconds: Number(timing[1]),
      outBytes: written ? Number(written[2]) * 1e9 : NaN,
      peakRss: rss,
      target: { limit: 1.5e9, text: 'peak RSS ≤ 1.5 GB', value: rss },
      note: written ? `${written[1]} shard files` : undefined,
    },
  ];
}
