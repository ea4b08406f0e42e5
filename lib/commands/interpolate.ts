/** `weightmix interpolate`: one merged model at one λ. */
import { Command } from 'commander';
import { CLI_FLAGS } from '../api/validate-options';
import { addInterpolationOptions, describeInterpolation, interpolationOptionsFrom } from './interpolation-options';
import { createReporter } from './reporter';

export function register(program: Command): void {
  const cmd = program
    .command('interpolate')
    .description('merge Θ = λ·Θ_Thinking + (1−λ)·Θ_Instruct into a new model folder')
    .requiredOption(
      '--lambda <x>',
      'interpolation coefficient λ, a decimal number (0 = Instruct, 1 = Thinking; the paper recommends 0.8; values outside [0, 1] extrapolate)',
    )
    .requiredOption('-o, --output <dir>', 'output model folder (created atomically)');
  addInterpolationOptions(cmd);
  cmd.action(async (opts: Record<string, unknown>) => {
    // Loaded on use (cli.ts): the engine costs every other command's start-up.
    const { interpolateAs } = await import('../interpolation/interpolate');
    const reporter = createReporter(opts, 'interpolate', describeInterpolation);
    const summary = await reporter.run((hooks) =>
      interpolateAs({ ...interpolationOptionsFrom(opts), ...hooks, lambda: opts.lambda as number, output: opts.output as string }, CLI_FLAGS),
    );
    reporter.done(summary);
  });
}
