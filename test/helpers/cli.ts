/**
 * The real command line as users run it: `node bin/weightmix.js …` in a child process, with its
 * exit status, stdout and stderr. Also what tests that drive it need: the folders a run may leave
 * beside its output, and a cache of fixture pairs shared by test files. The LD_PRELOAD shim that
 * slows down or fails the engine's positional reads and writes (fault injection) is in fault-shim.ts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeCheckpointPair, type CheckpointPair, type CheckpointPairOptions } from '../../lib/fixtures/fixture';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'weightmix.js');

/** `weightmix interpolate` of `pair` at λ 0.5 into `out` (flags after it: `extra`), as the command's arguments. */
export function interpolateArgv(pair: { instruct: string; thinking: string }, out: string, extra: string[] = []): string[] {
  return ['interpolate', '--instruct', pair.instruct, '--thinking', pair.thinking, '--lambda', '0.5', '-o', out, ...extra];
}
const ADDON = path.join(ROOT, 'build', 'Release', 'weightmix.node');

export interface CliResult {
  /** Exit status; null when the process died of a signal. */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Kill the process (SIGKILL) after this long; the test then fails on its status. Default 30 s. */
  timeoutMs?: number;
}

let built = false;

/** dist/ must hold the compiled CLI of the current sources: rebuilt here (once) when a lib file is newer. */
export function ensureCliBuilt(): void {
  if (built) return;
  if (!fs.existsSync(ADDON)) throw new Error(`the native addon is not built (${ADDON}); run \`node scripts/build-native.js\``);
  if (distIsStale()) {
    withLock(path.join(os.tmpdir(), `weightmix-tsc-${hashOf(ROOT)}.lock`), () => {
      if (!distIsStale()) return;
      // tsc emits even when a file being edited elsewhere has type errors; only a missing CLI is fatal.
      spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'ignore' });
    });
    if (!fs.existsSync(path.join(ROOT, 'dist', 'lib', 'cli.js'))) throw new Error('dist/lib/cli.js is missing after `tsc`; run `npx tsc -p tsconfig.json`');
  }
  built = true;
}

function distIsStale(): boolean {
  const libDir = path.join(ROOT, 'lib');
  const walk = (dir: string): boolean =>
    fs.readdirSync(dir, { withFileTypes: true }).some((e) => {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) return walk(p);
      if (!e.name.endsWith('.ts') || e.name.endsWith('.d.ts')) return false;
      const out = path.join(ROOT, 'dist', path.relative(ROOT, p)).replace(/\.ts$/, '.js');
      return !fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(p).mtimeMs;
    });
  return walk(libDir);
}

/** A cross-process lock (a directory): jest runs test files in several workers. */
function withLock(lockDir: string, fn: () => void): void {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const age = Date.now() - (fs.statSync(lockDir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 120_000) fs.rmSync(lockDir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lockDir}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
  try {
    fn();
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
}

export function hashOf(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
}

export interface RunningCli {
  child: ChildProcess;
  /** Resolves with the first stdout line that satisfies `test` (rejects if the process exits first). */
  waitForLine(test: (line: string) => boolean): Promise<string>;
  done: Promise<CliResult>;
}

/** Starts `weightmix ARGS…`; the caller decides when to signal it. */
export function startCli(args: string[], options: CliOptions = {}): RunningCli {
  ensureCliBuilt();
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, FORCE_COLOR: '0', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: { test: (l: string) => boolean; resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      for (const w of [...waiters]) {
        if (w.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      for (const w of waiters.splice(0)) w.reject(new Error(`weightmix exited (${status ?? signal}) before the awaited line; stderr: ${stderr}`));
      resolve({ status, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return {
    child,
    done,
    waitForLine: (test) => new Promise((resolve, reject) => waiters.push({ test, resolve, reject })),
  };
}

/** Runs `weightmix ARGS…` to completion. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).done;
}

/**
 * The same command line in this process: `main(argv)` of lib/cli.ts with stdout and stderr captured.
 * For large corpora, where a process per case would cost seconds; calls are serialized.
 */
let inProcessQueue: Promise<unknown> = Promise.resolve();

export function runCliInProcess(args: string[]): Promise<CliResult> {
  // Output capture is process-wide: concurrent callers take turns.
  const run = inProcessQueue.then(() => runMainCaptured(args));
  inProcessQueue = run.catch(() => undefined);
  return run;
}

async function runMainCaptured(args: string[]): Promise<CliResult> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { main } = require('../../lib/cli') as typeof import('../../lib/cli');
  const started = Date.now();
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const status = await main(['node', 'weightmix', ...args]);
    return { status, signal: null, stdout, stderr, ms: Date.now() - started };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/** A `--json` progress line. */
export const isProgressLine = (line: string): boolean => line.startsWith('{"event":"progress"');

/**
 * The failure contract of the CLI: the status given, exactly one stderr line that starts with
 * `weightmix: error:` and holds no stack, and nothing on stdout but `--json` events.
 */
export function expectOneLineError(result: CliResult, status = 1): string {
  const context = `status ${result.status} signal ${result.signal}\nstderr: ${result.stderr}`;
  expect({ status: result.status, context }).toEqual({ status, context });
  const lines = result.stderr.split('\n').filter((l) => l !== '');
  if (status === 2) {
    // Usage errors may add commander's "(run weightmix --help for usage)" hint.
    expect(lines[0]).toMatch(/^weightmix: error: /);
    expect(lines.slice(1).every((l) => l.startsWith('(run weightmix --help'))).toBe(true);
  } else {
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^weightmix: error: \S/);
  }
  expect(result.stderr).not.toMatch(/\n\s+at |internal error|Error: /);
  return lines[0];
}

/**
 * What a run left beside `target` in its parent folder: the target itself when it exists, and any
 * temporary folder, swapped-out folder or lock of it (`.NAME.weightmix-…`, `.NAME…weightmix.lock`).
 */
export function leftoversBeside(target: string): string[] {
  const parent = path.dirname(target);
  const base = path.basename(target);
  if (!fs.existsSync(parent)) return [];
  return fs
    .readdirSync(parent)
    .filter((e) => e === base || (e.startsWith(`.${base}.`) && e.includes('weightmix')))
    .sort();
}

/**
 * A fresh scratch folder for a test file: in /dev/shm when it has room (outputs there sync at no
 * cost, so a disk busy with other work cannot slow the suite), else the system temp folder.
 * WEIGHTMIX_TEST_DISK=1 keeps everything on the temp folder's disk.
 */
export function scratchDir(tag: string): string {
  let base = os.tmpdir();
  if (process.env.WEIGHTMIX_TEST_DISK !== '1') {
    try {
      const st = fs.statfsSync('/dev/shm');
      if (st.bavail * st.bsize > 2 ** 30) base = '/dev/shm';
    } catch {
      // no /dev/shm: the temp folder it is
    }
  }
  return fs.mkdtempSync(path.join(base, `weightmix-${tag}-`));
}

/** Every file under `dir` (relative path → SHA-256 of its bytes), for byte-for-byte comparisons of whole models. */
export function snapshotTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(dir, p), createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

// ---- fixture pairs shared by test files ------------------------------------------------------------

const FIXTURE_SOURCES = ['lib/fixtures/fixture.ts', 'lib/fixtures/model-shapes.ts', 'lib/fixtures/random.ts', 'lib/format/safetensors.ts'];

/**
 * A fixture pair built once per machine (per options and fixture-code version) under the system
 * temp folder and reused by every test file: the larger fixtures take seconds to write. Callers
 * must not modify it; `privateCopy` gives a copy whose shards may be changed.
 */
export async function cachedPair(options: Omit<CheckpointPairOptions, 'dir' | 'overwrite' | 'onProgress' | 'signal'>): Promise<CheckpointPair> {
  const code = FIXTURE_SOURCES.map((f) => fs.readFileSync(path.join(ROOT, f), 'utf8'));
  const key = hashOf(JSON.stringify(options), ...code);
  const root = path.join(os.tmpdir(), 'weightmix-test-fixtures');
  const dir = path.join(root, `${options.shape}-${key}`);
  const marker = path.join(dir, 'pair.json');
  if (fs.existsSync(marker)) return JSON.parse(fs.readFileSync(marker, 'utf8')) as CheckpointPair;
  fs.mkdirSync(root, { recursive: true });
  const building = `${dir}.building-${process.pid}`;
  fs.rmSync(building, { recursive: true, force: true });
  const pair = await makeCheckpointPair({ ...options, dir: building });
  const final: CheckpointPair = { ...pair, instruct: path.join(dir, 'instruct'), thinking: path.join(dir, 'thinking') };
  fs.writeFileSync(path.join(building, 'pair.json'), JSON.stringify(final));
  try {
    fs.renameSync(building, dir);
  } catch {
    // Another worker published the same pair first.
    fs.rmSync(building, { recursive: true, force: true });
  }
  return JSON.parse(fs.readFileSync(marker, 'utf8')) as CheckpointPair;
}

/**
 * A model folder at `dest` that shares the files of `src` (hard links, so nothing is copied) except
 * `copied`, which are real copies that a test may truncate or corrupt without touching the cache.
 */
export function privateCopy(src: string, dest: string, copied: string[] = []): string {
  fs.mkdirSync(dest, { recursive: true });
  for (const name of fs.readdirSync(src)) {
    const from = path.join(src, name);
    const to = path.join(dest, name);
    if (copied.includes(name)) fs.copyFileSync(from, to);
    else {
      try {
        fs.linkSync(from, to);
      } catch {
        fs.copyFileSync(from, to);
      }
    }
  }
  return dest;
}

/** Resolves once `file` exists (polling), or rejects after `timeoutMs`. */
export async function waitForFile(file: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${file}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
