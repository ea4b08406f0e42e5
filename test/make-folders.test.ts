/** lib/make-folders.ts: mkdir -p one folder at a time (Node's recursive mkdir spins forever under /proc). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeFolders } from '../lib/make-folders';
import { testIf } from './helpers/skip';
import { freshPath, useTempDir, dir } from './helpers/temp-dir';

useTempDir('wm-make-folders-');

test('makes the missing folders and returns the first it made; nothing made when the folder exists', async () => {
  const top = freshPath('a');
  const deep = path.join(top, 'b', 'c');
  expect(await makeFolders(deep)).toBe(top);
  expect(fs.statSync(deep).isDirectory()).toBe(true);
  expect(await makeFolders(deep)).toBeUndefined();
  expect(await makeFolders(dir)).toBeUndefined();
});

test('a file on the way: ENOTDIR naming the folder that cannot be made; the folder itself a file: EEXIST, as mkdir says', async () => {
  const file = freshPath('file');
  fs.writeFileSync(file, 'x');
  await expect(makeFolders(path.join(file, 'sub', 'deeper'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  await expect(makeFolders(file)).rejects.toMatchObject({ code: 'EEXIST' });
});

const haveProc = fs.existsSync('/proc/self/status');
testIf(haveProc, 'no procfs at /proc')(
  'under /proc (a folder that refuses new ones): fails at once with ENOENT, where fs.mkdir(recursive) spins forever',
  async () => {
    await expect(makeFolders('/proc/weightmix-test/a/b')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'mkdir' });
  },
);
