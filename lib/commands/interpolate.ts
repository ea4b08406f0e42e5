/** `weightmix interpolate`: one merged model at one λ. */
import { Command } from 'commander';
import { interpolate } from '../interpolate';
import { addMergeOptions, mergeOptionsFrom, reporterFor } from './merge-options';

export function register(program: Command): void {
  const cmd = program
    .command('interpolate')
    .description('merge Θ = λ·Θ_Thinking + (1−λ)·Θ_Instruct into a new model folder')
    .requiredOption('--lambda <x>', 'interpolation coefficient λ (0 = Instruct, 1 = Thinking; the paper recommends 0.8)')
    .requiredOption('-o, --output <dir>', 'output model folder (created atomically)');
  addMergeOptions(cmd);
  cmd.action(async (opts: Record<string, unknown>) => {
    const reporter = reporterFor(opts);
    const summary = await reporter.run((common) => interpolate({ ...common, lambda: opts.lambda as number, output: opts.output as string }), mergeOptionsFrom(opts));
    reporter.done(summary);
  });
}
