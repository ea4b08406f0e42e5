/**
 * Output space reserved beside the workers (native/output_reservations.h): the engine tells the caller once every
 * output file's space is reserved, exactly once, before its run settles, with each file then at its full size; the
 * bytes written are those of the copy the plan asks for, whatever the order of reservation and writing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runPlan, type NativeJob } from '../lib/engine/native';
import { writeRaw } from './helpers/raw-values';
import { dir, useTempDir } from './helpers/temp-dir';

useTempDir('weightmix-output-reservations-');

describe('the engine reserves its outputs while its workers start', () => {
  test.each([1, 3])('%i threads: onReserved once, before the run settles, every file at its size; the copies exact', async (threads) => {
    const n = 40_000;
    const values = Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3);
    const input = writeRaw(dir, values, 'F32').file;
    const outputs = [0, 1, 2, 3].map((o) => ({ path: path.join(dir, `out-${threads}-${o}.bin`), size: 4 * n, head: Buffer.alloc(0) }));
    const jobs: NativeJob[] = outputs.map((_, o) => ({
      count: n,
      sources: [{ input: 0, offset: 0, dtype: 'F32' }],
      dests: [{ output: o, offset: 0, dtype: 'F32', op: 'copy', w: [0] }],
    }));
    const events: string[] = [];
    const sizesAtReserved: number[] = [];
    await runPlan(
      { inputs: [input], outputs, jobs, threads, blockBytes: 4096, direct: false },
      {
        onReserved: () => {
          events.push('reserved');
          for (const o of outputs) sizesAtReserved.push(fs.statSync(o.path).size);
        },
      },
    );
    events.push('settled');
    expect(events).toEqual(['reserved', 'settled']);
    expect(sizesAtReserved).toEqual(outputs.map((o) => o.size));
    const expected = fs.readFileSync(input);
    for (const o of outputs) expect(fs.readFileSync(o.path).equals(expected)).toBe(true);
  });
});
