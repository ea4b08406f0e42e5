/** `weightmix info`: what this build can do on this machine. */
import { Command } from 'commander';
import { loadNative } from '../engine/native';
import { VERSION } from '../version';

export function register(program: Command): void {
  program
    .command('info')
    .description('print the build: version, SIMD path, CUDA support, threads')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) => {
      const native = loadNative().info();
      const report = { version: VERSION, node: process.version, ...native };
      if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
      else {
        for (const [k, v] of Object.entries(report)) {
          if (k !== 'cudaDevices') process.stdout.write(`${k}: ${v}\n`);
        }
        for (const d of native.cudaDevices ?? []) process.stdout.write(`cudaDevice: ${d.name}, ${(d.memoryBytes / 2 ** 30).toFixed(1)} GiB, compute capability ${d.computeCapability}\n`);
      }
    });
}
