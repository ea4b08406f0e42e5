/**
 * Which addon binary loads (lib/engine/native-loader.ts): WEIGHTMIX_ADDON, the prebuild, a local build,
 * or one error naming the platform and the source-build command; what `info` says about it; and the
 * package.json promises the published tarball depends on (no install scripts, no node-gyp by default).
 * scripts/check-package.sh installs the real tarball with npm and pnpm.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AddonPlatform, BUILD_COMMAND, compareVersions, loadAddon } from '../lib/engine/native-loader';
import { WeightmixError } from '../lib/errors';
import { ensureCliBuilt, ROOT, runCli } from './helpers/cli';

/** linux-x64 with this glibc (undefined: another C library, e.g. musl). */
const linuxX64 = (...glibc: [string?]): AddonPlatform => ({ platform: 'linux', arch: 'x64', glibc: () => (glibc.length ? glibc[0] : '2.36') });

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wm-loader-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function put(rel: string, content = 'binary', mtime?: number): string {
  const file = path.join(dir, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  if (mtime !== undefined) fs.utimesSync(file, mtime, mtime);
  return file;
}
const PREBUILD = 'prebuilds/linux-x64/weightmix.node';
const LOCAL = 'build/Release/weightmix.node';

/** A stand-in for require(): returns the file it loaded, or throws for the files listed. */
function loader(failing: Record<string, string> = {}) {
  return (file: string): string => {
    const message = failing[path.relative(dir, file)];
    if (message) throw new Error(message);
    return file;
  };
}

function errorOf(f: () => unknown): WeightmixError {
  try {
    f();
  } catch (e) {
    return e as WeightmixError;
  }
  throw new Error('expected an error');
}

describe('compareVersions', () => {
  test.each([
    ['2.34', '2.34', 0],
    ['2.4', '2.34', -1],
    ['2.35', '2.34', 1],
    ['2.34.1', '2.34', 1],
    ['3', '2.99', 1],
  ])('%s vs %s → %d', (a, b, want) => expect(compareVersions(a, b)).toBe(want));
});

describe('loadAddon', () => {
  test('the prebuild for this platform comes first', () => {
    const prebuild = put(PREBUILD, 'x', 2_000_000);
    put(LOCAL, 'x', 1_000_000);
    const { addon, loaded } = loadAddon(dir, linuxX64(), {}, loader());
    expect(addon).toBe(prebuild);
    expect(loaded).toEqual({ kind: 'prebuilt', path: prebuild });
  });

  test('a local build newer than the prebuild wins (rebuilt on purpose)', () => {
    put(PREBUILD, 'x', 1_000_000);
    const local = put(LOCAL, 'x', 2_000_000);
    expect(loadAddon(dir, linuxX64(), {}, loader()).loaded).toEqual({ kind: 'local', path: local, prebuildSkipped: 'a local build is newer' });
  });

  test('no prebuild for this platform: the local build, saying why', () => {
    put(PREBUILD);
    const local = put(LOCAL);
    const arm = { platform: 'linux', arch: 'arm64', glibc: () => '2.36' };
    expect(loadAddon(dir, arm, {}, loader()).loaded).toEqual({ kind: 'local', path: local, prebuildSkipped: 'no prebuild for linux-arm64' });
  });

  test('a prebuild that does not load falls back to the local build with the glibc floor as the reason', () => {
    put(PREBUILD, 'x', 2_000_000);
    put('prebuilds/linux-x64/weightmix.json', '{"glibc":"2.34"}');
    put(LOCAL, 'x', 1_000_000);
    const failing = loader({ [PREBUILD]: "/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found\n(more)" });
    expect(loadAddon(dir, linuxX64('2.31'), {}, failing).loaded.prebuildSkipped).toBe('the prebuild needs glibc 2.34 or newer and this system has 2.31');
    expect(loadAddon(dir, linuxX64(undefined), {}, failing).loaded.prebuildSkipped).toBe(
      "the prebuild needs glibc 2.34 or newer and this system's C library is not glibc",
    );
    // At or above the floor, the loader's own first line is the reason.
    expect(loadAddon(dir, linuxX64('2.36'), {}, failing).loaded.prebuildSkipped).toBe(
      "the prebuild did not load: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found",
    );
  });

  test('neither: one line naming the platform, the reason and the command that builds from source', () => {
    put(PREBUILD);
    put('prebuilds/linux-x64/weightmix.json', '{"glibc":"2.34"}');
    const e = errorOf(() => loadAddon(dir, linuxX64('2.28'), {}, loader({ [PREBUILD]: 'version GLIBC_2.34 not found' })));
    expect(e).toBeInstanceOf(WeightmixError);
    expect(e.code).toBe('NativeMissing');
    expect(e.message).toBe(
      `no native addon for linux-x64: the prebuild needs glibc 2.34 or newer and this system has 2.28 and no local build (${path.join(dir, LOCAL)}); ` +
        `build it from source with \`${BUILD_COMMAND}\` (needs CMake or node-gyp and a C++17 compiler; nvcc adds the CUDA kernels)`,
    );
    expect(e.message).not.toContain('\n');
    const mac = errorOf(() => loadAddon(dir, { platform: 'darwin', arch: 'arm64', glibc: () => undefined }, {}, loader()));
    expect(mac.message).toMatch(
      /^no native addon for darwin-arm64: no prebuild for darwin-arm64 and no local build .*run weightmix on Linux \(WSL2 on Windows, a Linux container on macOS\)$/,
    );
  });

  test('a local build that does not load is an error naming it, not a crash', () => {
    put(LOCAL);
    const e = errorOf(() => loadAddon(dir, linuxX64(), {}, loader({ [LOCAL]: 'invalid ELF header' })));
    expect(e.message).toBe(`the local build ${path.join(dir, LOCAL)} did not load (invalid ELF header); rebuild it with \`${BUILD_COMMAND}\``);
  });

  test('WEIGHTMIX_ADDON overrides both, and must name a file', () => {
    put(PREBUILD);
    const other = put('elsewhere/weightmix.node');
    expect(loadAddon(dir, linuxX64(), { WEIGHTMIX_ADDON: other }, loader()).loaded).toEqual({ kind: 'override', path: other });
    const e = errorOf(() => loadAddon(dir, linuxX64(), { WEIGHTMIX_ADDON: path.join(dir, 'nope.node') }, loader()));
    expect(e.message).toBe(`WEIGHTMIX_ADDON names no file: ${path.join(dir, 'nope.node')}`);
    // A file that is no addon: a one-line NativeMissing, not an internal error.
    const bad = errorOf(() => loadAddon(dir, linuxX64(), { WEIGHTMIX_ADDON: other }, loader({ 'elsewhere/weightmix.node': `${other}: file too short` })));
    expect([bad.code, bad.message]).toEqual(['NativeMissing', `WEIGHTMIX_ADDON names ${other}, which did not load: ${other}: file too short`]);
    // Any other file would be run as JavaScript by require(): refused before it is loaded.
    const script = put('elsewhere/addon.js');
    const loaded: string[] = [];
    const notAddon = errorOf(() => loadAddon(dir, linuxX64(), { WEIGHTMIX_ADDON: script }, (file) => loaded.push(file)));
    expect([notAddon.code, notAddon.message, loaded]).toEqual([
      'NativeMissing',
      `WEIGHTMIX_ADDON names ${script}, which is not a Node addon (a .node file)`,
      [],
    ]);
  });

  test('the real addon loads from a prebuilds folder', () => {
    const real = process.env.WEIGHTMIX_ADDON ?? path.join(ROOT, LOCAL);
    fs.mkdirSync(path.join(dir, 'prebuilds/linux-x64'), { recursive: true });
    fs.copyFileSync(real, path.join(dir, PREBUILD));
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a .node addon at a path known only at run time
    const { addon, loaded } = loadAddon(dir, linuxX64(), {}, (file) => require(file) as { info(): { simd: string } });
    expect(loaded.kind).toBe('prebuilt');
    expect(typeof addon.info().simd).toBe('string');
  });
});

describe('weightmix info', () => {
  test('--json says which binary was loaded and how it was built', async () => {
    ensureCliBuilt();
    const r = await runCli(['info', '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    const override = process.env.WEIGHTMIX_ADDON;
    expect(report.addon.kind).toEqual(override ? 'override' : fs.existsSync(path.join(ROOT, PREBUILD)) ? expect.stringMatching(/^(prebuilt|local)$/) : 'local');
    expect(fs.existsSync(report.addon.path)).toBe(true);
    expect(report.build).toEqual({
      system: expect.stringMatching(/^(cmake-js|node-gyp)$/),
      compiler: expect.stringMatching(/^(gcc|clang) \d/),
      date: expect.any(String),
      napiVersion: 8,
      ...(report.build.cudaVersion ? { cudaVersion: expect.stringMatching(/^\d+\.\d+/), cudaArchitectures: expect.stringMatching(/^\d+-(real|virtual)/) } : {}),
    });
    // nvcc's version is there exactly when real CUDA kernels are (the emulation build has none).
    if (report.build.cudaVersion) expect(report.cudaCompiled).toBe(true);
  });

  test('the text form has one line each for the binary and its build', async () => {
    ensureCliBuilt();
    const r = await runCli(['info']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^addon: (override|prebuilt|local) \/\S+weightmix\.node/m);
    expect(r.stdout).toMatch(/^build: (cmake-js|node-gyp), (gcc|clang) .*, Node-API 8, /m);
    expect(r.stdout).not.toContain('[object Object]');
  });
});

describe('package.json: what the published tarball promises', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

  test('no install-time scripts, and npm/pnpm are told not to run node-gyp for binding.gyp', () => {
    for (const hook of ['preinstall', 'install', 'postinstall']) expect(pkg.scripts[hook]).toBeUndefined();
    expect(pkg.gypfile).toBe(false);
  });

  test('the prebuilds and everything the source build needs are packed, and the build command is a bin', () => {
    expect(pkg.files).toEqual(expect.arrayContaining(['prebuilds', 'native', 'CMakeLists.txt', 'scripts/build-native.js']));
    const [, command] = BUILD_COMMAND.split(' ');
    expect(fs.existsSync(path.join(ROOT, pkg.bin[command]))).toBe(true);
    expect(pkg.binary.napi_versions).toEqual([8]);
  });
});
