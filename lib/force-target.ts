/**
 * What `--force` may replace: a model folder, or an empty one. A folder of other files (a typo'd `-o`, a project's folder) or the
 * folder the user runs from is theirs: replacing it would delete it without a word, so it is refused before anything is written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from './errors';
import type { WeightmixErrorCode } from './error-codes';

/** Names that make a folder a model's: shards, a sharded model's index, and the caller's `marks` (a --part job's count file). */
function isModelEntry(name: string, marks: readonly string[]): boolean {
  return name.endsWith('.safetensors') || name.endsWith('.safetensors.index.json') || marks.includes(name);
}

/**
 * Refuses to let --force replace the existing folder `resolved` (`targetPath` as the user named it) unless it is a model folder or
 * empty; `code` and `option` as the caller names them (a fixture's FixtureExists and its own option), `marks` more names of a model's.
 */
export function refuseForcedNonModel(
  targetPath: string,
  resolved: string,
  { code = 'OutputExists', option = '--force', marks = [] }: { code?: WeightmixErrorCode; option?: string; marks?: readonly string[] } = {},
): void {
  let real: string;
  let entries: string[];
  try {
    real = fs.realpathSync(resolved);
    entries = fs.readdirSync(real);
  } catch (e) {
    throw new WeightmixError('OutputError', `cannot use ${targetPath} as the output: ${(e as Error).message}`);
  }
  const below = path.relative(real, fs.realpathSync(process.cwd()));
  if (!below.startsWith('..') && !path.isAbsolute(below)) {
    const which = below === '' ? 'the current folder' : 'a folder that holds the current one';
    throw new WeightmixError(code, `${targetPath} is ${which}: ${option} never replaces it; choose another output path`);
  }
  if (entries.length > 0 && !entries.some((name) => isModelEntry(name, marks))) {
    throw new WeightmixError(
      code,
      `${targetPath} holds ${entries.length} ${entries.length === 1 ? 'entry' : 'entries'} but no model (no .safetensors file): ${option} replaces a model folder, never other files; choose another output path`,
    );
  }
}
