/** `weightmix info`: what this build can do on this machine, and which binary it is. */
import { Command } from 'commander';
import type { NativeBuildInfo } from '../engine/native';
import { VERSION } from '../version';

function describeBuild(b: NativeBuildInfo): string {
  const cuda = b.cudaVersion ? `, CUDA ${b.cudaVersion} (${b.cudaArchitectures})` : '';
  return `${b.system}, ${b.compiler}, Node-API ${b.napiVersion}, ${b.date}${cuda}`;
}

export function register(program: Command): void {
  program
    .command('info')
    .description(
      'print the build: version, which addon binary (prebuilt, local, or the WEIGHTMIX_ADDON override) and how it was built, SIMD path, CUDA support, threads',
    )
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      // Loaded on use (cli.ts), as every command's machinery.
      const { loadedAddon, loadNative } = await import('../engine/native');
      const native = loadNative().info();
      const report = { version: VERSION, node: process.version, addon: loadedAddon(), ...native };
      if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
      else {
        for (const [k, v] of Object.entries(report)) {
          if (k === 'addon') {
            const a = report.addon;
            process.stdout.write(`addon: ${a.kind} ${a.path}${a.prebuildSkipped ? ` (prebuild not used: ${a.prebuildSkipped})` : ''}\n`);
          } else if (k === 'build') process.stdout.write(`build: ${describeBuild(native.build)}\n`);
          else if (k !== 'cudaDevices') process.stdout.write(`${k}: ${v}\n`);
        }
        for (const d of native.cudaDevices ?? [])
          process.stdout.write(`cudaDevice: ${d.name}, ${(d.memoryBytes / 2 ** 30).toFixed(1)} GiB, compute capability ${d.computeCapability}\n`);
      }
    });
}
