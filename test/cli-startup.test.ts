/**
 * The CLI's start-up loads the flags' definitions only: each command loads its machinery (the engine, the analyses, the
 * fixture writer, the progress bars) in its action (lib/cli.ts), so that `weightmix --version`, `--help` and every run
 * start in about the time of bare node, not twice it.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ensureCliBuilt, ROOT } from './helpers/cli';

/** What requiring dist/lib/cli.js loads: lib files relative to dist/lib, and the packages by name. */
function loadedAtStartup(): { lib: string[]; packages: string[] } {
  ensureCliBuilt();
  const script = `require(${JSON.stringify(path.join(ROOT, 'dist', 'lib', 'cli.js'))}); process.stdout.write(JSON.stringify(Object.keys(require.cache)));`;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  expect(run.status).toBe(0);
  const files = JSON.parse(run.stdout) as string[];
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
