/** Runs one subcommand in-process on a fresh commander program and returns what it printed to stdout. */
import { Command } from 'commander';

export async function runCommand(register: (program: Command) => void, args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  register(program);
  let out = '';
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['node', 'weightmix', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out;
}
