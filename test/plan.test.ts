/**
 * The pure planner (lib/engine/plan.ts) on its own: output shards and their header bytes, dest
 * offsets, sources, one dest per output model, the op and dtype of each dest, selection, `--part`
 * filtering and the errors. The oracle is the safetensors format itself: every head is parsed back
 * here and every output byte must be covered exactly once by the head or one dest.
 */
import * as path from 'node:path';
import { WeightmixError } from '../lib/errors';
import { Checkpoint, openCheckpoint, TensorLocation } from '../lib/model/checkpoint';
import { isSelected, parseSelection } from '../lib/model/selection';
import { checkCompatible, MergePlan, MergeSpec, planMerge, TensorRecipe } from '../lib/engine/plan';
import { checkpointLayout } from '../lib/engine/output-layout';
import { NativeOutput } from '../lib/engine/native';
import { NATIVE_DTYPE_BYTES, SafetensorsDtype } from '../lib/format/dtypes';
import { randomTensor, rng, TensorSpec, writeModel } from './helpers/models';
import { dir as root, useTempDir } from './helpers/temp-dir';

const SPECS: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', shape: [4, 3] },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [3, 3] },
  { name: 'model.layers.0.mlp.up_proj.weight', shape: [5, 3] },
  { name: 'model.layers.1.self_attn.q_proj.weight', shape: [3, 3] },
  { name: 'model.layers.1.mlp.up_proj.weight', shape: [5, 3] },
  { name: 'model.rotary.position_ids', shape: [7] },
];
const ELEMENTS = new Map(SPECS.map((s) => [s.name, s.shape.reduce((a, b) => a * b, 1)]));
const RAW = 'model.rotary.position_ids';

function dtypeIn(model: 'A' | 'B' | 'C', name: string): SafetensorsDtype {
  if (name === RAW) return 'I64';
  if (name === 'model.layers.1.mlp.up_proj.weight') return 'F32';
  if (model === 'B' && name.includes('layers.0.self_attn')) return 'F16';
  return 'BF16';
}

let A: Checkpoint; // two shards: the layout
let B: Checkpoint; // one shard, tensors in reverse order, one F16 tensor
let C: Checkpoint;

useTempDir('wm-plan-');

beforeAll(async () => {
  const next = rng(11);
  const data = (dtype: SafetensorsDtype, name: string) =>
    dtype === 'I64' ? Buffer.alloc(8 * ELEMENTS.get(name)!, 7) : randomTensor(dtype as 'BF16' | 'F16' | 'F32', ELEMENTS.get(name)!, next);
  const write = (tag: 'A' | 'B' | 'C', specs: TensorSpec[], shards: number) =>
    writeModel(
      path.join(root, tag),
      specs,
      shards,
      (n) => dtypeIn(tag, n),
      (s, d) => data(d, s.name),
      tag,
    );
  await write('A', SPECS, 2);
  await write('B', [...SPECS].reverse(), 1);
  await write('C', SPECS, 2);
  [A, B, C] = await Promise.all(['A', 'B', 'C'].map((t) => openCheckpoint(path.join(root, t))));
});

const OUT_DTYPE: SafetensorsDtype[] = ['BF16', 'F32'];

function spec(recipe: MergeSpec['recipe'], extra: Partial<MergeSpec> = {}): MergeSpec {
  return {
    checkpoints: [A, B, C],
    layout: checkpointLayout(A),
    outputs: [
      { dir: path.join(root, 'out0'), metadata: { format: 'pt', lambda: '0.3' } },
      { dir: path.join(root, 'out1'), metadata: { format: 'pt', lambda: '0.7' } },
    ],
    recipe,
    ...extra,
  };
}

/** lerp of A and B for floats (output 0 in BF16, output 1 in F32), a copy of A for the raw tensor. */
const lerpAll = (name: string, o: number): TensorRecipe =>
  name === RAW ? { op: 'copy', models: [0], w: [0], dtype: 'I64' } : { op: 'lerp', models: [0, 1], w: [o === 0 ? 0.3 : 0.7], dtype: OUT_DTYPE[o] };

interface ParsedHead {
  dataStart: number;
  metadata: Record<string, string>;
  tensors: { name: string; dtype: string; shape: number[]; begin: number; end: number }[];
}

/** The head parsed by the format's own rules: 8-byte length, JSON, data right after it. */
function parseHead(out: NativeOutput): ParsedHead {
  const n = Number(out.head.readBigUInt64LE(0));
  expect(out.head.length).toBe(8 + n);
  const json = JSON.parse(out.head.subarray(8).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const { __metadata__: metadata, ...rest } = json as unknown as { __metadata__: Record<string, string> };
  const tensors = Object.entries(rest as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>)
    .map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, begin: t.data_offsets[0], end: t.data_offsets[1] }))
    .sort((x, y) => x.begin - y.begin);
  return { dataStart: 8 + n, metadata, tensors };
}

/** [job index, dest] pairs writing into output `o`, with the tensor name each job makes (jobs follow the layout's order). */
function writersOf(plan: MergePlan, o: number, names: string[]): { name: string; begin: number; end: number }[] {
  const out: { name: string; begin: number; end: number }[] = [];
  plan.jobs.forEach((job, j) => {
    for (const d of job.dests) {
      if (d.output === o) out.push({ name: names[j], begin: d.offset, end: d.offset + job.count * NATIVE_DTYPE_BYTES[d.dtype] });
    }
  });
  return out.sort((x, y) => x.begin - y.begin);
}

describe('planMerge: output shards and headers', () => {
  test("one output per layout shard and model, in the layout's shard order, under the model's folder", () => {
    const plan = planMerge(spec(lerpAll));
    const shards = A.shards.map((s) => s.name);
    expect(shards).toHaveLength(2);
    expect(plan.outputs.map((o) => o.path)).toEqual(shards.flatMap((s) => [path.join(root, 'out0', s), path.join(root, 'out1', s)]));
    expect(plan.models.map((m) => m.shards.map((s) => s.name))).toEqual([shards, shards]);
    expect(plan.models.every((m) => m.indexed)).toBe(true);
  });

  test('each head is the safetensors header of the planned tensors: names, recipe dtypes, layout shapes, contiguous offsets, the metadata', () => {
    const plan = planMerge(spec(lerpAll));
    plan.outputs.forEach((out, i) => {
      const o = i % 2;
      const head = parseHead(out);
      expect(head.dataStart % 8).toBe(0);
      expect(head.metadata).toEqual({ format: 'pt', lambda: o === 0 ? '0.3' : '0.7' });
      const shard = A.shards[Math.floor(i / 2)].name;
      const inShard = A.names.filter((n) => A.tensors.get(n)!.shard === shard);
      expect(head.tensors.map((t) => t.name)).toEqual(inShard);
      let at = 0;
      for (const t of head.tensors) {
        const dtype = t.name === RAW ? 'I64' : OUT_DTYPE[o];
        expect(t.dtype).toBe(dtype);
        expect(t.shape).toEqual(A.tensors.get(t.name)!.shape);
        expect(t.begin).toBe(at);
        at = t.end;
        expect(t.end - t.begin).toBe(ELEMENTS.get(t.name)! * (dtype === 'I64' ? 8 : dtype === 'F32' ? 4 : 2));
      }
      expect(out.size).toBe(head.dataStart + at);
      expect(plan.models[o].shards[Math.floor(i / 2)].size).toBe(out.size);
    });
    expect(plan.bytesToWrite).toBe(plan.outputs.reduce((s, o) => s + o.size, 0));
  });

  test('every output byte is covered exactly once, by its head or by the dest of the tensor the header places there', () => {
    const plan = planMerge(spec(lerpAll));
    const names = A.names; // one job per tensor, in layout order
    expect(plan.jobs).toHaveLength(names.length);
    plan.outputs.forEach((out, o) => {
      const head = parseHead(out);
      let at = out.head.length;
      for (const w of writersOf(plan, o, names)) {
        expect(w.begin).toBe(at);
        const entry = head.tensors.find((t) => t.name === w.name)!;
        expect([w.begin, w.end]).toEqual([head.dataStart + entry.begin, head.dataStart + entry.end]);
        at = w.end;
      }
      expect(at).toBe(out.size);
    });
  });

  test('weight map and tensor bytes of each model', () => {
    const plan = planMerge(spec(lerpAll));
    for (const [o, m] of plan.models.entries()) {
      const weightMap = new Map(m.shards.flatMap((s) => s.names.map((n) => [n, s.name])));
      expect([...weightMap.keys()].sort()).toEqual([...A.names].sort());
      for (const n of A.names) expect(weightMap.get(n)).toBe(A.tensors.get(n)!.shard);
      const bytes = A.names.reduce((s, n) => s + ELEMENTS.get(n)! * (n === RAW ? 8 : OUT_DTYPE[o] === 'F32' ? 4 : 2), 0);
      expect(m.tensorBytes).toBe(bytes);
    }
  });
});

describe('planMerge: jobs', () => {
  test("sources: each input file listed once; a source is the tensor's absolute offset and native dtype in its checkpoint", () => {
    const plan = planMerge(spec(lerpAll));
    expect(new Set(plan.inputs).size).toBe(plan.inputs.length);
    plan.jobs.forEach((job, j) => {
      const name = A.names[j];
      const used = name === RAW ? [A] : [A, B];
      expect(job.sources).toHaveLength(used.length);
      job.sources.forEach((s, k) => {
        const loc = used[k].tensors.get(name)!;
        expect(plan.inputs[s.input]).toBe(loc.file);
        expect(s.offset).toBe(loc.offset);
        expect(s.dtype).toBe(name === RAW ? 'U8' : loc.dtype);
      });
    });
  });

  test("one dest per output model, each writing into that model's shard", () => {
    const plan = planMerge(spec(lerpAll));
    for (const [j, job] of plan.jobs.entries()) {
      expect(job.dests).toHaveLength(2);
      job.dests.forEach((d, o) => {
        expect(plan.outputs[d.output].path).toBe(path.join(root, `out${o}`, A.tensors.get(A.names[j])!.shard));
      });
    }
  });

  test('lerp dests carry λ and the recipe dtype; float elements are counted in elements', () => {
    const plan = planMerge(spec(lerpAll));
    for (const [j, job] of plan.jobs.entries()) {
      if (A.names[j] === RAW) continue;
      expect(job.count).toBe(ELEMENTS.get(A.names[j]));
      expect(job.dests.map((d) => [d.op, d.w, d.dtype])).toEqual([
        ['lerp', [0.3], 'BF16'],
        ['lerp', [0.7], 'F32'],
      ]);
    }
  });

  test('non-float tensors travel as raw bytes: U8 sources and dest, counted in bytes', () => {
    const plan = planMerge(spec(lerpAll));
    const job = plan.jobs[A.names.indexOf(RAW)];
    expect(job.count).toBe(8 * ELEMENTS.get(RAW)!);
    expect(job.sources.map((s) => s.dtype)).toEqual(['U8']);
    expect(job.dests.map((d) => [d.op, d.w, d.dtype])).toEqual([
      ['copy', [0], 'U8'],
      ['copy', [0], 'U8'],
    ]);
  });

  test("a copy names its model by position in the job's sources, which hold every model any output needs, in checkpoint order", () => {
    // Output 0 copies B (checkpoint 1); output 1 lerps A and B: sources [A, B], so the copy reads source 1.
    const plan = planMerge(
      spec((name, o) => (name === RAW ? lerpAll(name, o) : o === 0 ? { op: 'copy', models: [1], w: [0], dtype: 'BF16' } : lerpAll(name, o))),
    );
    const job = plan.jobs[A.names.indexOf('model.layers.0.self_attn.q_proj.weight')];
    expect(job.sources.map((s) => plan.inputs[s.input])).toEqual([A, B].map((c) => c.tensors.get('model.layers.0.self_attn.q_proj.weight')!.file));
    expect(job.dests.map((d) => [d.op, d.w, d.dtype])).toEqual([
      ['copy', [1], 'BF16'],
      ['lerp', [0.7], 'F32'],
    ]);
    // When every output copies B, B is the only source.
    const only = planMerge(spec((name, o) => (name === RAW ? lerpAll(name, o) : { op: 'copy', models: [1], w: [0], dtype: 'F16' })));
    const j2 = only.jobs[A.names.indexOf('model.layers.0.self_attn.q_proj.weight')];
    expect(j2.sources.map((s) => [only.inputs[s.input], s.dtype])).toEqual([[B.tensors.get('model.layers.0.self_attn.q_proj.weight')!.file, 'F16']]);
    expect(j2.dests.map((d) => [d.op, d.w, d.dtype])).toEqual([
      ['copy', [0], 'F16'],
      ['copy', [0], 'F16'],
    ]);
  });

  test('linear: one weight per source in checkpoint order, summed when the recipe names a model twice', () => {
    const plan = planMerge(spec((name, o) => (name === RAW ? lerpAll(name, o) : { op: 'linear', models: [2, 0, 2], w: [0.25, 0.5, 0.125], dtype: 'F32' })));
    const job = plan.jobs[1];
    expect(job.sources.map((s) => plan.inputs[s.input])).toEqual([A, C].map((c) => c.tensors.get(A.names[1])!.file));
    expect(job.dests.map((d) => [d.op, d.w])).toEqual([
      ['linear', [0.5, 0.375]],
      ['linear', [0.5, 0.375]],
    ]);
  });

  test('selection: a recipe that interpolates only the selected tensors gets lerp dests there and copies elsewhere', () => {
    const sel = parseSelection({ layers: '1', skipModules: 'attn' });
    const plan = planMerge(
      spec((name, o) =>
        name === RAW ? lerpAll(name, o) : isSelected(name, sel) ? lerpAll(name, o) : { op: 'copy', models: [0], w: [0], dtype: OUT_DTYPE[o] },
      ),
    );
    const ops = Object.fromEntries(plan.jobs.map((job, j) => [A.names[j], job.dests.map((d) => d.op).join(',')]));
    expect(ops).toEqual({
      'model.embed_tokens.weight': 'copy,copy',
      'model.layers.0.self_attn.q_proj.weight': 'copy,copy',
      'model.layers.0.mlp.up_proj.weight': 'copy,copy',
      'model.layers.1.self_attn.q_proj.weight': 'copy,copy',
      'model.layers.1.mlp.up_proj.weight': 'lerp,lerp',
      [RAW]: 'copy,copy',
    });
    // A copy that only A feeds reads only A, even when the dest converts it.
    expect(plan.jobs[0].sources).toHaveLength(1);
  });

  test('--part: only the chosen shards become outputs and jobs; models still list every shard, with `written`', () => {
    const second = A.shards[1].name;
    const full = planMerge(spec(lerpAll));
    const plan = planMerge(spec(lerpAll, { shardFilter: (s) => s === second }));
    expect(plan.outputs.map((o) => o.path)).toEqual([path.join(root, 'out0', second), path.join(root, 'out1', second)]);
    expect(plan.outputs).toEqual(full.outputs.slice(2));
    const inSecond = A.names.filter((n) => A.tensors.get(n)!.shard === second);
    expect(plan.jobs).toHaveLength(inSecond.length);
    expect(plan.jobs.map((j) => j.dests.map((d) => d.output))).toEqual(inSecond.map(() => [0, 1]));
    expect(plan.jobs.map((j) => j.dests.map((d) => d.offset))).toEqual(
      full.jobs.slice(A.names.length - inSecond.length).map((j) => j.dests.map((d) => d.offset)),
    );
    expect(plan.models.map((m) => m.shards.map((s) => s.written))).toEqual([
      [false, true],
      [false, true],
    ]);
    expect(plan.models).toEqual(full.models.map((m) => ({ ...m, shards: m.shards.map((s) => ({ ...s, written: s.name === second })) })));
    expect(plan.bytesToWrite).toBe(plan.outputs.reduce((s, o) => s + o.size, 0));
  });

  test("another model's layout: the outputs take its shard names and tensor order", () => {
    const plan = planMerge(spec(lerpAll, { layout: checkpointLayout(B) }));
    expect(plan.outputs.map((o) => path.basename(o.path))).toEqual(['model.safetensors', 'model.safetensors']);
    expect(parseHead(plan.outputs[0]).tensors.map((t) => t.name)).toEqual(B.names);
    expect(plan.models[0].indexed).toBe(false);
  });

  test('a layout of its own: shard names, tensor-to-shard assignment and order as given, sources still found by name', () => {
    const names = [...A.names].reverse();
    const tensor = (n: string) => ({ name: n, shape: A.tensors.get(n)!.shape, elementCount: ELEMENTS.get(n)! });
    const layout = {
      shards: [
        { name: 'first.safetensors', tensors: names.slice(0, 1).map(tensor) },
        { name: 'rest.safetensors', tensors: names.slice(1).map(tensor) },
      ],
      indexed: true,
    };
    const plan = planMerge(spec(lerpAll, { layout }));
    expect(plan.outputs.map((o) => path.relative(root, o.path))).toEqual([
      'out0/first.safetensors',
      'out1/first.safetensors',
      'out0/rest.safetensors',
      'out1/rest.safetensors',
    ]);
    expect(parseHead(plan.outputs[2]).tensors.map((t) => t.name)).toEqual(names.slice(1));
    expect(plan.models[1].shards.map((s) => [s.name, s.names])).toEqual([
      ['first.safetensors', names.slice(0, 1)],
      ['rest.safetensors', names.slice(1)],
    ]);
    plan.jobs.forEach((job, j) => expect(plan.inputs[job.sources[0].input]).toBe(A.tensors.get(names[j])!.file));
  });
});

describe('planMerge: errors', () => {
  test('a tensor missing from a checkpoint a recipe reads: ModelsDiffer naming the tensor and the folder', () => {
    const missing = { ...B, tensors: new Map([...B.tensors].filter(([n]) => n !== 'model.layers.1.mlp.up_proj.weight')) };
    let err: unknown;
    try {
      planMerge({ ...spec(lerpAll), checkpoints: [A, missing, C] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightmixError);
    expect((err as WeightmixError).code).toBe('ModelsDiffer');
    expect((err as Error).message).toBe(`tensor model.layers.1.mlp.up_proj.weight is missing from ${B.dir}`);
  });

  test('lerp must read exactly two models in checkpoint order (an internal error otherwise)', () => {
    expect(() => planMerge(spec((name, o) => (name === RAW ? lerpAll(name, o) : { op: 'lerp', models: [1, 0], w: [0.5], dtype: 'BF16' })))).toThrow(
      /^internal: lerp of model\.embed_tokens\.weight must read exactly two models/,
    );
    expect(() =>
      planMerge(
        spec((name, o) =>
          name === RAW
            ? lerpAll(name, o)
            : o === 0
              ? { op: 'lerp_mi', models: [0, 1], w: [0.5], dtype: 'BF16' }
              : { op: 'copy', models: [2], w: [0], dtype: 'BF16' },
        ),
      ),
    ).toThrow(/^internal: lerp_mi of model\.embed_tokens\.weight must read exactly two models/);
  });

  test('a sparse recipe without parameters is an internal error', () => {
    expect(() => planMerge(spec((name, o) => (name === RAW ? lerpAll(name, o) : { op: 'sparse', models: [0, 1], w: [], dtype: 'BF16' })))).toThrow(
      'internal: sparse recipe of model.embed_tokens.weight without parameters',
    );
  });
});

describe('checkCompatible', () => {
  const withTensors = (c: Checkpoint, edit: (m: Map<string, TensorLocation>) => void): Checkpoint => {
    const tensors = new Map(c.tensors);
    edit(tensors);
    return { ...c, tensors, names: [...tensors.keys()] };
  };
  const codeOf = (f: () => void): [string, string] => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(WeightmixError);
      return [(e as WeightmixError).code, (e as Error).message];
    }
    return ['none', ''];
  };

  test('the same names and shapes in any float dtypes and order are compatible', () => {
    expect(() => checkCompatible(A, B)).not.toThrow();
  });

  test('different tensors: ModelsDiffer listing what only one side has', () => {
    const fewer = withTensors(B, (m) => m.delete('model.layers.0.mlp.up_proj.weight'));
    expect(codeOf(() => checkCompatible(A, fewer))).toEqual([
      'ModelsDiffer',
      `the models hold different tensors: only in ${A.dir}: model.layers.0.mlp.up_proj.weight; only in ${B.dir}: none`,
    ]);
  });

  test('another shape: ShapeMismatch', () => {
    const n = 'model.layers.0.mlp.up_proj.weight';
    const other = withTensors(B, (m) => m.set(n, { ...m.get(n)!, shape: [3, 5] }));
    expect(codeOf(() => checkCompatible(A, other))).toEqual(['ShapeMismatch', `tensor ${n} has shape [5,3] in ${A.dir} but [3,5] in ${B.dir}`]);
  });

  test('a non-float tensor against another dtype: DtypeMismatch', () => {
    const other = withTensors(B, (m) => m.set(RAW, { ...m.get(RAW)!, dtype: 'I32' }));
    expect(codeOf(() => checkCompatible(A, other))).toEqual(['DtypeMismatch', `tensor ${RAW} is I64 in ${A.dir} but I32 in ${B.dir}`]);
  });
});
