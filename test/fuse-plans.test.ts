/**
 * fusePlans (lib/engine/fuse-plans.ts), the batch's many write plans as one: each tensor read once where the recipes agree
 * on the source order, a tensor-local job grown only while its sources fit the local pool, and each op's open-tail
 * predicate against its own encoder.
 */
import { fusePlans } from '../lib/engine/fuse-plans';
import { MergePlan, mergePlanOf } from '../lib/engine/plan';
import { packJobColumns } from '../lib/engine/packed-jobs';
import { OpenMomentsTable } from '../lib/engine/open-moments';
import { encodeSparseParams, sparseParamsOpen } from '../lib/engine/sparse-params';
import { dellaParamsOpen, encodeDellaParams } from '../lib/engine/della-params';
import { encodeSceParams, sceParamsOpen } from '../lib/engine/sce-params';
import { encodeElementwiseParams, ramParamsOpen } from '../lib/engine/elementwise-params';
import { arceeFusionParamsOpen, encodeArceeFusionParams } from '../lib/engine/arcee-fusion-params';

/** Tensor reads of a plan: (input, offset) pairs, counted with repeats. */
function reads(plan: MergePlan): string[] {
  return plan.jobs.flatMap((j) => j.sources.map((s) => `${plan.inputs[s.input]}:${s.offset}`));
}

test('a fused plan reads each tensor once where the recipes agree on the source order', () => {
  const job = (sources: [number, number][], op: 'copy' | 'linear', w: number[], output = 0) => ({
    count: 4,
    sources: sources.map(([input, offset]) => ({ input, offset, dtype: 'BF16' as const })),
    dests: [{ output, offset: 8, dtype: 'BF16' as const, op, w }],
  });
  const plan = (jobs: ReturnType<typeof job>[], inputs: string[]): MergePlan =>
    mergePlanOf({
      inputs,
      outputs: [{ path: `/out/${inputs.join('')}-${jobs.length}`, size: 16, head: Buffer.alloc(8) }],
      packedJobs: packJobColumns(jobs),
      models: [],
      bytesToWrite: 16,
    });
  // Plan 1 lists the inputs the other way round: input indices are per plan, tensors are (file, offset).
  const p1 = plan(
    [
      job(
        [
          [0, 100],
          [1, 200],
        ],
        'linear',
        [0.2, 0.8],
      ),
      job([[1, 300]], 'copy', [0]),
    ],
    ['a', 'b'],
  );
  const p2 = plan(
    [
      job(
        [
          [1, 100],
          [0, 200],
        ],
        'linear',
        [0.5, 0.5],
      ),
      job(
        [
          [0, 300],
          [1, 300],
        ],
        'copy',
        [1],
      ),
    ],
    ['b', 'a'],
  );
  const p3 = plan([job([[0, 100]], 'copy', [0])], ['a']);
  const fused = fusePlans([p1, p2, p3], () => true);
  expect(fused.inputs).toEqual(['a', 'b']);
  expect(reads(fused).sort()).toEqual(['a:100', 'a:300', 'b:200', 'b:300']);
  expect(fused.jobs).toHaveLength(2);
  const first = fused.jobs[0];
  expect(first.dests.map((d) => [d.output, d.op, d.w])).toEqual([
    [0, 'linear', [0.2, 0.8]],
    [1, 'linear', [0.5, 0.5]],
    [2, 'copy', [0]],
  ]);
  // Copies only name their source: p2's a:300 is the fused job's second source.
  expect(fused.jobs[1].sources.map((s) => `${fused.inputs[s.input]}:${s.offset}`)).toEqual(['b:300', 'a:300']);
  expect(fused.jobs[1].dests.map((d) => [d.output, d.w])).toEqual([
    [0, [0]],
    [1, [1]],
  ]);
  // A linear sum over the same tensors in another order stays a job of its own.
  const swapped = plan(
    [
      job(
        [
          [1, 200],
          [0, 100],
        ],
        'linear',
        [0.5, 0.5],
      ),
    ],
    ['a', 'b'],
  );
  const apart = fusePlans([p1, swapped], () => true);
  expect(reads(apart).sort()).toEqual(['a:100', 'a:100', 'b:200', 'b:200', 'b:300']);
  // The first rows of a tensor (a vocabulary cut) are another read than the whole tensor.
  const cut = plan([{ ...job([[0, 100]], 'copy', [0]), count: 2 }], ['a']);
  const both = fusePlans([p3, cut], () => true);
  expect(both.jobs.map((j) => j.count)).toEqual([4, 2]);
  // A plan whose dests wait for their moments' answers (its own table's ids) is refused, not fused without its table.
  const open = new OpenMomentsTable();
  open.add({ pairs: [[0, 1]], pieceElements: 4, count: 4, resolve: () => ({ op: 'copy', model: 0 }) }, [0, 1]);
  expect(() => fusePlans([p1, mergePlanOf({ ...p3, openMoments: open })], () => true)).toThrow('internal: a plan with open moments is not fused');
});

test('a fused tensor-local job grows only while its sources fit the local pool', () => {
  // `sparse` params in their flat layout: no model thins here, and the optional tail marks the statistics open.
  const sparse = (base: number, models: number[], open: boolean) => [
    0,
    0,
    1,
    20,
    base,
    models.length,
    ...models.flatMap((s) => [s, 1, 1, 0, 0, 0, 0, 0, 0, 1]),
    ...(open ? models.flatMap(() => [1, 0, 0, 0]) : []),
  ];
  // One plan per recipe, one tensor each: 4 bf16 elements (8 bytes) of file f at offset 0 for each of its sources.
  const plan = (files: string[], op: 'sparse' | 'linear', open = false, output = 0): MergePlan =>
    mergePlanOf({
      inputs: files,
      outputs: [{ path: `/out/${op}-${files.join('')}-${output}`, size: 16, head: Buffer.alloc(8) }],
      packedJobs: packJobColumns([
        {
          count: 4,
          sources: files.map((_, input) => ({ input, offset: 0, dtype: 'BF16' as const })),
          dests: [
            op === 'sparse'
              ? {
                  output: 0,
                  offset: 8,
                  dtype: 'BF16' as const,
                  op,
                  w: [],
                  params: sparse(
                    0,
                    files.slice(1).map((_, k) => k + 1),
                    open,
                  ),
                }
              : { output: 0, offset: 8, dtype: 'BF16' as const, op, w: files.map(() => 1 / files.length) },
          ],
        },
      ]),
      models: [],
      bytesToWrite: 16,
    });
  const sourcesOf = (p: MergePlan) => p.jobs.map((j) => j.sources.map((s) => p.inputs[s.input]).join(''));
  const opsOf = (p: MergePlan) => p.jobs.map((j) => j.dests.map((d) => `${d.op}${d.output}`).join(' '));
  const threeSources = (bytes: number) => bytes <= 24;
  // Local (open) members over a shared base: two fit one job of three sources, the third starts another, which a
  // closed member then joins rather than growing the first past the pool; a second closed one fits neither.
  const plans = [
    plan(['a', 'b'], 'sparse', true),
    plan(['a', 'c'], 'sparse', true),
    plan(['a', 'd'], 'sparse', true),
    plan(['a', 'e'], 'sparse'),
    plan(['a', 'f'], 'sparse'),
  ];
  const bounded = fusePlans(plans, threeSources);
  expect(sourcesOf(bounded)).toEqual(['abc', 'ade', 'af']);
  expect(opsOf(bounded)).toEqual(['sparse0 sparse1', 'sparse2 sparse3', 'sparse4']);
  // Without a bound (or without an open member) they all share one job, as before.
  expect(sourcesOf(fusePlans(plans, () => true))).toEqual(['abcdef']);
  const closed = [plan(['a', 'b'], 'sparse'), plan(['a', 'c'], 'sparse'), plan(['a', 'd'], 'sparse')];
  expect(sourcesOf(fusePlans(closed, () => false))).toEqual(['abcd']);
  // A closed job that a local member joined holds its sources whole from then on: a later closed member starts another.
  const joined = [plan(['a', 'b'], 'sparse'), plan(['a', 'c'], 'sparse', true), plan(['a', 'd'], 'sparse')];
  expect(sourcesOf(fusePlans(joined, threeSources))).toEqual(['abc', 'ad']);
  // A member that fits several jobs joins the one it adds the fewest tensors to: c is not read twice.
  const nearest = [plan(['a', 'b'], 'sparse', true), plan(['a', 'c', 'd'], 'sparse', true), plan(['a', 'c'], 'sparse')];
  expect(sourcesOf(fusePlans(nearest, threeSources))).toEqual(['ab', 'acd']);
  // A local member joins a linear job that holds its tensors only where that job's sources fit the pool too.
  const linear = [plan(['a', 'b', 'c', 'd'], 'linear'), plan(['a', 'b'], 'sparse', true)];
  expect(opsOf(fusePlans(linear, threeSources))).toEqual(['linear0', 'sparse1']);
  expect(opsOf(fusePlans(linear, () => true))).toEqual(['linear0 sparse1']);
});

test("each op's open tail, written by its own encoder, is what the fusion reads as open", () => {
  const id = (m: number) => m;
  for (const models of [1, 2, 3]) {
    const sparseModel = (open: boolean, k: number) => ({
      model: k + 1,
      weight: 0.5,
      lowKey: 0n,
      highKey: 0n,
      density: 0.5,
      seedKey: 7n,
      scale: 1,
      ...(open && k === 0 && { open: { select: true, lowRank: 3, highRank: 3, l1: false } }),
    });
    const sparse = (open: boolean) =>
      encodeSparseParams(
        { base: 0, consensus: 'sum', normalize: true, lambda: 1, indexBits: 20, models: Array.from({ length: models }, (_, k) => sparseModel(open, k)) },
        id,
      );
    expect([sparseParamsOpen(sparse(false)), sparseParamsOpen(sparse(true))]).toEqual([false, true]);
    const della = (open: boolean) =>
      encodeDellaParams(
        {
          base: 0,
          consensus: true,
          normalize: true,
          lambda: 1,
          rows: { length: 4, stride: 1 },
          models: Array.from({ length: models }, (_, k) => ({ model: k + 1, weight: 0.5, density: 0.5, epsilon: 0.1, seedKey: 3n, scale: 1, open })),
        },
        id,
      );
    expect([dellaParamsOpen(della(false)), dellaParamsOpen(della(true))]).toEqual([false, true]);
    const sce = (open?: { selectTopk: number; sumPiece: number; recomputeVariances?: boolean }) =>
      encodeSceParams(
        {
          base: 0,
          models: Array.from({ length: models }, (_, k) => k + 1),
          weights: Array(models).fill(1 / models),
          cut: 0n,
          indexBits: 20,
          ...(open && { open }),
        },
        id,
      );
    expect([
      sceParamsOpen(sce()),
      sceParamsOpen(sce({ selectTopk: 0.5, sumPiece: 64 })),
      sceParamsOpen(sce({ selectTopk: 0.5, sumPiece: 64, recomputeVariances: true })),
    ]).toEqual([false, true, true]);
    const sources = Array.from({ length: models + 1 }, (_, k) => k);
    const ram = (open: boolean) =>
      encodeElementwiseParams('ram', sources, [1e-3, ...Array(models).fill(0.5)], undefined, open ? { r: 0.5, alpha: 0.2, epsilon: 1e-3 } : undefined);
    expect([ramParamsOpen(ram(false)), ramParamsOpen(ram(true))]).toEqual([false, true]);
  }
  const arcee = (open: boolean) => encodeArceeFusionParams({ base: 0, model: 1, rowLength: 8, threshold: 0.25, open }, (m) => m);
  expect([arceeFusionParamsOpen(arcee(false)), arceeFusionParamsOpen(arcee(true))]).toEqual([false, true]);
});
