/**
 * The CLI's start-up loads the flags' definitions only: each command loads its machinery (the engine, the analyses, the
 * fixture writer, the progress bars) in its action (lib/cli.ts), so that `weightmix --version`, `--help` and every run
 * start in about the time of bare node, not twice it. Likewise a run on local folders never loads the hub downloader
 * (lib/hub/resolve.ts loads it for a hub id only).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BIN, cachedPair, ensureCliBuilt, interpolateArgv, ROOT, scratchDir } from './helpers/cli';

/** What requiring dist/lib/cli.js loads: lib files relative to dist/lib, and the packages by name. */
function loadedAtStartup(): { lib: string[]; packages: string[] } {
  ensureCliBuilt();
  const script = `require(${JSON.stringify(path.join(ROOT, 'dist', 'lib', 'cli.js'))}); process.stdout.write(JSON.stringify(Object.keys(require.cache)));`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  expect(run.status).toBe(0);
  return loadedModules(JSON.parse(run.stdout) as string[]);
}

/** Module files as lib files relative to dist/lib, and the packages by name. */
function loadedModules(files: string[]): { lib: string[]; packages: string[] } {
  const distLib = path.join(ROOT, 'dist', 'lib') + path.sep;
  const lib = files.filter((f) => f.startsWith(distLib)).map((f) => path.relative(distLib, f).replace(/\\/g, '/'));
  const packages = [...new Set(files.map((f) => /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(f)?.[1]).filter((p): p is string => p !== undefined))];
  return { lib, packages };
}

test('starting the CLI loads no command machinery: no engine, merge methods, analyses, fixture writer or progress bars', () => {
  const { lib, packages } = loadedAtStartup();
  // The command modules themselves are loaded (they define the flags), and at least one of them is seen here.
  expect(lib).toContain('commands/interpolate.js');
  // model/tensor-names.js names the module classes in --modules' help.
  const machinery = lib.filter((f) =>
    /^(interpolation|recipes|hub)\/|^model\/(?!tensor-names\.js$)|^engine\/(plan|execute-plan|output)|^fixtures\/fixture\.js$|^analysis\/(diff|verify|score)\.js$/.test(
      f,
    ),
  );
  expect(machinery).toEqual([]);
  expect(packages.filter((p) => ['cli-progress', 'yaml'].includes(p))).toEqual([]);
});

test('a merge of local folders loads no hub downloader: no HTTP client, proxy agents or hub client', async () => {
  ensureCliBuilt();
  const pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 16 });
  const dir = scratchDir('startup');
  try {
    // Preloaded into the CLI's process: the modules loaded by its exit, written where the test reads them.
    const preload = path.join(dir, 'loaded-at-exit.js');
    const list = path.join(dir, 'loaded.json');
    fs.writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(list)}, JSON.stringify(Object.keys(require.cache))));`);
    const argv = ['-r', preload, BIN, ...interpolateArgv(pair, path.join(dir, 'out'), ['-q'])];
    // A hung CLI is killed (jest's own timeout cannot stop spawnSync); no colour codes from the environment reach stderr.
    const run = spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: 60_000, env: { ...process.env, FORCE_COLOR: '0' } });
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    const { lib, packages } = loadedModules(JSON.parse(fs.readFileSync(list, 'utf8')) as string[]);
    // The merge itself ran through the engine and the folder resolver, which the check below must not exclude.
    expect(lib).toEqual(expect.arrayContaining(['engine/execute-plan.js', 'hub/resolve.js']));
    expect(lib.filter((f) => /^hub\/(snapshot-download|api|proxy|fetch-blob|blob-lock)\.js$/.test(f))).toEqual([]);
    expect(packages.filter((p) => /^(@huggingface\/hub|https?-proxy-agent|proxy-from-env|agent-base)$/.test(p))).toEqual([]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
