/**
 * Write a synthetic Instruct/Thinking checkpoint pair:
 *   npx tsx scripts/make-fixture.ts --shape qwen3-4b --scale 1 --out DIR [--shards 2,3] [--seed N] [--dtype BF16]
 */
import { Command, CommanderError, Option } from 'commander';
import { isWeightmixError, usageError } from '../lib/errors';
import { DEFAULT_DELTA, FIXTURE_DTYPES, makeCheckpointPair, type FixtureDtype } from '../lib/fixture';
import { FIXTURE_SHAPES, type FixtureShapeName } from '../lib/model-shapes';

function wholeNumber(option: string) {
  return (text: string): number => {
    if (!/^\d+$/.test(text.trim())) throw usageError(`${option} "${text}": expected a whole number`);
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
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw usageError(`--delta "${text}": expected a number such as 0.027`);
  return value;
}

interface CliOptions {
  shape: FixtureShapeName;
  out: string;
  scale?: number;
  layers?: number;
  shards?: [number, number];
  seed?: number;
  dtype: FixtureDtype;
  delta: number;
  force?: boolean;
  quiet?: boolean;
}

const formatBytes = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`);

async function run(argv: string[]): Promise<number> {
  const program = new Command('make-fixture')
    .description('write a synthetic Qwen3-shaped Instruct/Thinking checkpoint pair to <out>/instruct and <out>/thinking')
    .addOption(new Option('--shape <name>', 'architecture to imitate').choices(FIXTURE_SHAPES).makeOptionMandatory())
    .requiredOption('--out <dir>', 'parent folder of instruct/ and thinking/')
    .option('--scale <n>', 'width divisor (1 = real size)', wholeNumber('--scale'))
    .option('--layers <n>', 'decoder layer count instead of the real one', wholeNumber('--layers'))
    .option('--shards <n[,m]>', 'shard counts, instruct,thinking (default: as released)', shardCounts)
    .option('--seed <n>', 'uint32 seed; the same seed gives the same bytes', wholeNumber('--seed'))
    .addOption(new Option('--dtype <dtype>', 'element type').choices(FIXTURE_DTYPES).default('BF16'))
    .option('--delta <x>', 'relative distance of Thinking from Instruct', relativeDistance, DEFAULT_DELTA)
    .option('--force', 'replace existing instruct/ and thinking/ folders')
    .option('--quiet', 'no progress line')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'make-fixture: error: ')) });

  try {
    program.parse(argv);
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  const opts = program.opts<CliOptions>();
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  const started = process.hrtime.bigint();
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  const interactive = process.stderr.isTTY && !opts.quiet;
  const pair = await makeCheckpointPair({
    dir: opts.out,
    shape: opts.shape,
    scale: opts.scale,
    layers: opts.layers,
    shards: opts.shards,
    seed: opts.seed,
    dtype: opts.dtype,
    delta: opts.delta,
    overwrite: opts.force,
    signal: controller.signal,
    onProgress: opts.quiet
      ? undefined
      : ({ bytesWritten, totalBytes }) => {
          const line = `${formatBytes(bytesWritten)} / ${formatBytes(totalBytes)} (${((100 * bytesWritten) / totalBytes).toFixed(0)}%), ${(bytesWritten / 1e6 / seconds()).toFixed(0)} MB/s`;
          process.stderr.write(interactive ? `\r${line}   ` : `${line}\n`);
        },
  });
  process.off('SIGINT', onSignal);
  if (interactive) process.stderr.write('\n');
  const elapsed = seconds();
  process.stdout.write(
    `${pair.instruct}\n${pair.thinking}\n` +
      `${pair.tensors} tensors, ${formatBytes(pair.bytesPerModel)} per model in ${elapsed.toFixed(2)} s ` +
      `(${(pair.bytesPerModel / 1e6 / elapsed).toFixed(0)} MB/s per model)\n`,
  );
  return 0;
}

run(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (isWeightmixError(e)) {
      process.stderr.write(`make-fixture: error: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`make-fixture: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 70;
    }
  },
);
