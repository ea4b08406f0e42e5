/**
 * The `weightmix` command line: one subcommand per file under commands/, one error line per failure. Each command loads its
 * machinery (engine, analysis, fixtures, progress bars) in its action, so that every start-up pays only for the flags' definitions.
 */
import { Command, CommanderError, Help } from 'commander';
import { isWeightmixError } from './errors';
import { VERSION } from './version';
import { interruptedStatus } from './commands/signals';
import * as demo from './commands/demo';
import * as diff from './commands/diff';
import * as fixture from './commands/fixture';
import * as info from './commands/info';
import * as interpolateCmd from './commands/interpolate';
import * as merge from './commands/merge';
import * as score from './commands/score';
import * as stages from './commands/stages';
import * as sweep from './commands/sweep';
import * as verify from './commands/verify';

type Registrar = { register(program: Command): void };

/** Every subcommand, in the order `--help` lists them. */
const COMMANDS: Registrar[] = [interpolateCmd, demo, info, sweep, diff, score, stages, merge, verify, fixture];

const DEFAULT_HELP = new Help();

/** The commands that write merged models: their main thread's fresh heap is tens of MB (engine/native.ts's preferHugePageHeap). */
const MERGING_COMMANDS = new Set(['interpolate', 'sweep', 'merge', 'demo']);

export function buildProgram(): Command {
  const program = new Command('weightmix')
    .version(VERSION)
    .description('Merge LLM checkpoints (model interpolation of Instruct and Thinking models, mergekit recipes) at storage speed')
    .option('--debug', 'print stack traces of errors')
    .showHelpAfterError('(run weightmix --help for usage)')
    // commander lists a required option like any other: marked, as it marks a default or choices (inherited by every command).
    .configureHelp({ optionDescription: (option) => `${DEFAULT_HELP.optionDescription(option)}${option.mandatory ? ' (required)' : ''}` })
    // commander puts its "(Did you mean …?)" on a line of its own: folded into the error's one line.
    .configureOutput({
      outputError: (str, write) => {
        const folded = str.replace(/^error: /, 'weightmix: error: ').replace(/\n\(Did you mean ([^\n]*)\?\)/, ' (did you mean $1?)');
        // A word the user typed may hold a line break too ($'frob\nx'): one line whatever it holds.
        write(`${oneLine(folded.replace(/\n$/, ''))}\n`);
      },
    });
  program.exitOverride();
  program.hook('preAction', async (_program, action) => {
    if (!MERGING_COMMANDS.has(action.name())) return;
    // The process is the command line's own: its heap on huge pages (engine/native.ts), loaded only for a command that merges.
    const { preferHugePageHeap } = await import('./engine/native');
    preferHugePageHeap();
  });
  for (const c of COMMANDS) c.register(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Why a run stopped early, by its exit status. */
const STOPPED_BY: Record<number, string> = {
  129: 'SIGHUP',
  130: 'SIGINT',
  141: 'standard output being closed',
  143: 'SIGTERM',
};

let closedPipesIgnored = false;

/** A reader that went away (`| head`) is not a bug: output is dropped; a running merge stops (signals.ts). */
function ignoreClosedPipes(): void {
  if (closedPipesIgnored) return;
  closedPipesIgnored = true;
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
}

/** `help NAME` where no command is NAME parses as `NAME`: the unknown-command error (commander printed the whole help, exit 2, no error line). */
function helpOfUnknownAsCommand(program: Command, argv: string[]): string[] {
  // The program's own options (--debug) may come first; none takes a value.
  const at = argv.findIndex((arg, i) => i >= 2 && !arg.startsWith('-'));
  const name = argv[at + 1];
  const known = (n: string) => program.commands.some((c) => c.name() === n || c.aliases().includes(n));
  return at >= 2 && argv[at] === 'help' && name !== undefined && !known(name) ? [...argv.slice(0, at), ...argv.slice(at + 1)] : argv;
}

/** `message` with its line breaks and other control characters escaped (\n, \u0085, \u2028), so that an error stays one line. */
function oneLine(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Runs the CLI; resolves to the exit status (0 ok, 1 error, 2 usage, 129/130/143 interrupted, 141 stdout closed). */
export async function main(argv: string[]): Promise<number> {
  ignoreClosedPipes();
  const program = buildProgram();
  try {
    await program.parseAsync(helpOfUnknownAsCommand(program, argv));
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? 0 : 2;
    }
    const stopped = interruptedStatus();
    if (isWeightmixError(e)) {
      if (stopped !== undefined && e.code === 'Aborted') process.stderr.write(`weightmix: stopped by ${STOPPED_BY[stopped]}; nothing was published\n`);
      // One line whatever the message holds (a model path with a newline in it): control characters escaped.
      else process.stderr.write(`weightmix: error: ${oneLine(e.message)}\n`);
      if (program.opts().debug) process.stderr.write(`${e.stack}\n`);
      return stopped ?? e.exitCode;
    }
    // Anything else is a bug: show the stack.
    process.stderr.write(`weightmix: internal error (please report): ${(e as Error)?.stack ?? String(e)}\n`);
    return 70;
  }
}
