/** Shared setup of the tensor-local tests (test/tensor-local*.test.ts, test/della-local.test.ts): a temporary folder, and the local budget restored after each test. */
import { localStatistics } from '../../lib/recipes/sparsify';
import { useTempDir } from './temp-dir';

/** The file's temporary folder (set before its tests run). */
export { dir } from './temp-dir';

/** `localStatistics.maxTensorBytes` as the file found it: the budget a "local" run uses. */
export const defaultBytes = localStatistics.maxTensorBytes;

/** Makes `dir` (named after `prefix`) before the file's tests and removes it after them; restores the budget after each test, which may lower it. */
export function setUpTensorLocalTests(prefix: string): void {
  useTempDir(prefix);
  afterEach(() => {
    localStatistics.maxTensorBytes = defaultBytes;
  });
}
