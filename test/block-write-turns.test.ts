/**
 * Writes into one output file take turns (native/block_assembler.h's writeInTurn): a worker whose block completes while
 * another writes the same file queues it for that worker and goes back to computing. Many small blocks of one file from
 * four threads queue often; every byte must still land once, in its place, and the run must end with none left queued.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runPlan, type NativeJob } from '../lib/engine/native';
import { writeRaw } from './helpers/raw-values';
import { dir, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-block-write-turns-');

describe('blocks of one output file written in turn', () => {
  test.each([
    [4, 4096],
    [4, 12_288],
    [2, 4096],
  ])('%i threads, %i-byte blocks: the file is the exact copy, piece for piece', async (threads, blockBytes) => {
    const n = 1 << 20;
    // Distinct bit patterns in every 4-byte element: a block lost, doubled or written at another block's offset shows.
    const values = Array.from({ length: n }, (_, i) => i * 1.000001 - 5e5);
    const input = writeRaw(dir, values, 'F32').file;
    const output = { path: path.join(dir, `out-${threads}-${blockBytes}.bin`), size: 4 * n, head: Buffer.alloc(0) };
    // Many jobs of uneven sizes, so that blocks complete in an order no thread controls.
    const jobs: NativeJob[] = [];
    for (let at = 0, k = 0; at < n; k++) {
      const count = Math.min(n - at, 997 + ((k * 7919) % 30_011));
      jobs.push({ count, sources: [{ input: 0, offset: 4 * at, dtype: 'F32' }], dests: [{ output: 0, offset: 4 * at, dtype: 'F32', op: 'copy', w: [0] }] });
      at += count;
    }
    await runPlan({ inputs: [input], outputs: [output], jobs, threads, blockBytes, direct: false });
    expect(fs.readFileSync(output.path).equals(fs.readFileSync(input))).toBe(true);
  });
});
