/** A test file's temporary folder: made before its tests, removed with all it holds after them. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** How many paths `freshPath` has handed out in this test file. */
let serial = 0;

/** The folder `useTempDir` made for this test file (set before its tests run; each test file has its own module copy). */
export let dir: string;

/** Makes `dir` in the system temp folder, named `prefix` and six random characters, before the tests of the calling scope; removes it after them. */
export function useTempDir(prefix: string): void {
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

/** A path in `dir` that no earlier call returned: `name`, a dash, a number counting up through the test file, then `extension`. */
export function freshPath(name: string, extension = ''): string {
  return path.join(dir, `${name}-${serial++}${extension}`);
}
