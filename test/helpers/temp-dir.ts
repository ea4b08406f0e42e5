/** A test file's temporary folder: made before its tests, removed with all it holds after them. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

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
