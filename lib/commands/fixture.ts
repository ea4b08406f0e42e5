/** `weightmix fixture`: a synthetic Instruct/Thinking pair with real Qwen3 tensor names, for trying commands and benchmarks. */
import { Command, Option } from 'commander';
import { usageError } from '../errors';
import { decimalNumber } from '../options';
import { CLI_FLAGS } from '../api/validate-options';
import { DEFAULT_DELTA, FIXTURE_DTYPES, FIXTURE_NOISES, type FixtureDtype, type FixtureNoise } from '../fixtures/fixture-defaults';
import { FIXTURE_SHAPES, type FixtureShapeName } from '../fixtures/model-shapes';
import { abortOnSignals } from './signals';

function wholeNumber(option: string, least = 0, range = least > 0 ? `of ${least} or more` : '') {
  return (text: string): number => {
    if (!/^\d+$/.test(text.trim()) || Number(text) < least) throw usageError(`${option} "${text}": expected a whole number${range ? ` ${range}` : ''}`);
    return Number(text);
  };
}

function shardCounts(text: string): [number, number] {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length > 2 || !parts.every((p) => /^\d+$/.test(p))) {
    throw usageError(`--shards "${text}": expected one count for both models or two, instruct,thinking (e.g. 2,3)`);
  }
  const counts = parts.map(Number);
  return [counts[0], counts[counts.length - 1]];
}

function relativeDistance(text: string): number {
  const value = decimalNumber(text);
  if (!Number.isFinite(value)) throw usageError(`--delta "${text}": expected a number such as 0.027`);
  return value;
}

interface FixtureCliOptions {
  shape: FixtureShapeName;
  output?: string;
  out?: string;
  scale?: number;
  layers?: number;
  shards?: [number, number];
  seed?: number;
  dtype: FixtureDtype;
  delta: number;
  noise: FixtureNoise;
  extraTokens?: number;
  force?: boolean;
  quiet?: boolean;
}

/** The library's option names as this command's flags (`dir` is --output, `overwrite` --force). */
const FIXTURE_FLAGS = (key: string) => (key === 'dir' ? '--output' : key === 'overwrite' ? '--force' : CLI_FLAGS(key));

/** The folder of -o/--output, or of --out (the flag's first name, still taken): one of them, and one folder. */
function outputFolder(opts: FixtureCliOptions): string {
  if (opts.output !== undefined && opts.out !== undefined && opts.output !== opts.out) {
    throw usageError(`-o/--output "${opts.output}" and --out "${opts.out}" name different folders; give one`);
  }
  const dir = opts.output ?? opts.out;
  if (dir === undefined) throw usageError("required option '-o, --output <dir>' not specified");
  return dir;
}

const formatBytes = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`);

export function register(program: Command): void {
  program
    .command('fixture')
    .description('write a synthetic Qwen3-shaped Instruct/Thinking pair (real tensor names and shards, random weights) to OUT/instruct and OUT/thinking')
    .addOption(new Option('--shape <name>', 'architecture to imitate').choices(FIXTURE_SHAPES).makeOptionMandatory())
    // -o/--output as every other command's; --out, its first name, is still taken (not listed).
    .option('-o, --output <dir>', 'parent folder of instruct/ and thinking/ (required)')
    .addOption(new Option('--out <dir>').hideHelp())
    .option('--scale <n>', 'width divisor (1 = real size: 2 × 8 GB for qwen3-4b)', wholeNumber('--scale', 1))
    .option('--layers <n>', 'decoder layer count instead of the real one', wholeNumber('--layers', 1))
    .option('--shards <n[,m]>', 'shard counts, instruct,thinking (default: as released)', shardCounts)
    .option('--seed <n>', 'uint32 seed; the same seed gives the same bytes', wholeNumber('--seed', 0, 'from 0 to 4294967295'))
    .addOption(new Option('--dtype <dtype>', 'element type').choices(FIXTURE_DTYPES).default('BF16'))
    .option('--delta <x>', 'relative distance of Thinking from Instruct', relativeDistance, DEFAULT_DELTA)
    .addOption(
      new Option(
        '--noise <kind>',
        'how Thinking departs from Instruct: ulps (a few units in the last place, signs kept) or additive (one Gaussian noise added and rounded: small weights change sign, as in a real fine-tune)',
      )
        .choices(FIXTURE_NOISES)
        .default('ulps'),
    )
    .option(
      '--extra-tokens <n>',
      "vocabularies that differ: both fill every id below the special tokens, Thinking's last n its own (for tokenizer_source: union)",
      wholeNumber('--extra-tokens'),
    )
    .option('--force', 'replace existing instruct/ and thinking/ model folders once the new pair is complete')
    .option('-q, --quiet', 'no progress line')
    .action(async (opts: FixtureCliOptions) => {
      // Loaded on use (cli.ts): the writer costs every other command's start-up.
      const dir = outputFolder(opts);
      const { makeCheckpointPairAs } = await import('../fixtures/fixture');
      const signals = abortOnSignals();
      const started = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
      const interactive = process.stderr.isTTY && !opts.quiet;
      try {
        const pair = await makeCheckpointPairAs(
          {
            dir,
            shape: opts.shape,
            scale: opts.scale,
            layers: opts.layers,
            shards: opts.shards,
            seed: opts.seed,
            dtype: opts.dtype,
            delta: opts.delta,
            noise: opts.noise,
            extraTokens: opts.extraTokens,
            overwrite: opts.force,
            signal: signals.signal,
            onProgress: opts.quiet
              ? undefined
              : ({ bytesWritten, totalBytes }) => {
                  const line = `${formatBytes(bytesWritten)} / ${formatBytes(totalBytes)} (${((100 * bytesWritten) / totalBytes).toFixed(0)}%), ${(bytesWritten / 1e6 / seconds()).toFixed(0)} MB/s`;
                  process.stderr.write(interactive ? `\r${line}   ` : `${line}\n`);
                },
          },
          FIXTURE_FLAGS,
        );
        if (interactive) process.stderr.write('\n');
        const elapsed = seconds();
        process.stdout.write(
          `${pair.instruct}\n${pair.thinking}\n` +
            `${pair.tensors} tensors, ${formatBytes(pair.bytesPerModel)} per model in ${elapsed.toFixed(2)} s ` +
            `(${(pair.bytesPerModel / 1e6 / elapsed).toFixed(0)} MB/s per model)\n`,
        );
      } finally {
        signals.dispose();
      }
    });
}
