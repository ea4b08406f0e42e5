/**
 * `npm run fuzz`: long fuzzing runs, beyond what CI affords.
 *
 *  1. suites: every jest suite that reads WEIGHTMIX_FUZZ_RUNS (the fast-check properties of the
 *     safetensors parser, the strict JSON parser, verify's numerics), with that many runs per property.
 *  2. checkpoints: random mutations of a tiny model's shard headers, index and files, opened with
 *     openCheckpoint and, when that succeeds, merged with the unmutated Thinking model and the result
 *     verified by recomputing every element. Only a WeightmixError may come out, and a merge that
 *     succeeds must verify. A case that breaks this is saved as a model folder under
 *     test/corpus/checkpoints/ (with a CASE.json saying what was done and what went wrong), and
 *     test/reliability/fuzz-checkpoints.test.ts replays the corpus in CI.
 *
 *   npm run fuzz                          both, WEIGHTMIX_FUZZ_RUNS=20000 per property, 3000 checkpoints
 *   npm run fuzz -- --only checkpoints    WEIGHTMIX_FUZZ_SEED=N replays a run
 *
 * The parsers are TypeScript, but for native/json_tables.cc, the addon's fast reader of headers and
 * indexes: it only vouches for a strict subset, and test/json-tables.test.ts (a suite of part 1)
 * compares it with the TypeScript readers; mutated checkpoints reach it here as they reach the
 * engine, through plans, and under the sanitizers by check-sanitizers.sh.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openCheckpoint } from '../lib/model/checkpoint';
import { isWeightmixError } from '../lib/errors';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { interpolate } from '../lib/interpolation/interpolate';
import { verify } from '../lib/analysis/verify';

const ROOT = path.resolve(__dirname, '..');
export const CHECKPOINT_CORPUS = path.join(ROOT, 'test', 'corpus', 'checkpoints');
const INDEX = 'model.safetensors.index.json';

/** A small, seedable generator (mulberry32): the same seed replays the same mutations. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const NAMES = [
  '../x.safetensors',
  '/etc/passwd',
  '',
  '.',
  '..',
  'a/b.safetensors',
  'model-00009-of-00009.safetensors',
  INDEX,
  'config.json',
  'x\u0000y',
  'é.safetensors',
  'a'.repeat(5000),
  'model-00001-of-00002.safetensors',
  'model-00002-of-00002.safetensors',
];
const DTYPES = ['F32', 'F16', 'BF16', 'I64', 'I32', 'U8', 'BOOL', 'F8_E4M3', 'F4', 'F6_E2M3', 'F64', 'C64', 'X', 'bf16'];
const NUMBERS = [0, 1, 2, 3, 7, 64, 4096, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53 - 1, -1, 0.5];
const JSON_VALUES = ['null', '[]', '{}', '"x"', '1', '-1', '1e400', '9007199254740993', 'true', '[[[[[[[[[[[]]]]]]]]]]]'];

interface Model {
  /** File name → bytes, for the files a mutation may change. */
  files: Map<string, Buffer>;
}

type Header = Record<string, Record<string, unknown>>;

/**
 * The shard's header and data, where its header is one the structured mutations can edit: an object of tensor entries, each
 * with a shape of numbers and two numeric data offsets (an earlier step may have left valid JSON that is none, which then
 * gets byte-level mutations only).
 */
function splitShard(bytes: Buffer): { header: Header; data: Buffer } | null {
  if (bytes.length < 8) return null;
  const n = Number(bytes.readBigUInt64LE(0));
  if (8 + n > bytes.length) return null;
  let header: unknown;
  try {
    header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  } catch {
    return null;
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return null;
  const entries = Object.entries(header as Record<string, unknown>).filter(([k]) => k !== '__metadata__');
  if (entries.length === 0 || !entries.every(([, v]) => editableEntry(v))) return null;
  return { header: header as Header, data: bytes.subarray(8 + n) };
}

function editableEntry(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const { shape, data_offsets: offsets } = v as Record<string, unknown>;
  return (
    Array.isArray(shape) &&
    shape.every((d) => typeof d === 'number') &&
    Array.isArray(offsets) &&
    offsets.length === 2 &&
    offsets.every((o) => typeof o === 'number')
  );
}

function joinShard(header: Header, data: Buffer): Buffer {
  const text = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([prefix, text, data]);
}

/** Makes the data section as long as the (possibly edited) header says, so later checks are reached. */
function fitData(header: Header, data: Buffer): Buffer {
  let end = 0;
  for (const [k, v] of Object.entries(header)) {
    const offsets = k !== '__metadata__' && Array.isArray(v?.data_offsets) ? (v.data_offsets as unknown[]) : null;
    if (offsets && typeof offsets[1] === 'number' && Number.isSafeInteger(offsets[1])) end = Math.max(end, offsets[1]);
  }
  if (end > 64 << 20) return data;
  return end <= data.length ? data.subarray(0, end) : Buffer.concat([data, Buffer.alloc(end - data.length)]);
}

/** One random mutation of the model's files; returns what it did, in words. */
function mutate(model: Model, rng: Rng): string {
  const shards = [...model.files.keys()].filter((f) => f.endsWith('.safetensors'));
  const roll = rng.next();
  if (roll < 0.3 && model.files.has(INDEX)) return mutateIndex(model, rng);
  if (roll < 0.92) {
    const shard = rng.pick(shards);
    return `${shard}: ${mutateShard(model, shard, rng)}`;
  }
  const victim = rng.pick([...model.files.keys()]);
  switch (rng.int(3)) {
    case 0:
      model.files.delete(victim);
      return `removed ${victim}`;
    case 1:
      model.files.set(victim, Buffer.alloc(0));
      return `emptied ${victim}`;
    default:
      model.files.set('config.json', Buffer.from(rng.pick(['{"num_hidden_layers": 1e9}', '{"num_hidden_layers": -3}', '[', '{"torch_dtype": {}}', 'null'])));
      return 'rewrote config.json';
  }
}

function mutateIndex(model: Model, rng: Rng): string {
  const text = model.files.get(INDEX)!.toString('utf8');
  let doc: { metadata?: Record<string, unknown>; weight_map: Record<string, unknown> };
  try {
    doc = JSON.parse(text);
  } catch {
    return 'index already broken';
  }
  // An earlier step of the case may have left valid JSON that is no index (null, or a weight_map that is no object, or empty).
  const map: unknown = typeof doc === 'object' && doc !== null ? doc.weight_map : undefined;
  if (typeof map !== 'object' || map === null || Object.keys(map).length === 0) return 'index already not an index';
  const names = Object.keys(map);
  const name = rng.pick(names);
  let what: string;
  switch (rng.int(6)) {
    case 0:
      doc.weight_map[name] = rng.pick(NAMES);
      what = `weight_map[${name}] = ${JSON.stringify(doc.weight_map[name]).slice(0, 60)}`;
      break;
    case 1:
      delete doc.weight_map[name];
      what = `deleted weight_map[${name}]`;
      break;
    case 2:
      doc.weight_map[`${name}.extra`] = rng.pick(NAMES.slice(-2));
      what = `added weight_map[${name}.extra]`;
      break;
    case 3:
      doc.metadata = { total_size: rng.pick(NUMBERS) };
      what = `total_size = ${doc.metadata.total_size}`;
      break;
    case 4: {
      const out = JSON.stringify(doc);
      const at = rng.int(out.length);
      const token = rng.pick(JSON_VALUES);
      model.files.set(INDEX, Buffer.from(out.slice(0, at) + token + out.slice(at + rng.int(4))));
      return `index: token ${token} at ${at}`;
    }
    default: {
      const bytes = Buffer.from(text);
      const at = rng.int(bytes.length);
      bytes[at] = rng.int(256);
      model.files.set(INDEX, bytes);
      return `index: byte ${at} set`;
    }
  }
  model.files.set(INDEX, Buffer.from(JSON.stringify(doc)));
  return `index: ${what}`;
}

function mutateShard(model: Model, shard: string, rng: Rng): string {
  const bytes = model.files.get(shard)!;
  const split = splitShard(bytes);
  const kind = rng.int(split ? 10 : 3);
  if (kind === 0) {
    const copy = Buffer.from(bytes);
    const at = rng.int(Math.min(copy.length, 8 + 4096));
    copy[at] = rng.int(256);
    model.files.set(shard, copy);
    return `byte ${at} set`;
  }
  if (kind === 1) {
    const at = rng.int(bytes.length + 1);
    model.files.set(shard, bytes.subarray(0, at));
    return `truncated at ${at}`;
  }
  if (kind === 2) {
    const copy = Buffer.concat([bytes, Buffer.alloc(Math.max(0, 8 - bytes.length))]);
    const value = rng.pick([0n, 1n, 2n ** 64n - 1n, BigInt(bytes.length), BigInt(rng.int(bytes.length)), 100_000_001n]);
    copy.writeBigUInt64LE(value, 0);
    model.files.set(shard, copy);
    return `length prefix = ${value}`;
  }
  const { header, data } = split!;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = rng.pick(names);
  const entry = header[name];
  let what: string;
  switch (kind) {
    case 3:
      entry.dtype = rng.pick(DTYPES);
      what = `${name}.dtype = ${entry.dtype}`;
      break;
    case 4: {
      const shape = [...(entry.shape as number[])];
      if (rng.chance(0.3) || shape.length === 0) shape.push(rng.pick([1, 2, 0]));
      else shape[rng.int(shape.length)] = rng.chance(0.5) ? rng.pick(NUMBERS) : shape[0] + rng.int(5) - 2;
      entry.shape = shape;
      what = `${name}.shape = [${shape}]`;
      break;
    }
    case 5: {
      const offsets = [...(entry.data_offsets as number[])];
      offsets[rng.int(2)] += rng.chance(0.5) ? rng.int(9) - 4 : rng.pick(NUMBERS);
      entry.data_offsets = offsets;
      what = `${name}.data_offsets = [${offsets}]`;
      break;
    }
    case 6: {
      // A consistent re-typing: another float dtype with the shape and offsets that fit it.
      const dtype = rng.pick(['F32', 'F16', 'BF16', 'U8', 'I64']);
      const size = { F32: 4, F16: 2, BF16: 2, U8: 1, I64: 8 }[dtype]!;
      let at = 0;
      for (const n of names.sort((x, y) => (header[x].data_offsets as number[])[0] - (header[y].data_offsets as number[])[0])) {
        const count = (header[n].shape as number[]).reduce((a, b) => a * b, 1);
        const bytesOf = n === name ? count * size : (header[n].data_offsets as number[])[1] - (header[n].data_offsets as number[])[0];
        if (n === name) header[n].dtype = dtype;
        header[n].data_offsets = [at, at + bytesOf];
        at += bytesOf;
      }
      what = `${name} re-typed ${dtype} with a consistent layout`;
      break;
    }
    case 7: {
      const other = rng.pick(names);
      header[other === name ? `${name}.copy` : other] = { ...entry };
      what = `${name} duplicated onto ${other}`;
      break;
    }
    case 8:
      delete header[name];
      what = `${name} removed`;
      break;
    default:
      header.__metadata__ = rng.chance(0.5)
        ? { weightmix: rng.pick(['{', '{"method":"interpolate"}', 'x']) }
        : ({ format: 1 } as unknown as Record<string, unknown>);
      what = '__metadata__ replaced';
  }
  model.files.set(shard, joinShard(header, rng.chance(0.7) ? fitData(header, data) : data));
  return what;
}

export interface FuzzResult {
  runs: number;
  /** Saved or reported failures, one line each. */
  failures: string[];
  /** How the cases ended: rejected at open, rejected at merge, merged and verified. */
  outcomes: { rejectedAtOpen: number; rejectedAtMerge: number; merged: number };
}

export interface CheckpointFuzzOptions {
  runs: number;
  seed: number;
  /** The first case's number (default 0): cases first .. first + runs - 1 of the seed's sequence, each the same case as in a run from 0. */
  first?: number;
  /** Scratch folder (removed at the end unless a case crashed the process). */
  work: string;
  /** Where failing cases are saved; null: only report them. */
  saveDir: string | null;
  /** Merge (and verify) the cases that open. */
  merge: boolean;
  log?: (line: string) => void;
}

/** Checkpoint-level fuzzing (see the file comment). */
export async function fuzzCheckpoints(o: CheckpointFuzzOptions): Promise<FuzzResult> {
  fs.mkdirSync(o.work, { recursive: true });
  const pairDir = path.join(o.work, 'pair');
  const pair = fs.existsSync(path.join(pairDir, 'thinking'))
    ? { instruct: path.join(pairDir, 'instruct'), thinking: path.join(pairDir, 'thinking') }
    : await makeCheckpointPair({ dir: pairDir, shape: 'tiny', shards: [2, 1], seed: 5, layers: 2 });
  const original = new Map(fs.readdirSync(pair.instruct).map((f) => [f, fs.readFileSync(path.join(pair.instruct, f))]));
  const result: FuzzResult = { runs: 0, failures: [], outcomes: { rejectedAtOpen: 0, rejectedAtMerge: 0, merged: 0 } };
  const current = path.join(o.work, 'current.json');

  for (let i = o.first ?? 0; i < (o.first ?? 0) + o.runs; i++) {
    const rng = new Rng((o.seed * 0x9e3779b1 + i) >>> 0);
    const model: Model = { files: new Map(original) };
    const steps = Array.from({ length: 1 + rng.int(3) }, () => mutate(model, rng));
    const dir = path.join(o.work, `case-${i}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir);
    for (const [name, bytes] of model.files) fs.writeFileSync(path.join(dir, name), bytes);
    // Written before the case runs: a crash of the process leaves it for the next run to save.
    fs.writeFileSync(current, JSON.stringify({ seed: o.seed, run: i, steps, dir }));
    const fail = (what: string, e: unknown) => {
      const line = `seed ${o.seed} run ${i}: ${what}: ${e instanceof Error ? e.stack?.split('\n').slice(0, 3).join(' | ') : String(e)} [${steps.join('; ')}]`;
      result.failures.push(line);
      o.log?.(`FAIL ${line}`);
      if (o.saveDir) saveCase(dir, o.saveDir, `seed${o.seed}-run${i}`, { seed: o.seed, run: i, steps, failure: line });
    };
    try {
      await openCheckpoint(dir);
    } catch (e) {
      if (isWeightmixError(e)) result.outcomes.rejectedAtOpen++;
      else fail('openCheckpoint threw a non-WeightmixError', e);
      finishCase(dir, current);
      result.runs++;
      continue;
    }
    if (o.merge) {
      const out = path.join(o.work, `out-${i}`);
      try {
        await interpolate({ instruct: dir, thinking: pair.thinking, lambda: 0.7, output: out, threads: 2 });
        const report = await verify({ dir: out, recompute: true, samples: 'all' });
        if (report.ok) result.outcomes.merged++;
        else fail('the merge succeeded but does not verify', new Error(report.problems[0].message));
      } catch (e) {
        if (isWeightmixError(e)) result.outcomes.rejectedAtMerge++;
        else fail('the merge threw a non-WeightmixError', e);
      }
      fs.rmSync(out, { recursive: true, force: true });
      for (const left of fs.readdirSync(o.work).filter((f) => f.startsWith(`.out-${i}.`))) {
        fail('the merge left something beside its output', new Error(left));
        fs.rmSync(path.join(o.work, left), { recursive: true, force: true });
      }
    }
    finishCase(dir, current);
    result.runs++;
  }
  return result;
}

function finishCase(dir: string, current: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(current, { force: true });
}

function saveCase(dir: string, saveDir: string, name: string, info: Record<string, unknown>): void {
  const dest = path.join(saveDir, name);
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  for (const f of fs.readdirSync(dir)) {
    const st = fs.lstatSync(path.join(dir, f));
    if (st.isFile()) fs.copyFileSync(path.join(dir, f), path.join(dest, f));
  }
  fs.writeFileSync(path.join(dest, 'CASE.json'), `${JSON.stringify(info, null, 2)}\n`);
}

/** A case left by a run that crashed (a native fault ends the process before it can save). */
function rescueCrashedCase(work: string, saveDir: string): void {
  const current = path.join(work, 'current.json');
  if (!fs.existsSync(current)) return;
  const info = JSON.parse(fs.readFileSync(current, 'utf8')) as { seed: number; run: number; dir: string; steps: string[] };
  if (fs.existsSync(info.dir)) {
    saveCase(info.dir, saveDir, `seed${info.seed}-run${info.run}-crash`, { ...info, failure: 'the process died on this case' });
    console.log(`saved a case that crashed the previous run: test/corpus/checkpoints/seed${info.seed}-run${info.run}-crash`);
  }
  fs.rmSync(current, { force: true });
}

function runSuites(runs: number, seed: number | undefined): boolean {
  const suites = fs
    .readdirSync(path.join(ROOT, 'test'), { recursive: true, withFileTypes: false })
    .map(String)
    .filter((f) => f.endsWith('.test.ts') && fs.readFileSync(path.join(ROOT, 'test', f), 'utf8').includes('WEIGHTMIX_FUZZ_RUNS'))
    .map((f) => path.join('test', f));
  console.log(`== fast-check suites (${runs} runs per property): ${suites.join(' ')}`);
  const env = { ...process.env, WEIGHTMIX_FUZZ_RUNS: String(runs), ...(seed !== undefined ? { WEIGHTMIX_FUZZ_SEED: String(seed) } : {}) };
  const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js'), '--runInBand', '--testTimeout', '3600000', ...suites], {
    cwd: ROOT,
    env,
    stdio: 'inherit',
  });
  return r.status === 0;
}

async function main(): Promise<number> {
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
  const propertyRuns = Number(process.env.WEIGHTMIX_FUZZ_RUNS ?? 20_000);
  const seedEnv = process.env.WEIGHTMIX_FUZZ_SEED;
  const seed = seedEnv !== undefined ? Number(seedEnv) : Date.now() % 2 ** 31;
  let ok = true;
  if (only === undefined || only === 'suites') ok = runSuites(propertyRuns, seedEnv !== undefined ? seed : undefined) && ok;
  if (only === undefined || only === 'checkpoints') {
    const runs = Number(process.env.WEIGHTMIX_FUZZ_CHECKPOINTS ?? 3000);
    const work = path.join(os.tmpdir(), 'weightmix-fuzz-checkpoints');
    rescueCrashedCase(work, CHECKPOINT_CORPUS);
    console.log(`== checkpoint mutations: ${runs} cases, seed ${seed} (replay: WEIGHTMIX_FUZZ_SEED=${seed})`);
    const started = Date.now();
    const r = await fuzzCheckpoints({ runs, seed, work, saveDir: CHECKPOINT_CORPUS, merge: true, log: (l) => console.log(l) });
    console.log(
      `${r.runs} cases in ${((Date.now() - started) / 1000).toFixed(1)} s: ${r.outcomes.rejectedAtOpen} rejected when opened, ` +
        `${r.outcomes.rejectedAtMerge} rejected when merged, ${r.outcomes.merged} merged and verified; ${r.failures.length} failures` +
        (r.failures.length ? ` (saved under ${path.relative(ROOT, CHECKPOINT_CORPUS)}/)` : ''),
    );
    ok = r.failures.length === 0 && ok;
    fs.rmSync(work, { recursive: true, force: true });
  }
  return ok ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => (process.exitCode = code),
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
