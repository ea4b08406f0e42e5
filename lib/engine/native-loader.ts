/**
 * Which addon binary to load: WEIGHTMIX_ADDON when set, else the published prebuild for this platform
 * (prebuilds/<platform>-<arch>/weightmix.node), else a local build (build/Release), else one error that
 * names the platform and the command that builds from source.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';

export type AddonKind = 'override' | 'prebuilt' | 'local';

/** What `weightmix info` reports about the binary: where it came from and why an earlier choice was passed over. */
export interface LoadedAddon {
  kind: AddonKind;
  path: string;
  /** Why the prebuild was not used, when a local build was. */
  prebuildSkipped?: string;
}

export interface AddonPlatform {
  platform: string;
  arch: string;
  /** The C library's version when it is glibc; undefined for musl. Asked only when a load fails (it costs ~50 ms). */
  glibc: () => string | undefined;
}

/** The command that builds the addon from source inside an installed package (bin/weightmix-build.js). */
export const BUILD_COMMAND = 'npx weightmix-build';

export function currentPlatform(): AddonPlatform {
  return {
    platform: process.platform,
    arch: process.arch,
    glibc: () => (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime,
  };
}

/** Numeric comparison of dotted versions ("2.4" < "2.34"). */
export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

function mtimeMs(file: string): number {
  return fs.statSync(file).mtimeMs;
}

/** The prebuild's manifest (scripts/prebuild.sh writes it): the glibc it needs. */
function prebuildGlibcFloor(dir: string): string | undefined {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'weightmix.json'), 'utf8')) as { glibc?: string }).glibc;
  } catch {
    return undefined;
  }
}

/** Why a prebuild that exists did not load: the glibc floor when this system is below it, else the loader's first line. */
function prebuildFailure(dir: string, platform: AddonPlatform, error: unknown): string {
  const floor = prebuildGlibcFloor(dir);
  const glibc = platform.glibc();
  if (floor && glibc === undefined) return `the prebuild needs glibc ${floor} or newer and this system's C library is not glibc`;
  if (floor && glibc && compareVersions(glibc, floor) < 0) return `the prebuild needs glibc ${floor} or newer and this system has ${glibc}`;
  return `the prebuild did not load: ${String((error as Error).message ?? error).split('\n')[0]}`;
}

/**
 * Loads the addon from the package at `root`. A local build newer than the prebuild wins over it: someone
 * rebuilt on purpose (`weightmix-build` after installing, `npm run build:native` in a checkout).
 */
export function loadAddon<T>(root: string, platform: AddonPlatform, env: NodeJS.ProcessEnv, load: (file: string) => T): { addon: T; loaded: LoadedAddon } {
  if (env.WEIGHTMIX_ADDON) {
    const file = path.resolve(env.WEIGHTMIX_ADDON);
    if (!fs.existsSync(file)) throw new WeightmixError('NativeMissing', `WEIGHTMIX_ADDON names no file: ${file}`);
    // require() runs any other file as JavaScript: its errors would say nothing of an addon.
    if (path.extname(file) !== '.node') throw new WeightmixError('NativeMissing', `WEIGHTMIX_ADDON names ${file}, which is not a Node addon (a .node file)`);
    try {
      return { addon: load(file), loaded: { kind: 'override', path: file } };
    } catch (e) {
      throw new WeightmixError('NativeMissing', `WEIGHTMIX_ADDON names ${file}, which did not load: ${String((e as Error).message).split('\n')[0]}`);
    }
  }
  const name = `${platform.platform}-${platform.arch}`;
  const prebuildDir = path.join(root, 'prebuilds', name);
  const prebuild = path.join(prebuildDir, 'weightmix.node');
  const local = path.join(root, 'build', 'Release', 'weightmix.node');
  const hasPrebuild = fs.existsSync(prebuild);
  const hasLocal = fs.existsSync(local);

  let prebuildSkipped: string | undefined = hasPrebuild ? undefined : `no prebuild for ${name}`;
  if (hasPrebuild && !(hasLocal && mtimeMs(local) > mtimeMs(prebuild))) {
    try {
      return { addon: load(prebuild), loaded: { kind: 'prebuilt', path: prebuild } };
    } catch (e) {
      prebuildSkipped = prebuildFailure(prebuildDir, platform, e);
    }
  } else if (hasPrebuild) {
    prebuildSkipped = 'a local build is newer';
  }
  if (hasLocal) {
    let addon: T;
    try {
      addon = load(local);
    } catch (e) {
      throw new WeightmixError(
        'NativeMissing',
        `the local build ${local} did not load (${String((e as Error).message).split('\n')[0]}); rebuild it with \`${BUILD_COMMAND}\``,
      );
    }
    return { addon, loaded: { kind: 'local', path: local, ...(prebuildSkipped ? { prebuildSkipped } : {}) } };
  }
  const howTo =
    platform.platform === 'linux'
      ? `build it from source with \`${BUILD_COMMAND}\` (needs CMake or node-gyp and a C++17 compiler; nvcc adds the CUDA kernels)`
      : 'the engine uses Linux I/O calls: run weightmix on Linux (WSL2 on Windows, a Linux container on macOS)';
  throw new WeightmixError('NativeMissing', `no native addon for ${name}: ${prebuildSkipped} and no local build (${local}); ${howTo}`);
}
