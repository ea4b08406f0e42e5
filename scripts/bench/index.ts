/**
 * weightmix benchmarks: end-to-end interpolate/sweep against the storage floor, the PyTorch peer,
 * kernel throughput and thread scaling. Prints a table and appends it to BENCHMARKS.md.
 *
 *   npm run bench -- [--quick] [--work DIR] [--sections e2e,tmpfs,sweep,batch,peer,kernels,threads] [--pairs 4b,moe,dense]
 *                    [--buffered] [--peer-pair dense|moe|4b] [--sweep-pair dense|moe|4b] [--batch-pair small|4b|dense] [--no-append] [--repeat N]
 */
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { suite, add, cycle } from 'benny';
import { interpolate } from '../../lib/interpolation/interpolate';
import { fastStorageSamples, tmpfsRoot } from './fast-storage';
import { ensurePair, pairSize, type CachedPair, type PairSpec } from './fixtures';
import { runBatchSection } from './batch';
import { coldReadFloor, describeMachine, directWriteFloor, dropCaches, timeCommand, warm, type Timed } from './system';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'bin/weightmix.js');
const ALL_SECTIONS = ['e2e', 'tmpfs', 'sweep', 'batch', 'peer', 'kernels', 'threads'] as const;
type Section = (typeof ALL_SECTIONS)[number];
type PairName = '4b' | 'moe' | 'dense' | 'small';

interface Row {
  section: string;
  pair: string;
  what: string;
  seconds: number;
  outBytes: number;
  peakRss: number | null;
  /** The floor this row is judged against, and its seconds. */
  floor?: { label: string; seconds: number };
  /** × floor when it is not seconds / floor.seconds (the median of paired ratios). */
  ratio?: number;
  target?: { limit: number; text: string; value?: number };
  note?: string;
}

const rows: Row[] = [];
const notes: string[] = [];
const log = (line: string) => process.stderr.write(`${line}\n`);

function gb(bytes: number): string {
  return (bytes / 1e9).toFixed(2);
}

function pairSpecs(quick: boolean): Record<PairName, PairSpec> {
  const moe: PairSpec = { label: 'qwen3-30b-a3b', shape: 'qwen3-30b-a3b', scale: quick ? 16 : 5, seed: 1 };
  // Dense pair of the same bytes as the MoE pair: Qwen3-4B widths / 2 (or / 8), layers chosen to match, same shard count.
  const denseScale = quick ? 8 : 2;
  const moeBytes = pairSize(moe).bytes;
  let layers = 1;
  let best = Infinity;
  for (let l = 1; l <= 200; l++) {
    const diff = Math.abs(pairSize({ label: '', shape: 'qwen3-4b', scale: denseScale, layers: l, seed: 1 }).bytes - moeBytes);
    if (diff < best) {
      best = diff;
      layers = l;
    }
  }
  return {
    '4b': { label: 'qwen3-4b', shape: 'qwen3-4b', scale: quick ? 8 : 1, seed: 1 },
    moe: { ...moe, shards: [16, 16] },
    dense: { label: 'dense (4b-shaped)', shape: 'qwen3-4b', scale: denseScale, layers, shards: [16, 16], seed: 1 },
    // The batch section's pair: Qwen3-4B widths / 3, 2 × 0.89 GB (/ 8 with --quick).
    small: { label: `qwen3-4b / ${quick ? 8 : 3}`, shape: 'qwen3-4b', scale: quick ? 8 : 3, seed: 1 },
  };
}

function cli(args: string[]): string[] {
  return [process.execPath, CLI, ...args, '--quiet'];
}

function interpolateArgs(pair: CachedPair, out: string, extra: string[] = []): string[] {
  return cli(['interpolate', '--instruct', pair.instruct, '--thinking', pair.thinking, '--lambda', '0.8', '-o', out, ...extra]);
}

function rmOut(dir: string) {
  fs.rmSync(dir, { recursive: true, force: true });
}

interface Floors {
  coldRead: Timed;
  write: Timed;
}

const floorCache = new Map<string, Floors>();

/** --repeat: each floor and each end-to-end case is measured this many times and reported by its median. */
let repeat = 1;

/** The run with the median time of `repeat` runs of `measure` (the largest peak RSS of them). */
function medianOf(measure: () => Timed): Timed {
  return medianRun(Array.from({ length: repeat }, measure));
}

/** The middle value (the mean of the two middle ones for an even count). */
function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs summed up: the median time, the largest peak RSS, the output of the run nearest the median. */
function medianRun(runs: Timed[]): Timed {
  const seconds = median(runs.map((r) => r.seconds));
  const nearest = runs.reduce((a, b) => (Math.abs(b.seconds - seconds) < Math.abs(a.seconds - seconds) ? b : a));
  const rss = runs.map((r) => r.peakRss).filter((r): r is number => r !== null);
  return { ...nearest, seconds, peakRss: rss.length > 0 ? Math.max(...rss) : null };
}

/** " (median of 3)" when --repeat asks for repeats. */
const medianNote = () => (repeat > 1 ? ` (median of ${repeat})` : '');

function floorsFor(pair: CachedPair, work: string): Floors {
  let f = floorCache.get(pair.dir);
  if (!f) {
    const coldRead = medianOf(() => coldReadFloor(pair.files));
    const write = medianOf(() => directWriteFloor(work, pair.fileBytesPerModel));
    f = { coldRead, write };
    floorCache.set(pair.dir, f);
    const inBytes = 2 * pair.fileBytesPerModel;
    rows.push({
      section: 'floor',
      pair: pair.spec.label,
      what: `cold read (cat) of both inputs, ${gb(inBytes)} GB${medianNote()}`,
      seconds: coldRead.seconds,
      outBytes: inBytes,
      peakRss: null,
    });
    rows.push({
      section: 'floor',
      pair: pair.spec.label,
      what: `dd O_DIRECT 8M write of ${gb(pair.fileBytesPerModel)} GB${medianNote()}`,
      seconds: write.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: null,
    });
  }
  return f;
}

const warmSeconds = new Map<string, number>();

/**
 * `repeat` times: the floor and the run back to back, so that both see the disk in the same state
 * (this virtio disk's direct-write speed drifts by 30% within minutes, and a burst allowance favours
 * whichever writes first: the order alternates, floor first on even repetitions). The verdict is
 * the median of the per-pair ratios; the times shown are the medians.
 */
function pairedWithFloor(measureFloor: () => number, measureRun: () => Timed): { run: Timed; floorSeconds: number; ratio: number } {
  const samples = Array.from({ length: repeat }, (_, i) => {
    if (i % 2 === 0) {
      const floorSeconds = measureFloor();
      return { floorSeconds, run: measureRun() };
    }
    const run = measureRun();
    return { floorSeconds: measureFloor(), run };
  });
  return {
    run: medianRun(samples.map((x) => x.run)),
    floorSeconds: median(samples.map((x) => x.floorSeconds)),
    ratio: median(samples.map((x) => x.run.seconds / x.floorSeconds)),
  };
}

function runE2E(pair: CachedPair, work: string, buffered: boolean, isBig: boolean) {
  floorsFor(pair, work);
  const out = path.join(work, 'out-e2e');
  const modes: [string, string[]][] = [['O_DIRECT (default)', []]];
  if (buffered) modes.push(['--no-direct', ['--no-direct']]);
  for (const [mode, extra] of modes) {
    for (const state of ['warm', 'cold'] as const) {
      const writeFloor = () => directWriteFloor(work, pair.fileBytesPerModel).seconds;
      const paired = pairedWithFloor(state === 'warm' ? writeFloor : () => coldReadFloor(pair.files).seconds + writeFloor(), () => {
        rmOut(out);
        if (state === 'warm') warm(pair.files);
        else dropCaches(pair.files);
        const run = timeCommand(interpolateArgs(pair, out, extra));
        rmOut(out);
        return run;
      });
      const t = paired.run;
      const floor = { label: state === 'warm' ? 'write floor' : 'cold read + write floor', seconds: paired.floorSeconds };
      const limit = state === 'warm' ? 1.2 : 1.1;
      rows.push({
        section: 'e2e',
        pair: pair.spec.label,
        what: `interpolate λ=0.8 ${state}, ${mode}${medianNote()}, each run paired with a floor measured beside it`,
        seconds: t.seconds,
        outBytes: pair.fileBytesPerModel,
        peakRss: t.peakRss,
        floor,
        ratio: paired.ratio,
        target: { limit, text: `≤ ${limit} × ${floor.label}` },
      });
      if (extra.length === 0 && state === 'warm') warmSeconds.set(pair.dir, t.seconds);
      if (extra.length === 0) {
        (coldWarm.get(pair.dir) ?? coldWarm.set(pair.dir, {}).get(pair.dir)!)[state] = t.seconds;
      }
      if (isBig && extra.length === 0) {
        rows.push({
          section: 'e2e',
          pair: pair.spec.label,
          what: `peak RSS of the CLI, ${state}`,
          seconds: NaN,
          outBytes: NaN,
          peakRss: t.peakRss,
          target: { limit: 1.5e9, text: '≤ 1.5 GB', value: t.peakRss ?? NaN },
        });
      }
    }
  }
}

const coldWarm = new Map<string, { warm?: number; cold?: number }>();

function runSweep(pair: CachedPair, work: string) {
  const lambdas = [0.2, 0.5, 0.8];
  const floors = floorsFor(pair, work);
  const writeN = directWriteFloor(work, lambdas.length * pair.fileBytesPerModel);
  rows.push({
    section: 'floor',
    pair: pair.spec.label,
    what: `dd O_DIRECT 8M write of ${gb(lambdas.length * pair.fileBytesPerModel)} GB (${lambdas.length} outputs)`,
    seconds: writeN.seconds,
    outBytes: lambdas.length * pair.fileBytesPerModel,
    peakRss: null,
  });
  const out = path.join(work, 'out-sweep');
  rmOut(out);
  dropCaches(pair.files);
  const t = timeCommand(cli(['sweep', '--instruct', pair.instruct, '--thinking', pair.thinking, '--lambdas', lambdas.join(','), '-o', out]));
  rmOut(out);
  const floorSeconds = floors.coldRead.seconds + writeN.seconds;
  rows.push({
    section: 'sweep',
    pair: pair.spec.label,
    what: `sweep --lambdas ${lambdas.join(',')} cold`,
    seconds: t.seconds,
    outBytes: lambdas.length * pair.fileBytesPerModel,
    peakRss: t.peakRss,
    floor: { label: 'cold read once + write floor of 3 outputs', seconds: floorSeconds },
    target: { limit: 1.1, text: '≤ 1.1 × cold read once + write floor of 3 outputs' },
  });
}

function findPython(explicit?: string): string | null {
  const candidates = [explicit, '/tmp/venv-torch/bin/python', 'python3'].filter(Boolean) as string[];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch, safetensors; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return null;
}

function runPeer(pair: CachedPair, work: string, python: string | null) {
  if (!python) {
    notes.push('peer: skipped, no Python with torch and safetensors (`python3 -c "import torch"` failed)');
    return;
  }
  const version = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout.trim();
  let wm = warmSeconds.get(pair.dir);
  const out = path.join(work, 'out-peer');
  if (wm === undefined) {
    rmOut(out);
    warm(pair.files);
    const t = timeCommand(interpolateArgs(pair, out));
    rmOut(out);
    wm = t.seconds;
    rows.push({
      section: 'peer',
      pair: pair.spec.label,
      what: 'weightmix interpolate λ=0.8 warm',
      seconds: t.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: t.peakRss,
    });
  }
  for (const variant of ['bf16', 'lerp'] as const) {
    rmOut(out);
    warm(pair.files);
    const t = timeCommand([
      python,
      path.join(__dirname, 'peer_torch.py'),
      '--instruct',
      pair.instruct,
      '--thinking',
      pair.thinking,
      '--lambda',
      '0.8',
      '-o',
      out,
      '--variant',
      variant,
    ]);
    rmOut(out);
    // The peer fsyncs every file it wrote before it reports (weightmix fdatasyncs every shard), so t.seconds, the whole
    // process, includes the data reaching the disk. Before the sync = the whole process less the script's own sync time.
    const report = JSON.parse(t.stdout.trim().split('\n').pop() ?? '{}') as { seconds?: number; seconds_unsynced?: number; sync_seconds?: number };
    const syncSeconds = typeof report.sync_seconds === 'number' ? report.sync_seconds : NaN;
    const unsynced = t.seconds - syncSeconds;
    rows.push({
      section: 'peer',
      pair: pair.spec.label,
      what: `torch ${version} ${variant === 'bf16' ? "paper's bf16 a+λ(b−a)" : 'torch.lerp f32'} warm, fsync of every shard included`,
      seconds: t.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: t.peakRss,
      target: { limit: 15, text: 'weightmix warm ≥ 15× faster', value: t.seconds / wm },
      note:
        `${unsynced.toFixed(2)} s before the fsyncs (what save_file alone gives), ` +
        `${t.seconds.toFixed(2)} s after them (${syncSeconds.toFixed(2)} s of fsync); speed-up from the synced time ${(t.seconds / wm).toFixed(1)}×`,
    });
  }
}

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

async function runKernels(quick: boolean, threadsList: number[], sectionKernels: boolean, sectionThreads: boolean) {
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

function runThreadsDisk(pair: CachedPair, work: string, threadsList: number[]) {
  const out = path.join(work, 'out-threads');
  for (const threads of threadsList) {
    rmOut(out);
    warm(pair.files);
    const t = timeCommand(interpolateArgs(pair, out, ['--threads', String(threads)]));
    rmOut(out);
    rows.push({
      section: 'threads',
      pair: pair.spec.label,
      what: `interpolate warm → disk O_DIRECT, --threads ${threads}`,
      seconds: t.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: t.peakRss,
    });
  }
}

function formatTable(): string {
  const header = ['section', 'pair', 'what', 'wall s', 'GB', 'GB/s', 'peak RSS MB', 'floor s', '× floor', 'target', 'met'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const ratio = r.ratio ?? (r.floor ? r.seconds / r.floor.seconds : NaN);
    let met = '';
    let ratioText = Number.isFinite(ratio) ? ratio.toFixed(2) : '';
    if (r.target) {
      const value = r.target.value ?? ratio;
      if (r.target.text.startsWith('≥')) met = value >= r.target.limit ? 'yes' : `NO (${value.toFixed(2)})`;
      else if (r.target.text.startsWith('weightmix')) met = value >= r.target.limit ? 'yes' : `NO (${value.toFixed(1)}×)`;
      else met = value <= r.target.limit ? 'yes' : `NO (${r.target.limit === 1.5e9 ? `${(value / 1e9).toFixed(2)} GB` : `${value.toFixed(2)}×`})`;
      if (r.target.limit === 1.5e9) ratioText = '';
    }
    lines.push(
      `| ${[
        r.section,
        r.pair,
        r.what + (r.note ? ` — ${r.note}` : ''),
        Number.isFinite(r.seconds) ? r.seconds.toFixed(2) : '',
        Number.isFinite(r.outBytes) ? gb(r.outBytes) : '',
        Number.isFinite(r.seconds) && Number.isFinite(r.outBytes) ? (r.outBytes / 1e9 / r.seconds).toFixed(2) : '',
        r.peakRss === null ? '' : (r.peakRss / 2 ** 20).toFixed(0),
        r.floor ? r.floor.seconds.toFixed(2) : '',
        ratioText,
        r.target?.text ?? '',
        met,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** Warm inputs → tmpfs, each run paired with its memory floor (scripts/bench/fast-storage.ts); MoE vs dense per byte there too. */
function runFastStorage(list: CachedPair[]) {
  const tmpfs = tmpfsRoot();
  if (!('dir' in tmpfs)) {
    notes.push(`tmpfs section skipped: ${tmpfs.reason}`);
    return;
  }
  const perByte = new Map<string, number>();
  for (const pair of list) {
    log(`tmpfs ${pair.spec.label}`);
    const samples = fastStorageSamples(pair, tmpfs.dir, repeat, (out) => interpolateArgs(pair, out));
    const run = medianRun(samples.map((x) => x.run));
    perByte.set(pair.spec.label, run.seconds / pair.fileBytesPerModel);
    rows.push({
      section: 'tmpfs',
      pair: pair.spec.label,
      what: `interpolate λ=0.8 warm → ${tmpfs.dir}${medianNote()}, each run paired with its memory floor`,
      seconds: run.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: run.peakRss,
      floor: { label: 'memory floor (cat of both inputs + cp of the output)', seconds: median(samples.map((x) => x.floorSeconds)) },
      ratio: median(samples.map((x) => x.run.seconds / x.floorSeconds)),
      target: { limit: 1.25, text: '≤ 1.25 × memory floor' },
    });
  }
  const moe = list.find((p) => p.tensors > 10_000);
  const dense = list.find((p) => p.tensors <= 10_000);
  if (moe && dense) {
    const value = perByte.get(moe.spec.label)! / perByte.get(dense.spec.label)!;
    rows.push({
      section: 'tmpfs',
      pair: `${moe.spec.label} vs ${dense.spec.label}`,
      what: `seconds per output byte warm → tmpfs: ${moe.tensors} vs ${dense.tensors} tensors`,
      seconds: NaN,
      outBytes: NaN,
      peakRss: null,
      target: { limit: 1.2, text: 'MoE ≤ 1.2 × dense', value },
      note: `ratio ${value.toFixed(2)}`,
    });
  }
}

async function main() {
  const program = new Command()
    .name('bench')
    .option('--quick', 'small pairs (minutes, not tens of minutes)')
    .option('--work <dir>', 'folder for cached fixtures and outputs (on the disk under test, not tmpfs)', '/work/bench-data')
    .option('--sections <list>', `comma list of ${ALL_SECTIONS.join(',')}`, ALL_SECTIONS.join(','))
    .option('--pairs <list>', 'e2e pairs: 4b,moe,dense', '4b,moe,dense')
    .option('--buffered', 'also run the e2e cases with --no-direct')
    .option('--peer-pair <name>', 'pair the PyTorch peer runs on (4b, moe, dense)', 'dense')
    .option('--sweep-pair <name>', 'pair the sweep runs on (4b, moe, dense)', 'dense')
    .option('--threads-pair <name>', 'pair the disk thread-scaling runs on', '4b')
    .option('--batch-pair <name>', 'pair the batch section runs on (small: 2 × 0.89 GB; 4b, moe, dense)', 'small')
    .option('--python <path>', 'Python with torch and safetensors for the peer')
    .option('--no-append', 'print the table only, do not append to BENCHMARKS.md')
    .option('--repeat <n>', 'measure each floor and end-to-end case n times and report the median (this disk is noisy)', '1')
    .parse(process.argv);
  const opts = program.opts();
  repeat = Number(opts.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat: expected a whole number ≥ 1, got ${opts.repeat}`);
  const sections = new Set(String(opts.sections).split(',') as Section[]);
  for (const s of sections) if (!ALL_SECTIONS.includes(s)) throw new Error(`--sections: unknown section ${s}`);
  const quick = Boolean(opts.quick);
  const work = path.resolve(opts.work);
  fs.mkdirSync(work, { recursive: true });
  const machine = describeMachine(work);
  const specs = pairSpecs(quick);
  const pairs = new Map<PairName, CachedPair>();
  const need = new Set<PairName>();
  if (sections.has('e2e')) for (const p of String(opts.pairs).split(',')) need.add(p as PairName);
  if (sections.has('tmpfs')) for (const p of String(opts.pairs).split(',')) need.add(p as PairName);
  if (sections.has('sweep')) need.add(opts.sweepPair);
  if (sections.has('peer')) need.add(opts.peerPair);
  if (sections.has('threads')) need.add(opts.threadsPair);
  if (sections.has('batch')) need.add(opts.batchPair);
  for (const name of need) {
    if (!specs[name]) throw new Error(`unknown pair ${name}`);
    pairs.set(name, await ensurePair(work, specs[name], log));
  }
  const threadsList = Array.from({ length: machine.cpus }, (_, i) => i + 1);
  const started = new Date();

  if (sections.has('e2e')) {
    for (const p of String(opts.pairs).split(',') as PairName[]) {
      log(`e2e ${p}`);
      runE2E(pairs.get(p)!, work, Boolean(opts.buffered), p === '4b');
    }
    const moe = pairs.get('moe');
    const dense = pairs.get('dense');
    if (moe && dense) {
      for (const state of ['warm', 'cold'] as const) {
        const m = coldWarm.get(moe.dir)![state]! / moe.fileBytesPerModel;
        const d = coldWarm.get(dense.dir)![state]! / dense.fileBytesPerModel;
        rows.push({
          section: 'e2e',
          pair: 'moe vs dense',
          what: `seconds per output byte, ${state}: ${moe.tensors} vs ${dense.tensors} tensors`,
          seconds: NaN,
          outBytes: NaN,
          peakRss: null,
          target: { limit: 1.2, text: 'MoE ≤ 1.2 × dense', value: m / d },
          note: `ratio ${(m / d).toFixed(2)}`,
        });
      }
    }
  }
  if (sections.has('tmpfs'))
    runFastStorage(
      String(opts.pairs)
        .split(',')
        .map((p) => pairs.get(p as PairName)!),
    );
  if (sections.has('sweep')) {
    log('sweep');
    runSweep(pairs.get(opts.sweepPair as PairName)!, work);
  }
  if (sections.has('batch')) rows.push(...runBatchSection(pairs.get(opts.batchPair as PairName)!, work, cli, log));
  if (sections.has('peer')) {
    log('peer');
    runPeer(pairs.get(opts.peerPair as PairName)!, work, findPython(opts.python));
  }
  if (sections.has('threads')) {
    log('threads (disk)');
    runThreadsDisk(pairs.get(opts.threadsPair as PairName)!, work, threadsList);
  }
  if (sections.has('kernels') || sections.has('threads')) {
    log('kernels / threads (tmpfs)');
    await runKernels(quick, threadsList, sections.has('kernels'), sections.has('threads'));
  }

  const pairLines = [...pairs.values()].map(
    (p) =>
      `- ${p.spec.label}: ${p.dir} — ${p.tensors} tensors, 2 × ${gb(p.fileBytesPerModel)} GB bf16 (shape ${p.spec.shape}, scale ${p.spec.scale}${p.spec.layers ? `, ${p.spec.layers} layers` : ''}${p.spec.shards ? `, ${p.spec.shards[0]} shards` : ''})`,
  );
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  const table = formatTable();
  const report = [
    `## ${started.toISOString()} — \`${command}\``,
    '',
    `Machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.ramGiB} GiB RAM, disk ${machine.disk}, Linux ${machine.kernel}, Node ${machine.node}; load average at start ${machine.load}. Cold = \`sync; echo 3 > /proc/sys/vm/drop_caches\` before the run (posix_fadvise DONTNEED on the inputs where that is not allowed). Wall = the whole CLI process; peak RSS = /usr/bin/time %M.`,
    '',
    'Pairs:',
    ...pairLines,
    '',
    table,
    `Load average at end: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} (other work on the machine shares the ${machine.cpus} cores and the disk).`,
    ...(notes.length ? ['', ...notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
  process.stdout.write(`${report}\n`);
  if (opts.append !== false) {
    const file = path.join(ROOT, 'BENCHMARKS.md');
    if (!fs.existsSync(file)) fs.writeFileSync(file, '# weightmix benchmarks\n\nAppended by `npm run bench` (scripts/bench/index.ts); newest last.\n\n');
    fs.appendFileSync(file, `${report}\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
