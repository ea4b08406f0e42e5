/** `weightmix sweep`: many λ in one pass over the inputs. */
import { Command } from 'commander';
import { CLI_FLAGS } from '../api/validate-options';
import { addInterpolationOptions, describeInterpolation, interpolationOptionsFrom } from './interpolation-options';
import { createReporter } from './reporter';

export function register(program: Command): void {
  const cmd = program
    .command('sweep')
    .description('write one merged model per λ (DIR/lambda-0.80/, …), reading each input byte once')
    .requiredOption(
      '--lambdas <list>',
      'start:stop:step (inclusive) or a comma list of decimal numbers, e.g. 0:1:0.1 or 0.2,0.4,0.8; values outside [0, 1] extrapolate',
    )
    .requiredOption('-o, --output <dir>', 'folder that receives one model folder per λ');
  addInterpolationOptions(cmd);
  cmd.action(async (opts: Record<string, unknown>) => {
    // Loaded on use (cli.ts): the engine costs every other command's start-up.
    const { sweepAs } = await import('../interpolation/sweep');
    const reporter = createReporter(opts, 'sweep', describeInterpolation);
    const summary = await reporter.run((hooks) =>
      sweepAs({ ...interpolationOptionsFrom(opts), ...hooks, lambdas: opts.lambdas as string, output: opts.output as string }, CLI_FLAGS),
    );
    reporter.done(summary);
  });
}
