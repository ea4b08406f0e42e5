/** Shared setup of the recipe tests (test/recipe*.test.ts): three empty model folders A, B, C, and a linear recipe over A and B. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dir, useTempDir } from './temp-dir';

/** The folder holding A, B and C (temp-dir's, made and removed by it). */
export { dir };
export let A: string;
export let B: string;
export let C: string;

/** The model folders, made before the file's tests and removed after them. */
export function setUpRecipeModels(): void {
  useTempDir('weightmix-recipe-');
  beforeAll(() => {
    [A, B, C] = ['a', 'b', 'c'].map((n) => {
      const d = path.join(dir, n);
      fs.mkdirSync(d);
      return d;
    });
  });
}

export const lin = (extra: Record<string, unknown> = {}) => ({
  merge_method: 'linear',
  models: [
    { model: A, parameters: { weight: 1 } },
    { model: B, parameters: { weight: 1 } },
  ],
  ...extra,
});
