/** Whether a path lies in a folder: the one test of the output checks and of a model folder's confinement. */
import * as path from 'node:path';

/** Whether `p` is `dir` itself or lies inside it (both absolute, resolved alike): a name such as `..x` is inside, `../x` is not. */
export function isAtOrInside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}
