/** `weightmix demo`: the main job end to end on a tiny Qwen3-shaped pair made on the spot. */
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { shardFiles } from './engine-summary';
import { abortOnSignals } from './signals';
import { abortError, environmentError } from '../errors';

export function register(program: Command): void {
  program
    .command('demo')
    .description('make a tiny Qwen3-shaped Instruct/Thinking pair in a temporary folder, interpolate it at λ = 0.8 and show the result')
    .option('--keep', 'keep the temporary folder')
    .action(async (opts: { keep?: boolean }) => {
      // Loaded on use, as every command's machinery (cli.ts): the fixtures and the engine cost every other command's start-up.
      const [{ makeCheckpointPair }, { interpolate }, { openCheckpoint }, { readTensorValues }] = await Promise.all([
        import('../fixtures/fixture'),
        import('../interpolation/interpolate'),
        import('../model/checkpoint'),
        import('../format/tensor-data'),
      ]);
      // Ctrl-C stops the demo as any command (one line, exit 130), and its temporary folder is removed.
      const signals = abortOnSignals();
      const { signal } = signals;
      // An unusable temporary folder ($TMPDIR missing, a file, read-only) is the user's environment: one line.
      const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'weightmix-demo-')).catch((e: unknown) => {
        throw environmentError(e, `cannot make the demo's folder in ${os.tmpdir()} (set TMPDIR to a writable folder)`);
      });
      try {
        const pair = await makeCheckpointPair({ dir, shape: 'tiny', shards: [2, 1], seed: 2510, signal });
        const out = path.join(dir, 'merged-0.8');
        process.stdout.write(`made a tiny Qwen3-shaped pair in ${dir}: ${pair.tensors} tensors, ${pair.bytesPerModel} bytes per model\n`);
        const summary = await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.8, output: out, signal });
        process.stdout.write(
          `interpolated at λ = 0.8: ${summary.selectedTensors}/${summary.tensors} tensors, ${shardFiles(summary.files)}, ${summary.bytes} bytes in ${(summary.seconds * 1000).toFixed(1)} ms\n`,
        );
        // Show one tensor's first values: the merged weights sit 80% of the way from Instruct to Thinking.
        const name = 'model.layers.0.mlp.down_proj.weight';
        const rows = await Promise.all(
          [pair.instruct, pair.thinking, out].map(async (d) =>
            (await readTensorValues((await openCheckpoint(d)).tensors.get(name)!, 0, 4)).map((x) => x.toFixed(6).padStart(10)),
          ),
        );
        process.stdout.write(`${name}[0:4]\n  instruct  ${rows[0].join(' ')}\n  thinking  ${rows[1].join(' ')}\n  λ = 0.8   ${rows[2].join(' ')}\n`);
        process.stdout.write(`output files: ${(await fs.promises.readdir(out)).sort().join(', ')}\n`);
        // A signal after the merge still stops the demo (its folder goes): the run was interrupted, not finished.
        if (signal.aborted) throw abortError('the demo was stopped', signal);
      } finally {
        if (!opts.keep || signal.aborted) await fs.promises.rm(dir, { recursive: true, force: true });
        else process.stdout.write(`kept ${dir}\n`);
        signals.dispose();
      }
    });
}
