/** The kernels section (runKernelForTest against memcpy, the engine pipeline page cache → tmpfs) and thread scaling on tmpfs. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { suite, add, cycle } from 'benny';
import { interpolate } from '../../lib/interpolation/interpolate';
import { ensurePair } from './fixtures';
import { ROOT, gb, log, notes, rmOut, rows } from './common';

function benchOnce(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  return fn().then(() => Number(process.hrtime.bigint() - t0) / 1e9);
}

const ADDON = path.join(ROOT, 'build/Release/weightmix.node');
type KernelDtype = 'BF16' | 'F16' | 'F32';
type RunKernelForTest = (
  op: 'lerpExact' | 'lerpMi' | 'convert' | 'linear',
  args: { srcs: Uint8Array[]; types: KernelDtype[]; out: Uint8Array; outType: KernelDtype; w?: number[]; n: number; simd: boolean },
) => void;

/** Seconds per call from a benny result: the median sample (robust to the other work on a shared box). */
function secondsPerCall(r: { ops: number; details?: { median?: number } }): number {
  const m = r.details?.median;
  return m !== undefined && Number.isFinite(m) && m > 0 ? m : 1 / r.ops;
}

/** n bf16 values drawn like trained weights (|x| ≲ 0.1, no NaN/Inf/subnormals), tiled from a 1 Mi-element pattern. */
function bf16Weights(n: number, seed: number): Buffer {
  const buf = Buffer.alloc(n * 2);
  const patternN = Math.min(n, 1 << 20);
  let state = seed >>> 0 || 1;
  const rand = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < patternN; i++) {
    f[0] = (rand() + rand() + rand() - 1.5) * 0.05;
    buf.writeUInt16LE(u[0] >>> 16, 2 * i);
  }
  for (let off = patternN * 2; off < buf.length; off += patternN * 2) buf.copy(buf, off, 0, Math.min(patternN * 2, buf.length - off));
  return buf;
}

/**
 * The kernels alone: runKernelForTest on 64 MiB-per-tensor buffers, one thread (the JS thread), against a memcpy of the
 * same bytes moved, measured in the same benny suite. Bytes moved = every source read + the output written.
 */
async function runKernelMicro(quick: boolean) {
  let addon: { runKernelForTest?: RunKernelForTest };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a .node addon at a path known only at run time
    addon = require(ADDON);
  } catch (e) {
    notes.push(`kernels: skipped the kernel microbenchmark, ${ADDON} did not load (${e instanceof Error ? e.message : String(e)})`);
    return;
  }
  const run = addon.runKernelForTest;
  if (typeof run !== 'function') {
    notes.push(`kernels: skipped the kernel microbenchmark, ${ADDON} has no runKernelForTest (rebuild the addon)`);
    return;
  }
  const tensorBytes = 64 << 20;
  const n = tensorBytes / 2; // bf16 elements per 64 MiB tensor
  const a = bf16Weights(n, 1);
  const b = bf16Weights(n, 2);
  const c = bf16Weights(n, 3);
  const out2 = Buffer.alloc(n * 2, 1); // bf16 / f16 output, pages touched up front
  const out4 = Buffer.alloc(n * 4, 1); // f32 output
  // memcpy moving the same bytes as lerp bf16→bf16 (read a + read b + write out = 3 × 64 MiB): a 96 MiB copy reads 96 and writes 96.
  const copyBytes = (3 * tensorBytes) / 2;
  const copySrc = Buffer.alloc(copyBytes, 7);
  const copyDst = Buffer.alloc(copyBytes, 1);
  const lam = 0.8;
  interface KCase {
    name: string;
    moved: number;
    fn: () => void;
    target?: boolean;
  }
  const k = (name: string, moved: number, fn: () => void, target = false): KCase => ({ name, moved, fn, target });
  const MEMCPY_COPY = 'memcpy (Buffer.prototype.copy)';
  const MEMCPY_SET = 'memcpy (Uint8Array.prototype.set)';
  const cases: KCase[] = [
    k(MEMCPY_COPY, 2 * copyBytes, () => {
      copySrc.copy(copyDst);
    }),
    k(MEMCPY_SET, 2 * copyBytes, () => {
      copyDst.set(copySrc);
    }),
    k(
      'lerpExact bf16→bf16 (f32 math), SIMD',
      3 * tensorBytes,
      () => run('lerpExact', { srcs: [a, b], types: ['BF16', 'BF16'], out: out2, outType: 'BF16', w: [lam], n, simd: true }),
      true,
    ),
    k('lerpMi bf16→bf16 (paper numerics), SIMD', 3 * tensorBytes, () =>
      run('lerpMi', { srcs: [a, b], types: ['BF16', 'BF16'], out: out2, outType: 'BF16', w: [lam], n, simd: true }),
    ),
    k('lerpExact bf16→f16, SIMD', 3 * tensorBytes, () =>
      run('lerpExact', { srcs: [a, b], types: ['BF16', 'BF16'], out: out2, outType: 'F16', w: [lam], n, simd: true }),
    ),
    k('lerpExact bf16→f32, SIMD', 4 * tensorBytes, () =>
      run('lerpExact', { srcs: [a, b], types: ['BF16', 'BF16'], out: out4, outType: 'F32', w: [lam], n, simd: true }),
    ),
    k('linear 3×bf16→bf16, SIMD', 4 * tensorBytes, () =>
      run('linear', { srcs: [a, b, c], types: ['BF16', 'BF16', 'BF16'], out: out2, outType: 'BF16', w: [0.5, 0.3, 0.2], n, simd: true }),
    ),
    k('convert bf16→f32, SIMD', 3 * tensorBytes, () => run('convert', { srcs: [a], types: ['BF16'], out: out4, outType: 'F32', n, simd: true })),
    k('lerpExact bf16→bf16, scalar path (simd: false), reference', 3 * tensorBytes, () =>
      run('lerpExact', { srcs: [a, b], types: ['BF16', 'BF16'], out: out2, outType: 'BF16', w: [lam], n, simd: false }),
    ),
  ];
  const opts = { minSamples: quick ? 5 : 15, maxTime: quick ? 1 : 4 };
  const summary = await suite('kernels: runKernelForTest, 64 MiB per tensor, 1 thread', ...cases.map((c2) => add(c2.name, c2.fn, opts)), cycle());
  const sec = new Map<string, number>();
  for (const r of summary.results) sec.set(r.name, secondsPerCall(r));
  const rate = (c2: KCase) => c2.moved / sec.get(c2.name)!;
  notes.push(
    "kernels: the `kernel (runKernelForTest)` rows call the addon's kernel directly on buffers in memory (no I/O, no planning); their GB column is bytes moved " +
      '(every source read + the output written, e.g. 3 × 64 MiB for a bf16 lerp) and memcpy is a copy moving the same bytes (96 MiB read + 96 MiB written), ' +
      'measured in the same benny suite; "% of memcpy" = GB/s ÷ the faster of Buffer.prototype.copy and Uint8Array.prototype.set. ' +
      'The `pipeline` rows time whole merges from page cache to tmpfs; their GB column is output bytes.',
  );
  const memcpyRate = Math.max(rate(cases[0]), rate(cases[1]));
  const label = 'kernel (runKernelForTest)';
  for (const c2 of cases) {
    const isCopy = c2.name.startsWith('memcpy');
    const ratio = rate(c2) / memcpyRate;
    rows.push({
      section: 'kernels',
      pair: isCopy ? 'memory' : label,
      what: `${c2.name}, ${isCopy ? `${gb(c2.moved / 2)} GB copied` : `n = ${n} (64 MiB per bf16 tensor)`}, 1 thread (benny median)`,
      seconds: sec.get(c2.name)!,
      outBytes: c2.moved,
      peakRss: null,
      note: `${(sec.get(c2.name)! * 1e3).toFixed(1)} ms per call, ${isCopy ? (rate(c2) === memcpyRate ? 'the memcpy reference' : `${(100 * ratio).toFixed(0)}% of the faster copy`) : `${(100 * ratio).toFixed(0)}% of memcpy`}`,
      target: c2.target ? { limit: 0.7, text: '≥ 70% of memcpy per thread', value: ratio } : undefined,
    });
  }
}

export async function runKernels(quick: boolean, threadsList: number[], sectionKernels: boolean, sectionThreads: boolean) {
  if (sectionKernels) await runKernelMicro(quick);
  // Page cache to tmpfs, one thread: the whole engine minus the disk; λ=1 is the same pipeline as a byte copy. These
  // rows time whole merges (read, plan, assemble, convert, write), not the kernel.
  const shm = fs.existsSync('/dev/shm') ? '/dev/shm/wm-bench' : path.join(os.tmpdir(), 'wm-bench');
  const pair = await ensurePair(shm, { label: 'kernel pair (tmpfs)', shape: 'qwen3-4b', scale: quick ? 16 : 4, shards: [1, 1], seed: 2 }, log);
  const pipeLabel = 'engine pipeline page cache → tmpfs (not the kernel)';
  const outRoot = path.join(shm, 'out');
  const out = path.join(outRoot, 'threads');
  const bytes = pair.fileBytesPerModel;
  // benny calls an async case once un-awaited to detect the promise: chain calls so merges never overlap.
  let chain: Promise<unknown> = Promise.resolve();
  let serial = 0;
  const merge = (lambda: number, extra: Record<string, unknown>) => () => {
    chain = chain.then(async () => {
      const dir = path.join(outRoot, String(serial++));
      await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda, output: dir, direct: false, threads: 1, ...extra });
      rmOut(dir);
    });
    return chain;
  };
  const cases: [string, number, Record<string, unknown>, number][] = [
    ['merge λ=0.8 bf16→bf16 (exact)', 0.8, {}, 1],
    ['merge λ=0.8 bf16, --numerics mi', 0.8, { numerics: 'mi' }, 1],
    ['merge λ=0.8 bf16→f16', 0.8, { dtype: 'F16' }, 1],
    ['merge λ=0.8 bf16→f32', 0.8, { dtype: 'F32' }, 2],
    ['merge λ=1 (copy: same pipeline, no arithmetic)', 1, {}, 1],
  ];
  if (sectionKernels) {
    const summary = await suite(
      pipeLabel,
      ...cases.map(([name, lambda, extra]) => add(name, merge(lambda, extra), { minSamples: 3, maxTime: quick ? 2 : 6, initCount: 1 })),
      cycle(),
    );
    const results = new Map<string, number>();
    for (const r of summary.results) results.set(r.name, r.ops);
    const copyOps = results.get(cases[4][0])!;
    for (const [name, , , mult] of cases) {
      const ops = results.get(name)!;
      rows.push({
        section: 'pipeline',
        pair: `${pipeLabel}, ${gb(bytes)} GB per model`,
        what: `${name}, 1 thread (benny); GB = output bytes`,
        seconds: 1 / ops,
        outBytes: bytes * mult,
        peakRss: null,
        note: `${((100 * ops) / copyOps).toFixed(0)}% of the λ=1 pipeline's merges per second`,
      });
    }
    rmOut(outRoot);
  }
  if (sectionThreads) {
    for (const threads of threadsList) {
      let best = Infinity;
      for (let i = 0; i < 3; i++) {
        best = Math.min(
          best,
          await benchOnce(async () => {
            rmOut(out);
            await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: out, direct: false, threads });
          }),
        );
      }
      rmOut(out);
      rmOut(outRoot);
      rows.push({
        section: 'threads',
        pair: pipeLabel,
        what: `merge λ=0.8 bf16, --threads ${threads} (best of 3)`,
        seconds: best,
        outBytes: bytes,
        peakRss: null,
      });
    }
  }
}
