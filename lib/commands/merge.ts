/** `weightmix merge RECIPE.yml -o OUT`: a mergekit recipe run by weightmix's engine. */
import { Command } from 'commander';
import type { RecipeMergeSummary } from '../recipes/merge-recipe';
import { parseThreads } from '../options';
import { deviceOption, shardFiles, withDevice } from './engine-summary';
import { createReporter } from './reporter';

export function register(program: Command): void {
  program
    .command('merge')
    .description('merge models by a mergekit YAML recipe (linear, slerp, task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, model_stock, passthrough)')
    .argument('<recipe>', 'mergekit configuration file (YAML); models are local folders (relative to the working directory) or hub ids ORG/NAME[@REVISION]; ${NAME} in a model path is the environment variable NAME (a weightmix extension)')
    .requiredOption('-o, --output <dir>', 'output model folder (created atomically)')
    .option('--threads <n>', 'worker threads (default: number of cores)')
    .addOption(deviceOption())
    .option('--no-direct', 'write through the page cache instead of O_DIRECT')
    .option('--force', 'replace an existing output once the new one is complete')
    .option('--json', 'print progress and the summary as JSON lines')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (file: string, opts: Record<string, unknown>) => {
      // Loaded on use: the YAML parser and the recipe machinery cost every other command's start-up.
      const { readRecipeFile } = await import('../recipes/recipe');
      const { merge } = await import('../recipes/merge-recipe');
      const recipe = await readRecipeFile(file);
      const reporter = createReporter(
        opts,
        'merge',
        (summary: RecipeMergeSummary) =>
          `wrote ${summary.output}: ${summary.method}, ${summary.tensors} tensors in ${summary.layers} layers, ${shardFiles(summary.files)}, ` +
          `${(summary.bytes / 1e9).toFixed(3)} GB in ${summary.seconds.toFixed(2)} s (${summary.gbPerSecond.toFixed(2)} GB/s)${withDevice(summary)}`,
      );
      const summary = await reporter.run((hooks) =>
        merge(recipe, {
          output: opts.output as string,
          threads: opts.threads === undefined ? undefined : parseThreads(opts.threads),
          device: opts.device as 'cpu' | 'cuda' | 'auto' | undefined,
          direct: opts.direct as boolean,
          force: Boolean(opts.force),
          ...hooks,
        }),
      );
      reporter.done(summary);
    });
}
