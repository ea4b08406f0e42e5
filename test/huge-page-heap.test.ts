/**
 * The command line's heap on huge pages (native/process_heap.h, engine/native.ts's preferHugePageHeap): a command that merges
 * grows its main heap once by a range advised as transparent huge pages; `info` does not, nor a run with
 * WEIGHTMIX_NO_HUGE_HEAP set, nor a program that calls the library (its allocator is its own). Seen from inside each run: a
 * probe loaded with --require reads /proc/self/smaps as the process exits.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cachedPair, ensureCliBuilt, interpolateArgv, ROOT, runCli, scratchDir } from './helpers/cli';
import { testIf } from './helpers/skip';

const THP = fs.existsSync('/sys/kernel/mm/transparent_hugepage/enabled') ? fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8') : '';
const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
const ok = process.platform === 'linux' && glibc !== undefined && THP !== '' && !THP.includes('[never]');
const reason = 'needs Linux with glibc and transparent huge pages not set to "never"';

/** Advised heap (kB): the [heap] mappings whose flags hold `hg` (MADV_HUGEPAGE), summed as the probe saw them at exit. */
const PROBE = `
const fs = require('fs');
process.on('exit', () => {
  let kb = 0;
  for (const vma of fs.readFileSync('/proc/self/smaps', 'utf8').split(/\\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    if (/\\[heap\\]/.test(vma.split('\\n')[0]) && /^VmFlags:.*\\bhg\\b/m.test(vma)) kb += Number(/^Size:\\s+(\\d+)/m.exec(vma)[1]);
  }
  fs.writeFileSync(process.env.WM_TEST_HEAP_OUT, String(kb));
});
`;

let dir: string;
let probe: string;
let pair: { instruct: string; thinking: string };

beforeAll(async () => {
  dir = scratchDir('huge-page-heap');
  probe = path.join(dir, 'probe.js');
  fs.writeFileSync(probe, PROBE);
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 16 });
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The run's advised heap in MiB, with the probe loaded. */
function advisedMiB(out: string): number {
  return Number(fs.readFileSync(out, 'utf8')) / 1024;
}

function probeEnv(out: string, extra: Record<string, string> = {}): Record<string, string> {
  return { NODE_OPTIONS: `--require ${probe}`, WM_TEST_HEAP_OUT: out, ...extra };
}

testIf(ok, reason)('a merge on the command line runs on an advised heap of ~24 MiB; info and WEIGHTMIX_NO_HUGE_HEAP runs do not', async () => {
  const merged = path.join(dir, 'heap-merge.txt');
  const run = await runCli(interpolateArgv(pair, path.join(dir, 'out-a'), ['--quiet']), { env: probeEnv(merged) });
  expect(run.status).toBe(0);
  // 24 MiB grown, its whole 2 MiB pages advised: at least 20 MiB whatever the heap's alignment.
  expect(advisedMiB(merged)).toBeGreaterThanOrEqual(20);

  const optedOut = path.join(dir, 'heap-opted-out.txt');
  const off = await runCli(interpolateArgv(pair, path.join(dir, 'out-b'), ['--quiet']), { env: probeEnv(optedOut, { WEIGHTMIX_NO_HUGE_HEAP: '1' }) });
  expect(off.status).toBe(0);
  expect(advisedMiB(optedOut)).toBe(0);

  const info = path.join(dir, 'heap-info.txt');
  expect((await runCli(['info'], { env: probeEnv(info) })).status).toBe(0);
  expect(advisedMiB(info)).toBe(0);
});

testIf(ok, reason)('a program that calls the library keeps its own heap', () => {
  ensureCliBuilt();
  const out = path.join(dir, 'heap-library.txt');
  const script = `require(${JSON.stringify(path.join(ROOT, 'dist', 'lib', 'index.js'))})
    .interpolate({ instruct: ${JSON.stringify(pair.instruct)}, thinking: ${JSON.stringify(pair.thinking)}, lambda: 0.5, output: ${JSON.stringify(path.join(dir, 'out-c'))} })
    .then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, ...probeEnv(out) } });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(advisedMiB(out)).toBe(0);
});
