/** Shared setup of the tensor-local tests (test/tensor-local*.test.ts, test/della-local.test.ts): a temporary folder, and the local budget restored after each test. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { localStatistics } from '../../lib/recipes/sparsify';

/** The file's temporary folder (set before its tests run). */
export let dir: string;

/** `localStatistics.maxTensorBytes` as the file found it: the budget a "local" run uses. */
export const defaultBytes = localStatistics.maxTensorBytes;

/** Makes `dir` (named after `prefix`) before the file's tests and removes it after them; restores the budget after each test, which may lower it. */
export function setUpTensorLocalTests(prefix: string): void {
  beforeAll(async () => {
    dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), prefix));
  });
  afterAll(async () => {
    await fs.promises.rm(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    localStatistics.maxTensorBytes = defaultBytes;
  });
}
