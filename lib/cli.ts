/** The `weightmix` command line: one subcommand per file under commands/, one error line per failure. */
import { Command, CommanderError } from 'commander';
import { isWeightmixError } from './errors';
import { VERSION } from './version';
import * as demo from './commands/demo';
import * as info from './commands/info';
import * as interpolateCmd from './commands/interpolate';

type Registrar = { register(program: Command): void };

/** Subcommands contributed by other modules are loaded when present, so the CLI grows one file at a time. */
const COMMANDS: Registrar[] = [interpolateCmd, demo, info];
const OPTIONAL_COMMANDS = ['sweep', 'diff', 'score', 'stages', 'merge', 'verify'];

export function buildProgram(): Command {
  const program = new Command('weightmix')
    .version(VERSION)
    .description('Merge LLM checkpoints (model interpolation of Instruct and Thinking models, mergekit recipes) at storage speed')
    .option('--debug', 'print stack traces of errors')
    .showHelpAfterError('(run weightmix --help for usage)')
    .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'weightmix: error: ')) });
  program.exitOverride();
  for (const c of COMMANDS) c.register(program);
  for (const name of OPTIONAL_COMMANDS) {
    let mod: Registrar | undefined;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require(`./commands/${name}`) as Registrar;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
    }
    mod?.register(program);
  }
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Runs the CLI; resolves to the exit status (0 ok, 1 error, 2 usage, 130/143 interrupted). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? 0 : 2;
    }
    const interrupted = typeof process.exitCode === 'number' && (process.exitCode === 130 || process.exitCode === 143);
    if (isWeightmixError(e)) {
      if (!(interrupted && e.code === 'Aborted')) process.stderr.write(`weightmix: error: ${e.message}\n`);
      if (program.opts().debug) process.stderr.write(`${e.stack}\n`);
      return interrupted ? (process.exitCode as number) : e.exitCode;
    }
    // Anything else is a bug: show the stack.
    process.stderr.write(`weightmix: internal error (please report): ${(e as Error)?.stack ?? String(e)}\n`);
    return 70;
  }
}
