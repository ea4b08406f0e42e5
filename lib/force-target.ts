/**
 * What `--force` may replace: a model folder, or an empty one. A folder of other files (a typo'd `-o`, a project's folder) or the
 * folder the user runs from is theirs: replacing it would delete it without a word, so it is refused before anything is written.
 */
import * as fs from 'node:fs';
import { WeightmixError } from './errors';
import { isAtOrInside } from './path-inside';
import type { WeightmixErrorCode } from './error-codes';

/** What makes a folder a model's on its own: safetensors shards or a sharded model's index. */
const MODEL_FILE = /\.safetensors$|\.(safetensors|bin)\.index\.json$/;
/** Other formats' weights (a mergekit .bin output), a model's only beside its config.json: a .bin or .pt alone may be anything. */
const OTHER_WEIGHTS = /\.(bin|pt|pth|gguf)$/;
/** What a desktop or a checkout leaves in an otherwise empty folder: not the user's work (a .git folder is). */
const LITTER = new Set(['.DS_Store', '.gitkeep', 'Thumbs.db', 'desktop.ini']);

export interface ForceTargetOptions {
  /** The caller's error code and option, for messages (a fixture's FixtureExists and its own option). */
  code?: WeightmixErrorCode;
  option?: string;
  /** More names that make a folder a model's (a --part job's count file). */
  marks?: readonly string[];
}

/**
 * Refuses to let --force replace the existing folder `resolved` (`targetPath` as the user named it, in messages) unless it is a
 * model folder or empty, and unless it is neither the current folder nor one that holds it.
 */
export function refuseForcedNonModel(targetPath: string, resolved: string, options: ForceTargetOptions = {}): void {
  const { code = 'OutputExists', option = '--force', marks = [] } = options;
  let real: string;
  let entries: string[];
  try {
    real = fs.realpathSync(resolved);
    entries = fs.readdirSync(real).filter((name) => !LITTER.has(name));
  } catch (e) {
    throw new WeightmixError('OutputError', `cannot list ${targetPath}: ${(e as Error).message}`);
  }
  const here = currentFolder();
  // A --force part does not replace its folder, but removes what its job does not write there: the same rule.
  if (here !== null && isAtOrInside(real, here)) {
    const which = here === real ? 'the current folder' : 'a folder that holds the current one';
    throw new WeightmixError(code, `${targetPath} is ${which}: ${option} never replaces it; choose another output path`);
  }
  const model =
    entries.some((name) => MODEL_FILE.test(name) || marks.includes(name)) ||
    (entries.includes('config.json') && entries.some((name) => OTHER_WEIGHTS.test(name)));
  if (entries.length > 0 && !model) {
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
