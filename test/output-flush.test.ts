/**
 * native/output_flusher.h: each output file on a device is flushed to stable storage by a thread of its own as soon as its last
 * byte is written, while the run goes on with the others; on tmpfs nothing is (its files are memory). The executor reports how
 * many it flushed so (`flushedEarly`); the bytes written are the same either way.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NativePlan, runPlan } from '../lib/engine/native';

const TMPFS = 0x01021994;
const RAMFS = 0x858458f6;

/** Whether `dir` is on tmpfs or ramfs (statfs's f_type). */
function inMemory(dir: string): boolean {
  const type = fs.statfsSync(dir).type;
  return type === TMPFS || type === RAMFS;
}

/** Three outputs of different sizes, each its input bytes at a different offset: a copy plan (the executor's plainest). */
function copyPlan(input: string, outDir: string): { plan: NativePlan; expected: Buffer[] } {
  const bytes = fs.readFileSync(input);
  const sizes = [4096 * 3 + 100, 64, 4096 * 17];
  const plan: NativePlan = { inputs: [input], outputs: [], jobs: [], threads: 3, blockBytes: 8192, direct: true };
  const expected: Buffer[] = [];
  let at = 0;
  sizes.forEach((size, o) => {
    plan.outputs.push({ path: path.join(outDir, `out-${o}.bin`), size, head: Buffer.alloc(0) });
    plan.jobs.push({ count: size / 4, sources: [{ input: 0, offset: at, dtype: 'F32' }], dests: [{ output: o, offset: 0, dtype: 'F32', op: 'copy', w: [0] }] });
    expected.push(bytes.subarray(at, at + size));
    at += size;
  });
  return { plan, expected };
}

function withDir(base: string, run: (dir: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(base, 'wm-output-flush-'));
  return run(dir).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

/** A folder on a disk (not in memory) for the outputs: the system temp folder, or the working folder. */
function diskBase(): string | undefined {
  return [os.tmpdir(), process.cwd()].find((d) => !inMemory(d));
}

async function runInto(base: string): Promise<{ flushedEarly: number | undefined; outputs: number }> {
  let result: { flushedEarly: number | undefined; outputs: number } = { flushedEarly: undefined, outputs: 0 };
  await withDir(base, async (dir) => {
    const input = path.join(dir, 'input.bin');
    fs.writeFileSync(input, Buffer.from(Array.from({ length: 4096 * 21 + 164 }, (_, i) => (i * 131 + 7) & 0xff)));
    const { plan, expected } = copyPlan(input, dir);
    const r = await runPlan(plan);
    plan.outputs.forEach((o, k) => expect(fs.readFileSync(o.path).equals(expected[k])).toBe(true));
    result = { flushedEarly: r.flushedEarly, outputs: plan.outputs.length };
  });
  return result;
}

const disk = diskBase();
const describeDisk = disk === undefined ? describe.skip : describe;
if (disk === undefined) console.log(`output-flush: skipped the disk case: neither ${os.tmpdir()} nor ${process.cwd()} is on a disk (both in memory)`);

describeDisk('outputs on a disk', () => {
  test('every output is flushed as it completes, and its bytes are the plan’s', async () => {
    const { flushedEarly, outputs } = await runInto(disk!);
    expect(flushedEarly).toBe(outputs);
  });
});

const shm = fs.existsSync('/dev/shm') && inMemory('/dev/shm') ? '/dev/shm' : undefined;
const describeShm = shm === undefined ? describe.skip : describe;
if (shm === undefined) console.log('output-flush: skipped the tmpfs case: no /dev/shm on tmpfs here');

describeShm('outputs on tmpfs', () => {
  test('nothing is flushed early (nothing to wait for), and the bytes are the plan’s', async () => {
    const { flushedEarly } = await runInto(shm!);
    expect(flushedEarly).toBe(0);
  });
});
