/** The flags `interpolate` and `sweep` share, read back into the library's options, and their summary line. */
import { Command, Option } from 'commander';
import type { InterpolationCommon, InterpolationSummary } from '../interpolation/interpolate';
import { FLOAT_DTYPES } from '../format/dtypes';
import { parseThreads, type FloatDtypeName } from '../options';
import { MODULE_CLASSES } from '../model/tensor-names';
import { deviceOption, shardFiles, withDevice } from './engine-summary';

/** The flags `interpolate` and `sweep` share (sweep adds its λ list, interpolate its λ and output). */
export function addInterpolationOptions(cmd: Command): void {
  cmd
    .requiredOption('--instruct <model>', 'Instruct model (λ = 0): a folder, or a hub id ORG/NAME[@REVISION] from the Hugging Face cache or downloaded into it')
    .requiredOption('--thinking <model>', 'Thinking model (λ = 1): a folder or a hub id')
    .option('--layers <ranges>', "only decoder layers in these inclusive ranges, e.g. 12-35 (the paper's last two thirds of Qwen3-4B)")
    .option('--modules <list>', `only these module classes: ${MODULE_CLASSES.join(',')}`)
    .option('--skip-modules <list>', 'all module classes except these (they keep the Instruct weights)')
    .addOption(
      new Option('--numerics <mode>', "exact: torch.lerp in f32, one rounding; mi: the paper's bf16 script, bit for bit")
        .choices(['exact', 'mi'])
        .default('exact'),
    )
    .addOption(
      new Option('--dtype <dtype>', "output dtype of float tensors (default: the Instruct tensor's)").choices([
        ...FLOAT_DTYPES,
        ...FLOAT_DTYPES.map((d) => d.toLowerCase()),
      ]),
    )
    .addOption(
      new Option('--files-from <model>', "which model's config, tokenizer and chat template to copy").choices(['instruct', 'thinking']).default('thinking'),
    )
    .option('--part <i/n>', 'write only part I of N of the output shards (for Slurm / Kubernetes job arrays)')
    .option('--threads <n>', 'worker threads (default: number of cores)')
    .addOption(deviceOption())
    .option('--no-direct', 'write through the page cache instead of O_DIRECT')
    .option('--force', 'replace an existing model folder once the new one is complete (never a folder of other files)')
    .option('--json', 'print progress and the summary as JSON lines')
    .option('-q, --quiet', 'print nothing but errors');
}

export function interpolationOptionsFrom(opts: Record<string, unknown>): Omit<InterpolationCommon, 'onProgress' | 'signal' | 'onNotice'> {
  return {
    instruct: opts.instruct as string,
    thinking: opts.thinking as string,
    layers: opts.layers as string | undefined,
    modules: opts.modules as string | undefined,
    skipModules: opts.skipModules as string | undefined,
    numerics: opts.numerics as 'exact' | 'mi',
    dtype: opts.dtype as FloatDtypeName | undefined,
    filesFrom: opts.filesFrom as 'instruct' | 'thinking',
    part: opts.part as string | undefined,
    threads: opts.threads === undefined ? undefined : parseThreads(opts.threads),
    device: opts.device as 'cpu' | 'cuda' | 'auto' | undefined,
    direct: opts.direct as boolean,
    force: Boolean(opts.force),
  };
}

/** The one-line text summary of an interpolation or a sweep. */
export function describeInterpolation(summary: InterpolationSummary): string {
  const what = summary.outputs.length === 1 ? summary.outputs[0] : `${summary.outputs.length} models`;
  return (
    `wrote ${what}: ${shardFiles(summary.files, summary.part)}, ${(summary.bytes / 1e9).toFixed(3)} GB in ${summary.seconds.toFixed(2)} s ` +
    `(${summary.gbPerSecond.toFixed(2)} GB/s); λ = ${summary.lambdas.join(', ')}; ${summary.selectedTensors}/${summary.tensors} tensors interpolated ` +
    `(${summary.selection}); numerics ${summary.numerics}` +
    (summary.part ? `; part ${summary.part} (its shards, and the shared index and files)` : '') +
    withDevice(summary)
  );
}
