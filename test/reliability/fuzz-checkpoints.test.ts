/**
 * Checkpoint-level fuzzing in CI: a short, fixed-seed run of scripts/fuzz.ts (mutated shard headers,
 * index and files of a tiny model → openCheckpoint → merge → verify) and a replay of every case a
 * long `npm run fuzz` saved under test/corpus/checkpoints/. Only WeightmixErrors may come out, and
 * a merge that succeeds must verify bit for bit.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openCheckpoint } from '../../lib/model/checkpoint';
import { isWeightmixError } from '../../lib/errors';
import { CHECKPOINT_CORPUS, fuzzCheckpoints } from '../../scripts/fuzz';
import { scratchDir } from '../helpers/cli';

let work: string;
beforeAll(() => {
  work = scratchDir('fuzz-ci');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

test('60 mutated checkpoints: only WeightmixErrors, and every merge that succeeds verifies', async () => {
  const r = await fuzzCheckpoints({ runs: 60, seed: 20260101, work, saveDir: null, merge: true });
  expect(r.failures).toEqual([]);
  expect(r.runs).toBe(60);
  // Not degenerate: cases end in each of the three ways.
  expect(r.outcomes.rejectedAtOpen).toBeGreaterThan(0);
  expect(r.outcomes.merged).toBeGreaterThan(0);
  expect(r.outcomes.rejectedAtOpen + r.outcomes.rejectedAtMerge + r.outcomes.merged).toBe(60);
}, 60_000);

// Cases whose mutations crashed the harness itself (scripts/fuzz.ts, before 247753d and its successor): an index edit after a step that
// left valid JSON with no weight_map object, and header edits after one that left a tensor entry without a shape or offsets array.
test.each([
  [206301, 2689],
  [8808, 384],
  [4404, 801],
])('seed %i, case %i: the harness mutates a model an earlier step left malformed, and the case ends as a case', async (seed, first) => {
  const r = await fuzzCheckpoints({ runs: 1, seed, first, work, saveDir: null, merge: true });
  expect(r.failures).toEqual([]);
  expect(r.outcomes.rejectedAtOpen + r.outcomes.rejectedAtMerge + r.outcomes.merged).toBe(1);
});

const saved = fs.existsSync(CHECKPOINT_CORPUS)
  ? fs.readdirSync(CHECKPOINT_CORPUS).filter((d) => fs.existsSync(path.join(CHECKPOINT_CORPUS, d, 'CASE.json')))
  : [];

(saved.length ? test.each(saved) : test.skip.each(['(no saved cases)']))('saved case %s opens or is rejected with a WeightmixError', async (name) => {
  const err = await openCheckpoint(path.join(CHECKPOINT_CORPUS, name)).then(
    () => null,
    (e: unknown) => e,
  );
  if (err !== null) expect(isWeightmixError(err)).toBe(true);
});
