/**
 * `mkdir -p` one folder at a time. Node's recursive mkdir spins forever, and does not stop on a signal, where a folder
 * exists but refuses to hold a new one with ENOENT (procfs, sysfs: `-o /proc/x`); a plain mkdir of each missing folder
 * fails there at once, with the error that says why.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Makes `dir` and the folders above it that are missing; returns the first it made (as the recursive mkdir does), or undefined. */
export async function makeFolders(dir: string): Promise<string | undefined> {
  const missing: string[] = [];
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const st = await fs.promises.stat(at).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    if (st !== null) {
      if (!st.isDirectory()) {
        // As mkdir says it: the folder itself a file is EEXIST, a file above it ENOTDIR.
        const below = missing[missing.length - 1];
        if (below === undefined)
          throw Object.assign(new Error(`EEXIST: file already exists, mkdir '${at}'`), { code: 'EEXIST', errno: -17, syscall: 'mkdir', path: at });
        throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${below}'`), { code: 'ENOTDIR', errno: -20, syscall: 'mkdir', path: below });
      }
      break;
    }
    missing.push(at);
    if (path.dirname(at) === at) break;
  }
  let first: string | undefined;
  for (const folder of missing.reverse()) {
    try {
      await fs.promises.mkdir(folder);
    } catch (e) {
      // Made meanwhile by another run: as good as made here (and not this run's to remove).
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && (await fs.promises.stat(folder).catch(() => null))?.isDirectory()) continue;
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && (await fs.promises.lstat(folder)).isSymbolicLink()) {
        const to = await fs.promises.readlink(folder);
        throw Object.assign(new Error(`${folder} is a symbolic link to ${to}, which does not exist`), { code: 'EEXIST', syscall: 'mkdir', path: folder });
      }
      throw e;
    }
    first ??= folder;
  }
  return first;
}
