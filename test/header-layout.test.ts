/**
 * The addon's check of a header's layout (native/header_layout.h, given the dtypes' bits by lib/format/json-tables.ts) against the
 * JavaScript check it stands in for (lib/format/header-columns.ts's validatedColumns): on random layouts and their perturbations,
 * the same columns or the same refusal, and a tie of empty tensors left to JavaScript.
 * WEIGHTMIX_FUZZ_RUNS sets the runs (default 300, times 10 here), WEIGHTMIX_FUZZ_SEED replays one.
 */
import fc from 'fast-check';
import { loadNative } from '../lib/engine/native';
import { DTYPE_BITS, DTYPE_NAMES } from '../lib/format/dtypes';
import { validatedColumns } from '../lib/format/header-columns';
import { NativeJsonTables, nativeJsonTables } from '../lib/format/json-tables';

const numRuns = Number(process.env.WEIGHTMIX_FUZZ_RUNS ?? 300);
const seed = process.env.WEIGHTMIX_FUZZ_SEED !== undefined ? Number(process.env.WEIGHTMIX_FUZZ_SEED) : Date.now() % 2 ** 31;
const params = { numRuns, seed };

let tables: NativeJsonTables;
beforeAll(() => {
  console.log(`header layout: seed ${seed}, ${numRuns * 10} runs (replay: WEIGHTMIX_FUZZ_SEED=${seed})`);
  loadNative();
  tables = nativeJsonTables()!;
});

// Tensors laid out one after the other, then perturbed: an end a little off or before its start, a gap, two swapped; empty tensors side
// by side (a tie in offsets, ordered by name); dims up to 2^53 - 1, whose products overflow the safe integers; F4 and F6 counts that
// leave a partial byte (no byte length: -1 in validatedColumns' arithmetic, as an end one before its start gives).
const dimArb = fc.oneof({ weight: 6, arbitrary: fc.nat({ max: 6 }) }, fc.constantFrom(0, 2 ** 26, 2 ** 31 + 1, 2 ** 53 - 1, 3 * 2 ** 40));
const layoutArb = fc
  .tuple(
    fc.uniqueArray(fc.record({ name: fc.stringMatching(/^[a-z]{1,3}$/), dtype: fc.constantFrom(...DTYPE_NAMES), shape: fc.array(dimArb, { maxLength: 3 }) }), {
      selector: (t) => t.name,
      minLength: 1,
      maxLength: 8,
    }),
    fc.array(fc.record({ at: fc.nat(), kind: fc.constantFrom('end', 'gap', 'swap', 'start', 'back'), by: fc.integer({ min: -2, max: 2 }) }), { maxLength: 2 }),
  )
  .map(([tensors, edits]) => {
    let at = 0;
    const offsets = tensors.map((t) => {
      const bits = t.shape.reduce((n, d) => n * d, 1) * DTYPE_BITS[t.dtype];
      const bytes = Number.isSafeInteger(bits) && bits % 8 === 0 ? bits / 8 : 8;
      const range = [at, at + bytes];
      at = Math.min(at + bytes, 2 ** 53 - 1);
      return range;
    });
    for (const e of edits) {
      const i = e.at % offsets.length;
      if (e.kind === 'end') offsets[i][1] = Math.max(0, offsets[i][1] + e.by);
      if (e.kind === 'start') offsets[i][0] = Math.max(0, offsets[i][0] + e.by);
      if (e.kind === 'back' && offsets[i][0] > 0) offsets[i][1] = offsets[i][0] - 1;
      if (e.kind === 'gap') for (let k = i; k < offsets.length; k++) offsets[k] = offsets[k].map((o) => o + Math.abs(e.by) + 1);
      if (e.kind === 'swap' && i + 1 < offsets.length)
        [tensors[i], tensors[i + 1], offsets[i], offsets[i + 1]] = [tensors[i + 1], tensors[i], offsets[i + 1], offsets[i]];
    }
    const members = tensors.map((t, i) => `"${t.name}":{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offsets[i].join(',')}]}`);
    return `{${members.join(',')}}`;
  });

test('the addon checks a header layout as validatedColumns does', () => {
  const seen = { valid: 0, invalid: 0, undecided: 0 };
  fc.assert(
    fc.property(layoutArb, (text) => {
      const read = tables.readHeaderTable(Buffer.from(text), DTYPE_NAMES);
      if (read === null) return;
      seen[read.laidOut === undefined ? 'undecided' : read.laidOut === null ? 'invalid' : 'valid']++;
      // The JavaScript check of the same columns, with the addon's answer taken away.
      expect({ text, columns: validatedColumns(read) }).toEqual({ text, columns: validatedColumns({ ...read, laidOut: undefined }) });
    }),
    { ...params, numRuns: numRuns * 10 },
  );
  // Each answer came up: the check is exercised, not skipped.
  expect(seen.valid).toBeGreaterThan(0);
  expect(seen.invalid).toBeGreaterThan(0);
  expect(seen.undecided).toBeGreaterThan(0);
});
