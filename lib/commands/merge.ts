/** `weightmix merge RECIPE.yml… -o OUT`: mergekit recipes run by weightmix's engine, many in one pass over their models. */
import * as path from 'node:path';
import { Command } from 'commander';
import type { RecipeMergeSummary } from '../recipes/merge-recipe';
import type { BatchMergeSummary } from '../recipes/batch';
import { parseThreads } from '../options';
import { deviceOption, shardFiles, withDevice } from './engine-summary';
import { createReporter } from './reporter';

/** A batch output's folder name: the recipe file's name without .yml / .yaml / .json (a JSON recipe is YAML too). */
export function recipeOutputName(file: string): string {
  return path.basename(file).replace(/\.(ya?ml|json)$/i, '');
}

export function register(program: Command): void {
  program
    .command('merge')
    .description(
      'merge models by mergekit YAML recipes (linear, slerp, task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, model_stock, passthrough, karcher, multislerp, nuslerp, nearswap, ram, ramplus_tl, della, della_linear, sce, arcee_fusion; docs/mergekit-parity.md); ' +
        'several recipes write OUT/NAME each (NAME: the file name without .yml, .yaml or .json), reading the models they share once',
    )
    .argument(
      '<recipes...>',
      'mergekit configuration files (YAML); models are local folders (relative to the working directory) or hub ids ORG/NAME[@REVISION], MODEL+ADAPTER applying a PEFT LoRA adapter (a folder or hub id) first; ${NAME} in a model path is the environment variable NAME (a weightmix extension)',
    )
    .requiredOption(
      '-o, --output <dir>',
      'output model folder (created atomically); with several recipes, the folder that receives one model folder per recipe',
    )
    .option(
      '--part <i/n>',
      'merge only part I of N (for Slurm / Kubernetes job arrays): of one recipe, its output shards; of several recipes, the recipes (whole models, balanced by bytes; every machine lists the same recipe files in the same order)',
    )
    .option('--threads <n>', 'worker threads (default: number of cores)')
    .addOption(deviceOption())
    .option('--no-direct', 'write through the page cache instead of O_DIRECT')
    .option('--force', 'replace existing model folders once the new ones are complete (never folders of other files)')
    .option('--allow-crimes', "merge models whose configs name different architectures (refused without it, as mergekit's --allow-crimes)")
    .option('--json', 'print progress and the summary as JSON lines')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (files: string[], opts: Record<string, unknown>) => {
      // Loaded on use: the YAML parser and the recipe machinery cost every other command's start-up.
      const { readRecipeFile, readRecipeFileNamed } = await import('../recipes/recipe');
      const engine = {
        threads: opts.threads === undefined ? undefined : parseThreads(opts.threads),
        device: opts.device as 'cpu' | 'cuda' | 'auto' | undefined,
        direct: opts.direct as boolean,
        force: Boolean(opts.force),
        allowCrimes: Boolean(opts.allowCrimes),
      };
      if (files.length === 1) {
        const { mergeAs } = await import('../recipes/merge-recipe');
        const { CLI_FLAGS } = await import('../api/validate-options');
        const recipe = await readRecipeFile(files[0]);
        const reporter = createReporter(
          opts,
          'merge',
          (summary: RecipeMergeSummary) =>
            `wrote ${summary.output}: ${summary.method}, ${summary.tensors} tensors in ${summary.layers} layers, ${shardFiles(summary.files, summary.part)}, ` +
            `${(summary.bytes / 1e9).toFixed(3)} GB in ${summary.seconds.toFixed(2)} s (${summary.gbPerSecond.toFixed(2)} GB/s)` +
            `${summary.part ? `; part ${summary.part}` : ''}${withDevice(summary)}`,
        );
        const summary = await reporter.run((hooks) =>
          mergeAs(recipe, { output: opts.output as string, part: opts.part as string | undefined, ...engine, ...hooks }, CLI_FLAGS),
        );
        reporter.done(summary);
        return;
      }
      const { mergeBatchAs } = await import('../recipes/batch');
      const { CLI_FLAGS } = await import('../api/validate-options');
      const names = files.map(recipeOutputName);
      const twice = names.find((n, i) => names.indexOf(n) !== i);
      if (twice !== undefined) {
        const { usageError } = await import('../errors');
        throw usageError(
          `two recipe files are named ${twice} (${files.filter((f) => recipeOutputName(f) === twice).join(', ')}): both would write ${path.join(opts.output as string, twice)}`,
        );
      }
      const recipes: Awaited<ReturnType<typeof readRecipeFile>>[] = [];
      for (const file of files) recipes.push(await readRecipeFileNamed(file, {}, 'merge'));
      const reporter = createReporter(opts, 'merge', describeBatch);
      const summary = await reporter.run((hooks) =>
        mergeBatchAs(
          recipes.map((recipe, i) => ({ name: names[i], recipe })),
          { output: opts.output as string, part: opts.part as string | undefined, ...engine, ...hooks },
          CLI_FLAGS,
        ),
      );
      reporter.done(summary);
    });
}

function describeBatch(summary: BatchMergeSummary): string {
  const each = summary.outputs.map((o) => `${o.name} (${o.method})`).join(', ');
  return (
    `wrote ${summary.outputs.length} models in ${path.dirname(summary.outputs[0].output)}: ${each}; ${shardFiles(summary.files, summary.part)}, ` +
    `${(summary.bytes / 1e9).toFixed(3)} GB in ${summary.seconds.toFixed(2)} s (${summary.gbPerSecond.toFixed(2)} GB/s), ` +
    `${summary.groups} write pass${summary.groups === 1 ? '' : 'es'}${summary.part ? `; part ${summary.part}` : ''}${withDevice(summary)}`
  );
}
