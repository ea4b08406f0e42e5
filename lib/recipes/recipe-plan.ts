/**
 * Recipe planning, pure: from a parsed recipe and its opened models to every output tensor's sources,
 * the output's shard layout, the moments the method needs, and (given those moments) each tensor's
 * recipe for the engine's planner. Nothing here reads tensor data or writes files (merge-recipe.ts does).
 */
import { Checkpoint, layerCount, TensorLocation } from '../model/checkpoint';
import { WeightmixError } from '../errors';
import type { TensorRecipe } from '../engine/plan';
import type { OpenMoments } from '../engine/open-moments';
import { checkpointLayout, LayoutTensor, OutputLayout } from '../engine/output-layout';
import { checkCoefficients, methodFor, MethodTensor, PairMoments, TensorCoefficients } from './methods';
import { baseOf, loneSource } from './methods/method';
import type { Recipe, RecipeSlice } from './recipe';
import { ParameterMap, ParameterScope, slicePosition } from './recipe-params';
import { isFloatDtype, nativeDtype, SafetensorsDtype } from '../format/dtypes';
import { shardFileName } from '../format/shard-file-name';
import { indexBits, localStatistics, maskKey, type SparseTensor } from './sparsify';
import type { RamPlusTensor } from './ram-counts';
import type { DellaRescaleTensor } from './della-rescale';
import type { SceTensor } from './sce-statistics';
import type { ArceeFusionTensor } from './arcee-fusion-statistics';
import type { RowWiseTensor } from './row-wise';
import { classifyTensor } from '../model/tensor-names';
import { layerNamesOf, towerPositions } from '../model/layer-names';
import { tensorOutputDtype } from './output-dtype';
import { firstRows, isEmbeddingMatrix, planVocabulary, VocabularyPlan } from './tokenizer-source';
import { refuseDroppedLayerTensors, refuseDroppedOutsideTensors, refuseVocabularyMismatch } from './plan-refusals';
import { tiedHead, tiedHint } from './tied-head';

/** One output tensor: where its data comes from and how its parameters are looked up. */
export interface OutputTensor {
  name: string;
  /** Recipe model index → the source tensor's name in that model, in source order. */
  sources: { model: number; name: string }[];
  scope: ParameterScope;
  /** Its base model: its slice's base_model, else the recipe's (null: none). */
  base: number | null;
  /** Output layer, or null outside the decoder layers. */
  layer: number | null;
}

/** Two recipe models' copies of one output tensor, whose moments the method asks for. */
export interface MomentPair {
  tensor: string;
  a: number;
  b: number;
}

export interface RecipePlan {
  /** Every output tensor, in output order. */
  tensors: OutputTensor[];
  /** Decoder layers of the output. */
  layers: number;
  /** Per output layer: the model and layer its config entries (layer_types) come from. */
  layerSources: { model: number; layer: number }[];
  /** Per recipe model: output tensor name → that model's source tensor. */
  views: Map<string, TensorLocation>[];
  layout: OutputLayout;
  /** The float tensors the method decides (the others are copied from their first source), by output name. */
  methodTensors: Map<string, Omit<MethodTensor, 'moments' | 'notice'>>;
  /** Each pair once, in output order: the input of the moments pass (slerp angles, model_stock cosines). */
  momentPairs: MomentPair[];
  /** With tokenizer_source or a tokenizer block: the rows of embed_tokens and lm_head; else null. */
  vocabRows: number | null;
  /** The output vocabulary (null without those keys). */
  vocabulary: VocabularyPlan | null;
}

/** mergekit's default maximum shard size (5 billion bytes). */
const MAX_SHARD_BYTES = 5e9;
// The layer number as tensor-names.ts reads one: no leading zero.
const LAYER_NUMBER = /^(.*?(?:layers|h)\.)(0|[1-9]\d*)(\..+)$/;

export function renameLayer(name: string, layer: number): string {
  const m = LAYER_NUMBER.exec(name);
  if (!m) throw new Error(`internal: ${name} has no layer number`);
  return `${m[1]}${layer}${m[3]}`;
}

function modelLayers(ckpt: Checkpoint): number {
  return layerCount(ckpt, (n) => classifyTensor(n).layer);
}

/** The model whose non-layer tensor names, shards and order the output follows. */
export function layoutModel(recipe: Recipe): number {
  return recipe.base ?? recipe.slices[0].sources[0].model;
}

/** Every output tensor of the recipe, in output order: embeddings, the decoder layers slice by slice, the rest. */
export function planOutputTensors(
  recipe: Recipe,
  ckpts: Checkpoint[],
): { tensors: OutputTensor[]; layers: number; layerSources: { model: number; layer: number }[] } {
  const method = methodFor(recipe.method);
  // mergekit's models: form adds an unlisted base_model as a source of every method (plan.py normalize_config; passthrough refuses
  // it). Its slices: form gathers a slice's sources alone: a method that can do without a base never sees an unlisted one there, one
  // that needs it reads it anyway, but a lone source is copied by a loneSourceCopied method (its task returns it before the base).
  const methodUsesBase = method.name !== 'passthrough' && (recipe.form === 'models' || method.needsBase !== undefined);
  const readsBase = (slice: RecipeSlice) => methodUsesBase && !(method.loneSourceCopied && loneSource(recipe, slice));
  const label = (m: number) => recipe.modelNames[m];
  const layerNames = layerNamesOf(ckpts);
  const layerTensors: OutputTensor[] = [];
  const layerSources: { model: number; layer: number }[] = [];
  let outLayer = 0;
  recipe.slices.forEach((slice, si) => {
    const first = slice.sources[0];
    const ranges = slice.sources.map((s) => {
      if (s.layerRange) return s.layerRange;
      return [0, modelLayers(ckpts[s.model])] as [number, number];
    });
    const count = ranges[0][1] - ranges[0][0];
    slice.sources.forEach((s, k) => {
      const have = modelLayers(ckpts[s.model]);
      if (ranges[k][1] - ranges[k][0] !== count) {
        throw new WeightmixError(
          'ModelsDiffer',
          `${label(s.model)} has ${have} layers but ${label(first.model)} has ${count}; the models: form needs equal depths`,
        );
      }
      if (ranges[k][1] > have)
        throw new WeightmixError('InvalidRecipe', `slices[${si}]: layer_range [${ranges[k]}] goes past the ${have} layers of ${label(s.model)}`);
    });
    const members = slice.sources.map((s, k) => ({ model: s.model, start: ranges[k][0] }));
    const base = baseOf(recipe, slice);
    if (readsBase(slice) && base !== null && !members.some((m) => m.model === base)) members.push({ model: base, start: ranges[0][0] });
    const modelParams = new Map<number, ParameterMap>(slice.sources.map((s) => [s.model, s.parameters]));
    const sliceParams = slice.parameters;
    for (let i = 0; i < count; i++) {
      const srcLayer = ranges[0][0] + i;
      const template = layerNames(first.model, srcLayer);
      if (template.length === 0) throw new WeightmixError('ModelsDiffer', `${label(first.model)} has no tensors in layer ${srcLayer}`);
      refuseDroppedLayerTensors(template, srcLayer, members, i, layerNames, (n) => renameLayer(n, 0), label);
      const t = slicePosition(i, count);
      for (const name of template) {
        const outName = renameLayer(name, outLayer);
        const sources = members.map((m) => ({ model: m.model, name: renameLayer(name, m.start + i) }));
        // Only where a slice renames layers (a models: recipe's names are the output's): no Map per tensor otherwise.
        const sourceNames = sources.some((s) => s.name !== outName) ? new Map(sources.map((s) => [s.model, s.name])) : undefined;
        layerTensors.push({
          name: outName,
          layer: outLayer,
          base,
          sources,
          scope: { tensorName: outName, sourceNames, t, modelParams, sliceParams, moduleParams: recipe.moduleParameters, globalParams: recipe.parameters },
        });
      }
      layerSources.push({ model: first.model, layer: srcLayer });
      outLayer++;
    }
  });
  // Tensors outside the layers (mergekit's pre and post weights), at t = 0: the embeddings from the
  // first slice (its models and parameters), the final norm and lm_head from the last slice's.
  const layoutIndex = layoutModel(recipe);
  const outsideOf = (slice: RecipeSlice) => {
    const models = slice.sources.map((s) => s.model);
    const base = baseOf(recipe, slice);
    if (readsBase(slice) && base !== null && !models.includes(base)) models.push(base);
    return { base, models, modelParams: new Map<number, ParameterMap>(slice.sources.map((s) => [s.model, s.parameters])), sliceParams: slice.parameters };
  };
  const firstSlice = outsideOf(recipe.slices[0]);
  const lastSlice = outsideOf(recipe.slices[recipe.slices.length - 1]);
  refuseDroppedOutsideTensors(ckpts, layoutIndex, [...firstSlice.models, ...lastSlice.models], label);
  const before: OutputTensor[] = [];
  const after: OutputTensor[] = [];
  // mergekit's models: form gives each module of a multimodal model its own slice: a gradient runs over a vision tower's blocks by the
  // tower's own depth. Everything else outside the layers is at t = 0.
  const towerT = recipe.form === 'models' ? towerPositions(ckpts[layoutIndex].names) : new Map<string, number>();
  for (const name of ckpts[layoutIndex].names) {
    const cls = classifyTensor(name);
    if (cls.layer !== null) continue;
    const from = cls.module === 'embed' ? firstSlice : lastSlice;
    const entry: OutputTensor = {
      name,
      layer: null,
      base: from.base,
      sources: from.models.map((model) => ({ model, name })),
      scope: {
        tensorName: name,
        t: towerT.get(name) ?? 0,
        modelParams: from.modelParams,
        sliceParams: from.sliceParams,
        moduleParams: recipe.moduleParameters,
        globalParams: recipe.parameters,
      },
    };
    (cls.module === 'embed' ? before : after).push(entry);
  }
  return { tensors: [...before, ...layerTensors, ...after], layers: outLayer, layerSources };
}

/** The output's shards: the layout model's own when the names are the same, else ≤ 5 GB shards in output order. */
function outputLayout(layoutCkpt: Checkpoint, out: OutputTensor[], first: (t: OutputTensor) => TensorLocation): OutputLayout {
  const sameShape = (t: OutputTensor) => {
    const a = layoutCkpt.tensors.get(t.name)?.shape;
    const b = first(t).shape;
    return a !== undefined && a.length === b.length && a.every((d, i) => d === b[i]);
  };
  const same = out.length === layoutCkpt.names.length && out.every(sameShape);
  if (same) return checkpointLayout(layoutCkpt);
  const groups: LayoutTensor[][] = [[]];
  let bytes = 0;
  for (const t of out) {
    const loc = first(t);
    if (bytes > 0 && bytes + loc.byteLength > MAX_SHARD_BYTES) {
      groups.push([]);
      bytes = 0;
    }
    groups[groups.length - 1].push({ name: t.name, shape: loc.shape, elementCount: loc.elementCount });
    bytes += loc.byteLength;
  }
  return { shards: groups.map((tensors, i) => ({ name: shardFileName(i, groups.length), tensors })), indexed: groups.length > 1 || layoutCkpt.indexed };
}

/**
 * Output tensors, their sources (checked to exist with one shape), the shard layout and the moments the method needs.
 * `vocabulary`: the output vocabulary when the caller has planned it (and rebuilt the models' embeddings); planned here otherwise.
 */
export function planRecipe(recipe: Recipe, ckpts: Checkpoint[], vocabulary?: VocabularyPlan | null): RecipePlan {
  const method = methodFor(recipe.method);
  const { tensors, layers, layerSources } = planOutputTensors(recipe, ckpts);
  const label = (m: number) => recipe.modelNames[m];
  const locate = (model: number, name: string, outName: string): TensorLocation => {
    const loc = ckpts[model].tensors.get(name) ?? tiedHead(ckpts[model], name);
    if (!loc) {
      throw new WeightmixError('ModelsDiffer', `tensor ${name} (for ${outName}) is missing from ${label(model)}${tiedHint(name)}`);
    }
    return loc;
  };
  const views = recipe.models.map(() => new Map<string, TensorLocation>());
  for (const t of tensors) {
    const first = locate(t.sources[0].model, t.sources[0].name, t.name);
    for (const s of t.sources) {
      const loc = locate(s.model, s.name, t.name);
      if (loc.shape.length !== first.shape.length || loc.shape.some((d, i) => d !== first.shape[i])) {
        throw new WeightmixError(
          'ShapeMismatch',
          `tensor ${s.name} has shape [${loc.shape}] in ${label(s.model)} but [${first.shape}] in ${label(t.sources[0].model)}`,
        );
      }
      views[s.model].set(t.name, loc);
    }
  }

  // tokenizer_source: embed_tokens and lm_head cut to the vocabulary's rows (mergekit's rebuild, where it is a cut), or rebuilt before planning.
  const vocab = vocabulary === undefined ? planVocabulary(recipe, ckpts) : vocabulary;
  const vocabRows = vocab?.rows ?? null;
  if (vocab !== null) {
    for (const t of tensors) {
      if (!isEmbeddingMatrix(t.name)) continue;
      for (const s of t.sources) {
        const loc = views[s.model].get(t.name)!;
        // Rows rebuilt only where the caller rebuilt them (merge does; a batch does not, and equal row counts prove nothing).
        if (vocab.kind === 'rebuild' && vocabulary === undefined) {
          throw new WeightmixError(
            'UnsupportedRecipe',
            "tokenizer: the output vocabulary needs each model's embedding rows rebuilt, which a batch does not do yet: merge this recipe on its own",
          );
        }
        views[s.model].set(t.name, firstRows(loc, vocab.rows));
      }
    }
  }
  if (vocab === null) refuseVocabularyMismatch({ tensors, views }, ckpts[recipe.tokenizerSource], recipe.tokenizerSource, label);

  const methodTensors = new Map<string, Omit<MethodTensor, 'moments' | 'notice'>>();
  const momentPairs: MomentPair[] = [];
  const asked = new Set<string>();
  for (const t of tensors) {
    if (!t.sources.every((s) => isFloatDtype(views[s.model].get(t.name)!.dtype))) continue;
    const shape = views[t.sources[0].model].get(t.name)!.shape;
    const mt = { name: t.name, models: t.sources.map((s) => s.model), base: t.base, shape, scope: t.scope, label };
    methodTensors.set(t.name, mt);
    for (const [a, b] of method.momentPairs?.(mt) ?? []) {
      const key = `${t.name}\u0000${a}\u0000${b}`;
      if (asked.has(key)) continue;
      asked.add(key);
      momentPairs.push({ tensor: t.name, a, b });
    }
  }
  const layout = outputLayout(ckpts[layoutModel(recipe)], tensors, (t) => views[t.sources[0].model].get(t.name)!);
  return { tensors, layers, layerSources, views, layout, methodTensors, momentPairs, vocabRows, vocabulary: vocab };
}

/** Each model seen through the output's names (output name → its source tensor): the planner's checkpoints. */
export function sourceCheckpoints(plan: RecipePlan, ckpts: Checkpoint[]): Checkpoint[] {
  return ckpts.map((c, i) => ({ ...c, tensors: plan.views[i], names: [...plan.views[i].keys()] }));
}

/**
 * The tensors whose moments the write pass resolves (engine/open-moments.ts) instead of the moments pass: the method
 * decides them linearly from their moments, and their sources fit `localStatistics.maxTensorBytes` (one worker holds them).
 */
export function localMomentTensors(recipe: Recipe, plan: RecipePlan): Set<string> {
  const method = methodFor(recipe.method);
  const local = new Set<string>();
  for (const { tensor } of plan.momentPairs) {
    if (local.has(tensor)) continue;
    const mt = plan.methodTensors.get(tensor)!;
    const bytes = mt.models.reduce((n, m) => n + plan.views[m].get(tensor)!.byteLength, 0);
    if (bytes <= localStatistics.maxTensorBytes && method.linearFromMoments?.(mt)) local.add(tensor);
  }
  return local;
}

/** A tensor's recipe with its moments left open: `resolve` runs the method's coefficients on the moments the engine sums. */
function openMomentsRecipe(
  mt: Omit<MethodTensor, 'moments' | 'notice'>,
  coefficients: (t: MethodTensor) => TensorCoefficients,
  plan: RecipePlan,
  pieceElements: number,
  dtype: SafetensorsDtype,
  notice: (message: string) => void,
): TensorRecipe {
  const pairs = plan.momentPairs.filter((p) => p.tensor === mt.name).map(({ a, b }): [number, number] => [a, b]);
  const open: OpenMoments = {
    pairs,
    pieceElements,
    count: plan.views[mt.models[0]].get(mt.name)!.elementCount,
    resolve(moments) {
      const momentsOf = (a: number, b: number) => {
        const j = pairs.findIndex(([x, y]) => x === a && y === b);
        if (j < 0) throw new Error(`internal: no moments for ${mt.name} (${a}, ${b})`);
        return moments[j];
      };
      const c = coefficients({ ...mt, moments: momentsOf, notice });
      if (c.op === 'copy') return c;
      if (c.op === 'linear') return { op: 'linear', models: c.models, w: c.w };
      throw new Error(`internal: ${mt.name}'s coefficients are ${c.op}, not the linear form its method promised`);
    },
  };
  return { op: 'linear', models: mt.models, w: mt.models.map(() => 0), dtype, open };
}

/** The dtype each output tensor is written in (known before any statistics). */
function outputDtypes(recipe: Recipe, plan: RecipePlan): (t: OutputTensor) => SafetensorsDtype {
  const method = methodFor(recipe.method);
  return (t) => {
    const dtypes = t.sources.map((s) => plan.views[s.model].get(t.name)!.dtype);
    const base = method.resultInBaseDtype && t.base !== null ? t.sources.findIndex((s) => s.model === t.base) : -1;
    return tensorOutputDtype(dtypes, base >= 0 ? dtypes[base] : null, recipe.outDtype ?? recipe.dtype);
  };
}

/**
 * Every output tensor's recipe from the method's coefficients, given the moments asked for in
 * `plan.momentPairs`; sparsified tensors also come back as statistics work (thresholds are still open),
 * and so do ramplus_tl's (their λ, in `w` after epsilon, is 1 until resolveRamPlus counts). The tensors in
 * `open.tensors` (localMomentTensors) leave their moments to the write pass, summed in pieces of `open.pieceElements`. With `written`
 * (a part's tensors), the others get a copy recipe of their dtype, no moments and no statistics: planMerge only sizes their headers.
 */
export function tensorRecipes(
  recipe: Recipe,
  plan: RecipePlan,
  moments: (tensor: string, a: number, b: number) => PairMoments,
  notice: (message: string) => void = () => {},
  open?: { tensors: ReadonlySet<string>; pieceElements: number },
  written?: ReadonlySet<string>,
): {
  recipes: Map<string, TensorRecipe>;
  sparse: SparseTensor[];
  ramPlus: RamPlusTensor[];
  rowWise: RowWiseTensor[];
  dellaRescale: DellaRescaleTensor[];
  sceTensors: SceTensor[];
  fusionTensors: ArceeFusionTensor[];
} {
  const method = methodFor(recipe.method);
  const { views } = plan;
  const outDtypeOf = outputDtypes(recipe, plan);
  const recipes = new Map<string, TensorRecipe>();
  const sparse: SparseTensor[] = [];
  const ramPlus: RamPlusTensor[] = [];
  const rowWise: RowWiseTensor[] = [];
  const dellaRescale: DellaRescaleTensor[] = [];
  const sceTensors: SceTensor[] = [];
  const fusionTensors: ArceeFusionTensor[] = [];
  const sourceOf = (name: string) => (m: number) => {
    const l = views[m].get(name)!;
    return { file: l.file, offset: l.offset, dtype: nativeDtype(l.dtype) };
  };
  for (const t of plan.tensors) {
    const dtype = outDtypeOf(t);
    // Another part's tensor (a copy sizing its header), or an empty one (della's and arcee's rows tile none): only the refusals run.
    const skip = (written && !written.has(t.name)) || views[t.sources[0].model].get(t.name)!.elementCount === 0;
    if (skip && plan.methodTensors.has(t.name)) checkCoefficients(method, plan.methodTensors.get(t.name)!);
    const mt = skip ? undefined : plan.methodTensors.get(t.name);
    if (mt && open?.tensors.has(t.name)) {
      recipes.set(
        t.name,
        openMomentsRecipe(mt, (x) => method.coefficients(x), plan, open.pieceElements, dtype, notice),
      );
      continue;
    }
    const c: TensorCoefficients = mt
      ? method.coefficients({ ...mt, moments: (a, b) => moments(t.name, a, b), notice })
      : { op: 'copy', model: t.sources[0].model };
    if (c.op === 'sparse') {
      const spec = { ...c.spec, seed: recipe.randomSeed ?? 0 };
      const count = views[spec.base].get(t.name)!.elementCount;
      sparse.push({
        name: t.name,
        count,
        spec,
        source: sourceOf(t.name),
      });
      recipes.set(t.name, { op: 'sparse', models: [spec.base, ...spec.models.map((m) => m.model)], w: [], dtype });
      continue;
    }
    if (c.op === 'della') {
      // Mask keys from random_seed as DARE's: (seed, tensor name, recipe model index).
      const d = { ...c.della, models: c.della.models.map((m) => ({ ...m, seedKey: maskKey(recipe.randomSeed ?? 0, t.name, m.model) })) };
      recipes.set(t.name, { op: 'della', models: [d.base, ...d.models.map((m) => m.model)], w: [], dtype, della: d });
      if (c.rescale) dellaRescale.push({ name: t.name, count: views[d.base].get(t.name)!.elementCount, source: sourceOf(t.name) });
      continue;
    }
    if (c.op === 'arcee_fusion') {
      const arceeFusion = { base: c.base, model: c.model, rowLength: c.rowLength, threshold: 0 };
      recipes.set(t.name, { op: 'arcee_fusion', models: [c.base, c.model], w: [], dtype, arceeFusion });
      fusionTensors.push({ name: t.name, count: views[c.base].get(t.name)!.elementCount, source: sourceOf(t.name) });
      continue;
    }
    if (c.op === 'sce') {
      const count = views[c.base].get(t.name)!.elementCount;
      const sce = { base: c.base, models: c.models, weights: c.models.map(() => 1 / c.models.length), cut: 0n, indexBits: indexBits(count) };
      recipes.set(t.name, { op: 'sce', models: [c.base, ...c.models], w: [], dtype, sce });
      sceTensors.push({ name: t.name, count, selectTopk: c.selectTopk, source: sourceOf(t.name) });
      continue;
    }
    if (c.op === 'nearswap') {
      recipes.set(t.name, { op: 'nearswap', models: [c.base, c.model], w: [c.t], dtype });
      continue;
    }
    if (c.op === 'ram') {
      const models = [c.base, ...c.models];
      recipes.set(t.name, { op: 'ram', models, w: [c.epsilon, ...c.models.map(() => 1)], dtype });
      if (c.plus)
        ramPlus.push({ name: t.name, count: views[c.base].get(t.name)!.elementCount, models, epsilon: c.epsilon, ...c.plus, source: sourceOf(t.name) });
      continue;
    }
    if (c.op === 'rows') {
      const models = c.base === null ? c.models : [c.base, ...c.models];
      recipes.set(t.name, { op: 'row_linear', models, w: [], dtype, rows: { length: c.rowLength, interleaved: c.interleaved, base: c.base !== null, w: [] } });
      const count = views[c.models[0]].get(t.name)!.elementCount;
      rowWise.push({ name: t.name, count, rowLength: c.rowLength, interleaved: c.interleaved, pairs: c.pairs, weights: c.weights, source: sourceOf(t.name) });
      continue;
    }
    recipes.set(t.name, c.op === 'copy' ? { op: 'copy', models: [c.model], w: [0], dtype } : { op: 'linear', models: c.models, w: c.w, dtype });
  }
  return { recipes, sparse, ramPlus, rowWise, dellaRescale, sceTensors, fusionTensors };
}
