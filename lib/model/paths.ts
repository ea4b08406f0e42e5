/** Confinement of names that come from untrusted files (index weight maps, sidecar listings). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../errors';
import { isAtOrInside } from '../path-inside';

/** A relative name from an index must stay inside its folder: no absolute paths, no `..`, no NUL. */
export function checkRelativeName(name: string, what: string): void {
  const bad =
    name.length === 0 || name.includes('\0') || path.isAbsolute(name) || name.includes('\\') || name.split('/').some((part) => part === '..' || part === '');
  if (bad) throw new WeightmixError('UnsafePath', `${what}: refusing path ${JSON.stringify(name)} (it would leave the model folder)`);
}

/**
 * Resolves `name` inside `root` and follows symlinks, refusing targets outside the folder. A Hugging
 * Face cache snapshot (…/snapshots/<rev>/file → ../../blobs/<hash>) may point into its repo's blobs/.
 */
export function confinedRealPath(root: string, name: string, what: string): string {
  checkRelativeName(name, what);
  let rootReal: string;
  let target: string;
  try {
    rootReal = fs.realpathSync(root);
    target = fs.realpathSync(path.join(rootReal, name));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new WeightmixError(err.code === 'ENOENT' ? 'FileNotFound' : 'IoError', `${what}: ${name}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
  const snapshots = path.dirname(rootReal);
  if (!isInside(rootReal, target) && !(path.basename(snapshots) === 'snapshots' && isInside(path.join(path.dirname(snapshots), 'blobs'), target))) {
    throw new WeightmixError('UnsafePath', `${what}: ${name} is a link that leads outside the model folder (${target})`);
  }
  // A named pipe or device would block or never end; a folder is no file.
  if (!fs.statSync(target).isFile()) throw new WeightmixError('NotAFile', `${what}: ${name} is not a regular file`);
  return target;
}

function isInside(dir: string, file: string): boolean {
  return file !== dir && isAtOrInside(dir, file);
}
