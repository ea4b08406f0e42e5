/**
 * House rules on file length (issue #11): no TypeScript file over 450 lines, no native source
 * (native/**\/*.{cc,h,cu}) over 600. A file past its limit is split at its seams (describe blocks,
 * sections) into files whose names say what they hold; shared setup goes to a module, not a copy.
 * The files are the repository's: tracked ones and new ones git does not ignore (a walk of lib/,
 * test/, scripts/ and native/ where there is no git).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const TS_LIMIT = 450;
const NATIVE_LIMIT = 600;

/** Repository-relative paths, '/'-separated. */
function repositoryFiles(): string[] {
  const git = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  if (git.status === 0 && git.stdout.length > 0) return git.stdout.split('\0').filter((f) => f !== '' && fs.existsSync(path.join(ROOT, f)));
  const walk = (rel: string): string[] =>
    fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true }).flatMap((e) => {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) return e.name === 'node_modules' ? [] : walk(p);
      return e.isFile() ? [p] : [];
    });
  return ['lib', 'test', 'scripts', 'native'].filter((d) => fs.existsSync(path.join(ROOT, d))).flatMap(walk);
}

/** Lines as `wc -l` counts them, plus a last line without its newline. */
function lineCount(file: string): number {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  if (text === '') return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

/** "file: N lines" for each file over `limit`, longest first. */
function overLimit(files: string[], limit: number): string[] {
  return files
    .map((file) => ({ file, lines: lineCount(file) }))
    .filter((f) => f.lines > limit)
    .sort((a, b) => b.lines - a.lines)
    .map((f) => `${f.file}: ${f.lines} lines`);
}

const files = repositoryFiles();

test(`no TypeScript file over ${TS_LIMIT} lines`, () => {
  const ts = files.filter((f) => f.endsWith('.ts'));
  expect(ts.length).toBeGreaterThan(0);
  expect(overLimit(ts, TS_LIMIT)).toEqual([]);
});

test(`no native source (native/**/*.{cc,h,cu}) over ${NATIVE_LIMIT} lines`, () => {
  const native = files.filter((f) => f.startsWith('native/') && /\.(cc|h|cu)$/.test(f));
  expect(native.length).toBeGreaterThan(0);
  expect(overLimit(native, NATIVE_LIMIT)).toEqual([]);
});
