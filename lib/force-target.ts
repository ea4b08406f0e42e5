/**
 * What `--force` may replace: a model folder, or an empty one. A folder of other files (a typo'd `-o`, a project's folder) or the
 * folder the user runs from is theirs: replacing it would delete it without a word, so it is refused before anything is written.
 */
import * as fs from 'node:fs';
import { WeightmixError } from './errors';
import { isAtOrInside } from './path-inside';
import type { WeightmixErrorCode } from './error-codes';

/** Weights that make a folder a model's: safetensors shards and their index, and the other formats' (a mergekit .bin output). */
const MODEL_FILE = /\.(safetensors|bin|pt|pth|gguf)$|\.(safetensors|bin)\.index\.json$/;
/** What a desktop or a checkout leaves in an otherwise empty folder: not the user's work (a .git folder is). */
const LITTER = new Set(['.DS_Store', '.gitkeep', 'Thumbs.db']);

export interface ForceTargetOptions {
  /** The caller's error code and option, for messages (a fixture's FixtureExists and its own option). */
  code?: WeightmixErrorCode;
  option?: string;
  /** More names that make a folder a model's (a --part job's count file). */
  marks?: readonly string[];
  /** The folder is filled, not replaced (a --part job's shared folder): it may be the current folder. */
  filled?: boolean;
}

/**
 * Refuses to let --force replace the existing folder `resolved` (`targetPath` as the user named it, in messages) unless it is a
 * model folder or empty, and unless it is neither the current folder nor one that holds it.
 */
export function refuseForcedNonModel(targetPath: string, resolved: string, options: ForceTargetOptions = {}): void {
  const { code = 'OutputExists', option = '--force', marks = [], filled = false } = options;
  let real: string;
  let entries: string[];
  try {
    real = fs.realpathSync(resolved);
    entries = fs.readdirSync(real).filter((name) => !LITTER.has(name));
  } catch (e) {
    throw new WeightmixError('OutputError', `cannot use ${targetPath} as the output: ${(e as Error).message}`);
  }
  const here = currentFolder();
  if (!filled && here !== null && isAtOrInside(real, here)) {
    const which = here === real ? 'the current folder' : 'a folder that holds the current one';
    throw new WeightmixError(code, `${targetPath} is ${which}: ${option} never replaces it; choose another output path`);
  }
  if (entries.length > 0 && !entries.some((name) => MODEL_FILE.test(name) || marks.includes(name))) {
    throw new WeightmixError(
      code,
      `${targetPath} holds ${entries.length} ${entries.length === 1 ? 'entry' : 'entries'} but no model (no weights file): ${option} replaces a model folder, never other files; choose another output path`,
    );
  }
}

/** The working folder's real path; null where it was deleted under the run (it then holds nothing). */
function currentFolder(): string | null {
  try {
    return fs.realpathSync(process.cwd());
  } catch {
    return null;
  }
}
