/**
 * weightmix benchmarks: end-to-end interpolate/sweep against the storage floor, the PyTorch peer,
 * kernel throughput and thread scaling. Prints a table and appends it to BENCHMARKS.md.
 *
 *   npm run bench -- [--quick] [--work DIR] [--sections e2e,tmpfs,disk-methods,sweep,batch,peer,kernels,threads[,batch-memory]] [--pairs 4b,moe,dense]
 *                    [--buffered] [--hold-guest-memory] [--peer-pair dense|moe|4b] [--sweep-pair dense|moe|4b] [--batch-pair small|4b|dense] [--no-append] [--repeat N]
 *                    [--methods ties,dare_ties,… | none] [--methods-pair 4b|dense|dense-additive|moe]
 */
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensurePair, pairSize, type CachedPair, type PairSpec } from './fixtures';
import { runBatchSection } from './batch';
import { runBatchMemorySection } from './batch-memory';
import { Interrupted, describeMachine, holdGuestMemory } from './system';
import { ROOT, cli, formatTable, gb, log, notes, rows, setRepeat } from './common';
import { coldWarm, runE2E, runSweep, runThreadsDisk } from './disk';
import { findPython, runPeer } from './peer';
import { findMergekitPython, runMergekitPeer } from './mergekit-peer';
import { runKernels } from './kernels';
import { runFastStorage } from './tmpfs';
import { BENCH_METHODS, THREE_MODEL_METHODS, runFastStorageMethods, type MethodModels } from './tmpfs-methods';
import { removeStaleOutputs, tmpfsRoot } from './fast-storage';
import { runDiskMethods } from './disk-methods';

const ALL_SECTIONS = ['e2e', 'tmpfs', 'disk-methods', 'sweep', 'batch', 'peer', 'kernels', 'threads'] as const;
/** Run only when named: batch-memory needs root, btrfs-progs and 10-20 minutes. */
const OPT_IN_SECTIONS = ['batch-memory'] as const;
type Section = (typeof ALL_SECTIONS)[number] | (typeof OPT_IN_SECTIONS)[number];
type PairName = '4b' | 'moe' | 'dense' | 'dense-additive' | 'small';

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
    // The dense pair's Instruct with an additive Thinking (small weights change sign, as in a real fine-tune) at the paper's
    // Table 1 σ of Qwen3-4B-2507 (0.027, Σ|T − I| / (Σ|T| + Σ|I|): a relative L2 distance of 0.054 for Gaussian noise).
    'dense-additive': {
      label: 'dense, additive noise',
      shape: 'qwen3-4b',
      scale: denseScale,
      layers,
      shards: [16, 16],
      seed: 1,
      noise: 'additive',
      delta: 0.054,
    },
    // The batch section's pair: Qwen3-4B widths / 3, 2 × 0.89 GB (/ 8 with --quick).
    small: { label: `qwen3-4b / ${quick ? 8 : 3}`, shape: 'qwen3-4b', scale: quick ? 8 : 3, seed: 1 },
  };
}

/**
 * The methods' models: the pair, and where a three-model method is asked for, the thinking model of the
 * same shape's seed-2 pair as the third (its task vector against instruct is unrelated to the pair's: the
 * timing does not depend on how alike they are).
 */
async function withThirdModel(work: string, spec: PairSpec, pair: CachedPair, methods: string[]): Promise<MethodModels> {
  if (!methods.some((m) => THREE_MODEL_METHODS.has(m))) return { ...pair, third: null };
  const other = await ensurePair(work, { ...spec, label: `${spec.label}, seed 2`, seed: 2 }, log);
  return { ...pair, third: other.thinking, files: [...pair.files, ...other.files.filter((f) => f.startsWith(other.thinking + path.sep))] };
}

async function main() {
  const program = new Command()
    .name('bench')
    .option('--quick', 'small pairs (minutes, not tens of minutes)')
    .option('--work <dir>', 'folder for cached fixtures and outputs (on the disk under test, not tmpfs)', '/work/bench-data')
    .option(
      '--sections <list>',
      `comma list of ${ALL_SECTIONS.join(',')} (default: all of them) and the opt-in ${OPT_IN_SECTIONS.join(',')}`,
      ALL_SECTIONS.join(','),
    )
    .option('--pairs <list>', 'e2e pairs: 4b,moe,dense', '4b,moe,dense')
    .option('--buffered', 'also run the e2e cases with --no-direct')
    .option('--peer-pair <name>', 'pair the PyTorch peer runs on (4b, moe, dense)', 'dense')
    .option('--sweep-pair <name>', 'pair the sweep runs on (4b, moe, dense)', 'dense')
    .option('--threads-pair <name>', 'pair the disk thread-scaling runs on', '4b')
    .option('--batch-pair <name>', 'pair the batch section runs on (small: 2 × 0.89 GB; 4b, moe, dense)', 'small')
    .option('--python <path>', 'Python with torch and safetensors for the peer')
    .option('--mergekit-python <path>', "Python that can import mergekit, for the peer's mergekit rows (else WEIGHTMIX_MERGEKIT_PYTHON, else --python)")
    .option('--no-append', 'print the table only, do not append to BENCHMARKS.md')
    .option(
      '--methods <list>',
      `tmpfs and disk-methods sections: recipe methods timed against interpolate (${BENCH_METHODS.join(',')}), or none`,
      BENCH_METHODS.join(','),
    )
    .option('--methods-pair <name>', 'pair the tmpfs and disk-methods methods run on (4b, moe, dense, dense-additive)', '4b')
    .option(
      '--hold-guest-memory',
      "pause a VM's free-page reporting to its host for the run (root; restored at exit): fresh pages then cost what they cost on a machine of its own",
    )
    .option('--repeat <n>', 'measure each floor and end-to-end case n times and report the median (this disk is noisy)', '1')
    .parse(process.argv);
  const opts = program.opts();
  const repeat = Number(opts.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat: expected a whole number ≥ 1, got ${opts.repeat}`);
  setRepeat(repeat);
  const sections = new Set(String(opts.sections).split(',') as Section[]);
  for (const s of sections) if (![...ALL_SECTIONS, ...OPT_IN_SECTIONS].includes(s)) throw new Error(`--sections: unknown section ${s}`);
  const quick = Boolean(opts.quick);
  const work = path.resolve(opts.work);
  fs.mkdirSync(work, { recursive: true });
  if (opts.holdGuestMemory) holdGuestMemory();
  const machine = describeMachine(work);
  const tmpfs = tmpfsRoot();
  if ('dir' in tmpfs) for (const name of removeStaleOutputs(tmpfs.dir)) log(`removed ${path.join(tmpfs.dir, name)}, left by a bench that was killed`);
  const specs = pairSpecs(quick);
  const pairs = new Map<PairName, CachedPair>();
  const need = new Set<PairName>();
  if (sections.has('e2e')) for (const p of String(opts.pairs).split(',')) need.add(p as PairName);
  if (sections.has('tmpfs')) for (const p of String(opts.pairs).split(',')) need.add(p as PairName);
  const methods = opts.methods === 'none' ? [] : String(opts.methods).split(',');
  if ((sections.has('tmpfs') || sections.has('disk-methods')) && methods.length > 0) need.add(opts.methodsPair);
  if (sections.has('sweep')) need.add(opts.sweepPair);
  if (sections.has('peer')) need.add(opts.peerPair);
  if (sections.has('threads')) need.add(opts.threadsPair);
  if (sections.has('batch')) need.add(opts.batchPair);
  for (const name of need) {
    if (!specs[name]) throw new Error(`unknown pair ${name}`);
    pairs.set(name, await ensurePair(work, specs[name], log));
  }
  const methodsRun = (sections.has('tmpfs') || sections.has('disk-methods')) && methods.length > 0;
  const methodModels = methodsRun ? await withThirdModel(work, specs[opts.methodsPair as PairName], pairs.get(opts.methodsPair)!, methods) : null;
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
  if (sections.has('tmpfs') && methods.length > 0 && 'dir' in tmpfs) runFastStorageMethods(methodModels!, tmpfs.dir, methods);
  if (sections.has('disk-methods') && methods.length > 0) runDiskMethods(methodModels!, work, methods);
  if (sections.has('sweep')) {
    log('sweep');
    runSweep(pairs.get(opts.sweepPair as PairName)!, work);
  }
  if (sections.has('batch')) rows.push(...runBatchSection(pairs.get(opts.batchPair as PairName)!, work, cli, log));
  if (sections.has('batch-memory')) rows.push(...runBatchMemorySection(work, log));
  if (sections.has('peer')) {
    log('peer');
    const python = findPython(opts.python);
    runPeer(pairs.get(opts.peerPair as PairName)!, work, python, 'dir' in tmpfs ? tmpfs.dir : null);
    const mergekit = findMergekitPython(opts.mergekitPython, [process.env.WEIGHTMIX_MERGEKIT_PYTHON, python]);
    runMergekitPeer(pairs.get(opts.peerPair as PairName)!, 'dir' in tmpfs ? tmpfs.dir : null, mergekit);
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
  if (methodModels?.third) pairLines.push(`- third model of model_stock and sce3: ${methodModels.third} (the seed-2 pair's thinking model, same shape)`);
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  const table = formatTable();
  const report = [
    `## ${started.toISOString()} — \`${command}\``,
    '',
    `Machine: ${machine.cpus} × ${machine.cpuModel} (${machine.cpuGeneration}; weightmix kernels ${machine.simd}, addon ${machine.addon}), ${machine.ramGiB} GiB RAM, disk ${machine.disk}, Linux ${machine.kernel}, Node ${machine.node}, free-page reporting ${machine.pageReporting}; load average at start ${machine.load}. Cold = \`sync; echo 3 > /proc/sys/vm/drop_caches\` before the run (posix_fadvise DONTNEED on the inputs where that is not allowed). Wall = the whole CLI process; peak RSS = /usr/bin/time %M.`,
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

// Ctrl-C also stops the timed child; with a handler the bench then unwinds through its cleanups (tmpfs outputs, recipe
// folders: timeCommand throws Interrupted) instead of dying where it stands. A bench killed otherwise leaves its tmpfs
// outputs to the next run's sweep (removeStaleOutputs).
process.on('SIGINT', () => {
  process.exitCode = 130;
});

main().catch((e) => {
  const stopped = e instanceof Interrupted;
  process.stderr.write(stopped ? 'bench: interrupted; its output folders are removed\n' : `${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = stopped ? 130 : 1;
});
