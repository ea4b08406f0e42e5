/** The keys and parameters of a recipe that weightmix, as mergekit, ignores, told from misspellings of those it reads. */
import { nearestKey } from '../api/validate-options';
import { WeightmixError } from '../errors';

/**
 * A key weightmix does not read: one that looks like a misspelling of one it reads (`base_modle`, `base` for `base_model`) is
 * refused with that key; any other is ignored, as mergekit's configuration models ignore fields they do not declare (`name`,
 * a `layer_range` in a `models:` entry, a top-level key that only holds YAML anchors), and reported in `ignored`.
 */
export function unknownKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string, ignored: string[]): void {
  for (const key of Object.keys(obj).filter((k) => !allowed.includes(k))) {
    const meant = misspelt(key, allowed);
    if (meant !== undefined) throw new WeightmixError('UnsupportedRecipe', `${where}: unsupported key '${key}' (did you mean '${meant}'?)`);
    ignored.push(`${where}: key '${key}' ignored: weightmix reads no such key here (mergekit ignores it too)`);
  }
}

/** The key `key` likely misspells: within two edits, or the start of one (`base` for `base_model`; not `model_name` for `model`). */
export function misspelt(key: string, known: readonly string[]): string | undefined {
  return nearestKey(key, known) ?? (key.length >= 3 ? known.find((k) => k.startsWith(key)) : undefined);
}
