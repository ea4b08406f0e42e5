/** The machine, the page cache and the storage floor: what every benchmark number is measured against. */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadNative, loadedAddon } from '../../lib/engine/native';

export interface Timed {
  seconds: number;
  /** Peak resident set of the whole process in bytes (from /usr/bin/time %M), when measured. */
  peakRss: number | null;
  /** User + system CPU seconds of the whole process (from /usr/bin/time %U %S), when measured. */
  cpuSeconds: number | null;
  stdout: string;
}

function sh(cmd: string): string {
  try {
    return execFileSync('bash', ['-c', cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export function hasGnuTime(): boolean {
  return fs.existsSync('/usr/bin/time');
}

/** A timed child stopped by Ctrl-C (SIGINT, or status 130 from a CLI that cleaned up after it): the bench stops too. */
export class Interrupted extends Error {}

/** Runs argv to completion; wall time from our clock, peak RSS from /usr/bin/time. Throws on failure. */
export function timeCommand(argv: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Timed {
  const rssFile = path.join(os.tmpdir(), `wm-bench-rss-${process.pid}`);
  const useTime = hasGnuTime();
  const full = useTime ? ['/usr/bin/time', '-f', '%M %U %S', '-o', rssFile, ...argv] : argv;
  // Dirty pages of earlier steps (fixtures, a deleted output) would otherwise be written back during this one.
  spawnSync('sync');
  const t0 = process.hrtime.bigint();
  const r = spawnSync(full[0], full.slice(1), { encoding: 'utf8', env: options.env ?? process.env, cwd: options.cwd, maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.signal === 'SIGINT' || r.status === 130) throw new Interrupted(`interrupted: ${argv.join(' ')}`);
  if (r.status !== 0) {
    throw new Error(`command failed (${r.status ?? r.signal}): ${argv.join(' ')}\n${r.stderr?.slice(-2000)}`);
  }
  let peakRss: number | null = null;
  let cpuSeconds: number | null = null;
  if (useTime) {
    const [kb, user, system] = fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    peakRss = Number.isFinite(kb) ? kb * 1024 : null;
    cpuSeconds = Number.isFinite(user + system) ? user + system : null;
    fs.rmSync(rssFile, { force: true });
  }
  return { seconds, peakRss, cpuSeconds, stdout: r.stdout };
}

let dropMethod: string | null = null;

/** Empties the page cache of `files` (all of it when /proc/sys/vm/drop_caches is writable). Returns the method. */
export function dropCaches(files: string[]): string {
  spawnSync('sync');
  if (dropMethod !== 'fadvise') {
    try {
      fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
      dropMethod = 'drop_caches';
      return dropMethod;
    } catch {
      dropMethod = 'fadvise';
    }
  }
  evictFromCache(files);
  return dropMethod;
}

/** Drops `files`' pages from the page cache (GNU dd: nocache with count=0 advises DONTNEED for the whole file); other files keep theirs. */
function evictFromCache(files: string[]): void {
  for (const f of files) spawnSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/**
 * Puts `files` in the page cache as a cold read leaves them: evicted, then read once. How the cache holds a file (the size of its
 * folios) follows whatever read or wrote it first: a MoE shard written 4 KiB at a time copied out of the cache at 7–8 GB/s, the same
 * bytes written at once at 14–15. Settled alike, two pairs compare as engines, not as cache histories.
 */
export function settleInCache(files: string[]): void {
  evictFromCache(files);
  warm(files);
}

/** Reads files into the page cache (the warm state). */
export function warm(files: string[]): Timed {
  return timeCommand(['bash', '-c', 'cat "$@" > /dev/null', 'warm', ...files]);
}

/** Cold sequential read of `files` with `cat` (the read floor). */
export function coldReadFloor(files: string[]): Timed {
  dropCaches(files);
  return warm(files);
}

/** O_DIRECT write of `bytes` zeros in 8 MiB blocks to a scratch file in `dir`, flushed (the write floor). */
export function directWriteFloor(dir: string, bytes: number): Timed {
  const file = path.join(dir, `write-floor-${process.pid}.bin`);
  const count = Math.ceil(bytes / (8 << 20));
  try {
    return timeCommand(['dd', 'if=/dev/zero', `of=${file}`, 'bs=8M', `count=${count}`, 'oflag=direct', 'conv=fdatasync', 'status=none']);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  /** /proc/cpuinfo's family and model numbers, which a VM's model name ("AMD EPYC") leaves out. */
  cpuGeneration: string;
  /** The kernels the addon runs here (its info().simd): the methods' ratios differ between AVX-512 and AVX2 CPUs. */
  simd: string;
  /** Which addon binary the runs load (a WEIGHTMIX_ADDON override, the prebuilt one, or a local build) and where. */
  addon: string;
  ramGiB: number;
  disk: string;
  kernel: string;
  /** Whether the VM hands freed memory back to its host (virtio_balloon's free-page reporting), which makes fresh pages slow. */
  pageReporting: string;
  load: string;
  node: string;
}

function cpuGeneration(): string {
  let info = '';
  try {
    info = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return 'family unknown';
  }
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(\\S+)`, 'm').exec(info)?.[1] ?? '?';
  return `family ${field('cpu family')}, model ${field('model')}`;
}

const REPORTING_ORDER = '/sys/module/page_reporting/parameters/page_reporting_order';
let heldFrom: string | null = null;

/**
 * A VM guest with virtio_balloon's free-page reporting gives free blocks of 2^order pages back to its host a few seconds after
 * they are freed; touching them again faults on the host (about 3 s per GiB on the Zen 3 Firecracker VM of BENCHMARKS.md), so
 * a run after a pause pays for fresh pages that a run right after another does not (holdGuestMemory turns that off).
 */
function pageReporting(): string {
  let order = '';
  let balloon = false;
  try {
    order = fs.readFileSync(REPORTING_ORDER, 'utf8').trim();
    balloon = fs.readdirSync('/sys/bus/virtio/drivers/virtio_balloon').some((name) => name.startsWith('virtio'));
  } catch {
    return 'none';
  }
  if (!order || !balloon) return 'none';
  if (heldFrom !== null) return `paused for the run (--hold-guest-memory: order ${heldFrom} raised to ${order}, above the largest block, and restored after)`;
  return `on, order ${order} (virtio_balloon: freed blocks of 2^${order} pages go back to the host; fresh pages after a pause are slow)`;
}

/**
 * --hold-guest-memory: stops free-page reporting for the bench's life (an order above the kernel's largest block, 2^10 pages,
 * leaves no block to report) and puts the order back when the process exits, Ctrl-C included. Needs root; throws when the
 * order cannot be written. A bench killed by another signal leaves the order raised: write the old value back by hand.
 */
export function holdGuestMemory(): void {
  let old: string;
  try {
    old = fs.readFileSync(REPORTING_ORDER, 'utf8').trim();
    fs.writeFileSync(REPORTING_ORDER, '11');
  } catch (e) {
    throw new Error(
      `--hold-guest-memory: cannot raise ${REPORTING_ORDER} (${(e as NodeJS.ErrnoException).code ?? String(e)}; it needs root and a VM with free-page reporting)`,
    );
  }
  heldFrom = old;
  process.on('exit', () => fs.writeFileSync(REPORTING_ORDER, old));
}

export function describeMachine(work: string): Machine {
  const source = sh(`findmnt -n -o SOURCE,FSTYPE -T ${JSON.stringify(work)}`);
  const dev =
    source
      .split(/\s+/)[0]
      ?.replace(/^\/dev\//, '')
      .replace(/[0-9]+$/, '') ?? '';
  const model = sh(`cat /sys/block/${dev}/device/model 2>/dev/null`) || sh(`lsblk -dno MODEL /dev/${dev} 2>/dev/null`);
  const rotational = sh(`cat /sys/block/${dev}/queue/rotational 2>/dev/null`);
  return {
    cpus: Number(sh('nproc')) || os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cpuGeneration: cpuGeneration(),
    simd: loadNative().info().simd,
    addon: `${loadedAddon().kind} ${loadedAddon().path}`,
    ramGiB: Math.round(os.totalmem() / 2 ** 30),
    disk: `${source || 'unknown'}${model ? ` (${model})` : dev.startsWith('vd') ? ' (virtio block device, model not exposed)' : ''}${rotational === '1' ? ', reports rotational' : ''}`,
    kernel: os.release(),
    pageReporting: pageReporting(),
    load: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    node: process.version,
  };
}
