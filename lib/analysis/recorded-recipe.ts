/** The recipe a weightmix output records in every shard's `__metadata__.weightmix`: its types, reading it back, and its selection. */
import * as path from 'node:path';
import { Checkpoint } from '../model/checkpoint';
import { WeightmixError } from '../errors';
import { parseJsonStrict } from '../format/json-strict';
import { parseSelection, Selection } from '../model/selection';
import type { WeightmixErrorCode } from '../error-codes';
import { MERGE_METHOD_NAMES, type MergeMethodName } from '../merge-method-names';

/** What `interpolate` and `sweep` record in each shard's `__metadata__.weightmix`. */
export interface InterpolationRecipe {
  /** Always 'interpolate' (a sweep records one per model). */
  method: 'interpolate';
  /** The model's λ. */
  lambda: number;
  /** The numerics it was computed with. */
  numerics: 'exact' | 'mi';
  /** The selection in words ("all tensors", "layers 12-35, modules attn"). */
  selection: string;
  /** The Instruct model folder (absolute). */
  instruct: string;
  /** The Thinking model folder (absolute). */
  thinking: string;
  /** The weightmix version that wrote it. */
  weightmix: string;
}

/** What `merge` records: the method and the mergekit recipe as read. */
export interface MergeRecipeRecord {
  /** The recipe's `merge_method`. */
  method: MergeMethodName;
  /** The recipe document as `merge` read it (YAML parsed to JSON). */
  recipe: unknown;
  /** The weightmix version that wrote it. */
  weightmix: string;
}

/** A recorded recipe, narrowed by `method`: `'interpolate'` for interpolate and sweep outputs, a merge method name for merge outputs. */
export type RecordedRecipe = InterpolationRecipe | MergeRecipeRecord;

/** The recipe every shard records; differences and malformed records are reported as problems. */
export function readRecordedRecipe(model: Checkpoint, report: (code: WeightmixErrorCode, message: string) => void): RecordedRecipe | null {
  const texts = model.shards.map((s) => s.header.metadata?.weightmix);
  const recorded = texts.filter((t): t is string => typeof t === 'string');
  if (recorded.length === 0) return null;
  const missing = model.shards.filter((_, i) => typeof texts[i] !== 'string');
  if (missing.length > 0) report('InvalidRecipe', `${missing[0].path}: no weightmix recipe, unlike ${recorded.length} other shard(s)`);
  const distinct = [...new Set(recorded)];
  if (distinct.length > 1) report('InvalidRecipe', `${model.dir}: the shards record ${distinct.length} different recipes`);
  const where = model.shards[texts.indexOf(distinct[0])].path;
  let doc: unknown;
  try {
    doc = parseJsonStrict(distinct[0], { what: `${where}: __metadata__.weightmix` });
  } catch (e) {
    if (!(e instanceof WeightmixError)) throw e;
    report(e.code, e.message);
    return null;
  }
  const r = doc as Record<string, unknown>;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || typeof r.method !== 'string' || typeof r.weightmix !== 'string') {
    report('InvalidRecipe', `${where}: __metadata__.weightmix is not a recipe (an object with "method" and "weightmix")`);
    return null;
  }
  if (r.method === 'interpolate') {
    const bad = [
      typeof r.lambda !== 'number' && 'lambda',
      r.numerics !== 'exact' && r.numerics !== 'mi' && 'numerics',
      typeof r.selection !== 'string' && 'selection',
      (typeof r.instruct !== 'string' || !path.isAbsolute(r.instruct)) && 'instruct',
      (typeof r.thinking !== 'string' || !path.isAbsolute(r.thinking)) && 'thinking',
    ].filter(Boolean);
    if (bad.length > 0) {
      report('InvalidRecipe', `${where}: the interpolation recipe has no valid ${bad.join(', ')}`);
      return null;
    }
  } else if (!(MERGE_METHOD_NAMES as readonly string[]).includes(r.method)) {
    report(
      'InvalidRecipe',
      `${where}: the recorded method ${JSON.stringify(r.method)} is none that this weightmix writes (interpolate, ${MERGE_METHOD_NAMES.join(', ')})`,
    );
    return null;
  }
  return r as unknown as RecordedRecipe;
}

/** The inverse of describeSelection: "all tensors" | "all layers" (older outputs: "all tensors" with modules) | "layers 12-35", then ", modules a,b" or ", except modules a,b". */
export function selectionFromDescription(text: string): Selection {
  const parts = text.split(', ');
  const input: { layers?: string; modules?: string; skipModules?: string } = {};
  const first = parts.shift();
  if (first !== 'all tensors' && first !== 'all layers') {
    if (!first?.startsWith('layers ')) throw new WeightmixError('InvalidRecipe', `unknown selection "${text}"`);
    input.layers = first.slice('layers '.length);
  }
  for (const p of parts) {
    if (p.startsWith('modules ')) input.modules = p.slice('modules '.length);
    else if (p.startsWith('except modules ')) input.skipModules = p.slice('except modules '.length);
    else throw new WeightmixError('InvalidRecipe', `unknown selection "${text}"`);
  }
  try {
    return parseSelection(input);
  } catch (e) {
    throw new WeightmixError('InvalidRecipe', `selection "${text}": ${(e as Error).message}`);
  }
}
