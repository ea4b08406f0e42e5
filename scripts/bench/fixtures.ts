/**
 * Cached benchmark fixtures: each pair is generated once into `<work>/<key>/` and reused while its
 * `fixture.json` stamp matches the options (generation of the 2 × 8 GB pair takes minutes).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCheckpointPair, type CheckpointPairOptions, type FixtureNoise } from '../../lib/fixtures/fixture';
import { elementCount, listModelTensors, resolveModelShape, type FixtureShapeName } from '../../lib/fixtures/model-shapes';

export interface PairSpec {
  /** Short name used in tables. */
  label: string;
  shape: FixtureShapeName;
  scale: number;
  layers?: number;
  shards?: [number, number];
  seed: number;
  /** The fixture's noise and distance where not its defaults (ulps, 0.027). */
  noise?: FixtureNoise;
  delta?: number;
}

export interface CachedPair {
  spec: PairSpec;
  dir: string;
  instruct: string;
  thinking: string;
  tensors: number;
  bytesPerModel: number;
  /** Every shard file of both models (what a cold read must read). */
  files: string[];
  /** Bytes of all shard files of one model (tensor data + headers) = bytes an interpolation writes. */
  fileBytesPerModel: number;
  generatedSeconds: number | null;
}

export function pairKey(spec: PairSpec): string {
  const shards = spec.shards ? `-sh${spec.shards.join('x')}` : '';
  const noise = spec.noise ? `-${spec.noise}` : '';
  const delta = spec.delta !== undefined ? `-d${spec.delta}` : '';
  return `${spec.shape}-s${spec.scale}${spec.layers ? `-l${spec.layers}` : ''}${shards}${noise}${delta}-seed${spec.seed}`;
}

/** Tensor count and tensor-data bytes per model (bf16) without writing anything. */
export function pairSize(spec: PairSpec): { tensors: number; bytes: number } {
  const shape = resolveModelShape(spec.shape, { scale: spec.scale, layers: spec.layers });
  const tensors = listModelTensors(shape);
  return { tensors: tensors.length, bytes: tensors.reduce((n, t) => n + 2 * elementCount(t.shape), 0) };
}

function shardFiles(folder: string): string[] {
  return fs
    .readdirSync(folder)
    .filter((f) => f.endsWith('.safetensors'))
    .sort()
    .map((f) => path.join(folder, f));
}

export async function ensurePair(work: string, spec: PairSpec, log: (line: string) => void): Promise<CachedPair> {
  const dir = path.join(work, pairKey(spec));
  const stampPath = path.join(dir, 'fixture.json');
  const options: Omit<CheckpointPairOptions, 'dir'> = {
    shape: spec.shape,
    scale: spec.scale,
    layers: spec.layers,
    shards: spec.shards,
    seed: spec.seed,
    noise: spec.noise,
    delta: spec.delta,
  };
  let generatedSeconds: number | null = null;
  let stamp: { options?: unknown; tensors?: number; bytesPerModel?: number } | null = null;
  try {
    stamp = JSON.parse(fs.readFileSync(stampPath, 'utf8'));
  } catch {
    stamp = null;
  }
  if (!stamp || JSON.stringify(stamp.options) !== JSON.stringify(options)) {
    const size = pairSize(spec);
    log(`generating ${spec.label} pair (${size.tensors} tensors, 2 × ${(size.bytes / 1e9).toFixed(2)} GB) in ${dir}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const t0 = process.hrtime.bigint();
    const pair = await makeCheckpointPair({ dir, ...options, overwrite: true });
    generatedSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    stamp = { options, tensors: pair.tensors, bytesPerModel: pair.bytesPerModel };
    fs.writeFileSync(stampPath, JSON.stringify({ ...stamp, generatedSeconds }, null, 2));
    log(`  generated in ${generatedSeconds.toFixed(1)} s`);
  } else {
    log(`reusing ${spec.label} pair in ${dir}`);
  }
  const instruct = path.join(dir, 'instruct');
  const thinking = path.join(dir, 'thinking');
  const iFiles = shardFiles(instruct);
  const files = [...iFiles, ...shardFiles(thinking)];
  return {
    spec,
    dir,
    instruct,
    thinking,
    tensors: stamp.tensors!,
    bytesPerModel: stamp.bytesPerModel!,
    files,
    fileBytesPerModel: iFiles.reduce((n, f) => n + fs.statSync(f).size, 0),
    generatedSeconds,
  };
}
