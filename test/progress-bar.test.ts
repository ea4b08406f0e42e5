/**
 * The progress bar as a terminal shows it (lib/commands/reporter.ts), run under `script` for a pseudo-terminal: every frame
 * has its numbers. The first frame showed the format's placeholders (`{done}/{all} GB | {tensors}/{tensorsTotal} tensors`),
 * drawn by the bar's start before its first values.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { BIN, cachedPair, ensureCliBuilt, interpolateArgv } from './helpers/cli';
import { testIf } from './helpers/skip';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-progress-bar-');

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
const withTerminal = testIf(hasScript, "no util-linux 'script' to give the command a pseudo-terminal");

/** The single-quoted shell word for `s`. */
const quoted = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

withTerminal(
  'every frame of the bar shows numbers, the first one too',
  async () => {
    ensureCliBuilt();
    const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 22 });
    const command = [process.execPath, BIN, ...interpolateArgv(pair, path.join(root, 'out'))].map(quoted).join(' ');
    const run = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status).toBe(0);
    const frames = run.stdout.split(/\r|\n/).filter((line) => line.includes('interpolate '));
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.filter((frame) => /\{[A-Za-z]+\}/.test(frame))).toEqual([]);
    expect(frames.every((frame) => /\d+\.\d\d\/\d+\.\d\d GB \| \d+\/\d+ tensors/.test(frame))).toBe(true);
  },
  60_000,
);
