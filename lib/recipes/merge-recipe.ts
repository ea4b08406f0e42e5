/**
 * `merge(recipe, options)`: a mergekit recipe run by weightmix's engine. The recipe decides, per output
 * tensor, its source tensors (slices may renumber layers) and linear coefficients; methods that need
 * angles (slerp, model_stock) get them from a first moments pass; then one plan writes the model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, layerCount, pathsRead, Shard, TensorLocation } from '../model/checkpoint';
import { hubProvenance, openModels } from '../model/open-model';
import type { DownloadProgress } from '../hub/snapshot-download';
import { usageError, WeightmixError } from '../errors';
import type { ResolvedDevice } from '../engine/device';
import { executeMergePlan, MergeProgress } from '../engine/execute-plan';
import { InputFiles } from '../engine/input-files';
import { methodFor, MethodTensor, PairMoments, TensorCoefficients } from './methods';
import { copySidecars, writeIndex, writeModelCard } from '../model/model-files';
import { NativeDtype, NativeJob, runPlan } from '../engine/native';
import { EngineOptions, parseBlockBytes, parseDevice, parseThreads } from '../options';
import { OutputTransaction } from '../engine/output';
import { FloatDtype, isFloatDtype, MergePlan, planMerge, TensorRecipe } from '../engine/plan';
import { parseRecipe, ParseRecipeOptions, Recipe } from './recipe';
import { ParameterMap, ParameterScope, slicePosition } from './recipe-params';
import { SafetensorsDtype, SafetensorsHeader } from '../format/safetensors';
import { resolveSparse, SparseTensor } from './sparsify';
import { classifyTensor } from '../model/tensor-names';
import { VERSION } from '../version';

export interface MergeOptions extends EngineOptions, ParseRecipeOptions {
  /** The output model folder. */
  output: string;
  /** Replace an existing output, only after the new one is complete. */
  force?: boolean;
  onProgress?: (p: MergeProgress) => void;
  /** Progress of a hub download, when a hub id in the recipe is not (wholly) in the cache. */
  onDownload?: (p: DownloadProgress) => void;
  onNotice?: (message: string) => void;
  signal?: AbortSignal;
}

/** What a recipe merge wrote, and (from ResolvedDevice) where its arithmetic ran and why on the CPU under `auto`. */
export interface RecipeMergeSummary extends ResolvedDevice {
  output: string;
  method: string;
  files: number;
  bytes: number;
  tensors: number;
  layers: number;
  /** Tensors that needed a moments pass (slerp angles, model_stock cosines). */
  momentTensors: number;
  seconds: number;
  gbPerSecond: number;
  threads: number;
}

/** One output tensor: where its data comes from and how its parameters are looked up. */
export interface OutputTensor {
  name: string;
  /** Recipe model index → the source tensor's name in that model, in source order. */
  sources: { model: number; name: string }[];
  scope: ParameterScope;
  /** Output layer, or null outside the decoder layers. */
  layer: number | null;
}

/** mergekit's default maximum shard size (5 billion bytes). */
const MAX_SHARD_BYTES = 5e9;
const LAYER_NUMBER = /^(.*?(?:layers|h)\.)(\d+)(\..+)$/;

export function renameLayer(name: string, layer: number): string {
  const m = LAYER_NUMBER.exec(name);
  if (!m) throw new Error(`internal: ${name} has no layer number`);
  return `${m[1]}${layer}${m[3]}`;
}

function modelLayers(ckpt: Checkpoint): number {
  return layerCount(ckpt, (n) => classifyTensor(n).layer);
}

/** Every output tensor of the recipe, in output order: embeddings, the decoder layers slice by slice, the rest. */
export function planOutputTensors(recipe: Recipe, ckpts: Checkpoint[]): { tensors: OutputTensor[]; layers: number; layerSources: { model: number; layer: number }[] } {
  const method = methodFor(recipe.method);
  const usesBase = recipe.base !== null && method.name !== 'passthrough' && method.name !== 'linear';
  const label = (m: number) => recipe.modelNames[m];
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
        throw new WeightmixError('ModelsDiffer', `${label(s.model)} has ${have} layers but ${label(first.model)} has ${count}; the models: form needs equal depths`);
      }
      if (ranges[k][1] > have) throw new WeightmixError('InvalidRecipe', `slices[${si}]: layer_range [${ranges[k]}] goes past the ${have} layers of ${label(s.model)}`);
    });
    const members = slice.sources.map((s, k) => ({ model: s.model, start: ranges[k][0] }));
    if (usesBase && !members.some((m) => m.model === recipe.base)) members.push({ model: recipe.base!, start: ranges[0][0] });
    const modelParams = new Map<number, ParameterMap>(slice.sources.map((s) => [s.model, s.parameters]));
    const sliceParams = slice.parameters;
    for (let i = 0; i < count; i++) {
      const srcLayer = ranges[0][0] + i;
      const template = ckpts[first.model].names.filter((n) => classifyTensor(n).layer === srcLayer);
      if (template.length === 0) throw new WeightmixError('ModelsDiffer', `${label(first.model)} has no tensors in layer ${srcLayer}`);
      const t = slicePosition(i, count);
      for (const name of template) {
        const outName = renameLayer(name, outLayer);
        layerTensors.push({
          name: outName,
          layer: outLayer,
          sources: members.map((m) => ({ model: m.model, name: renameLayer(name, m.start + i) })),
          scope: { tensorName: outName, t, modelParams, sliceParams, globalParams: recipe.parameters },
        });
      }
      layerSources.push({ model: first.model, layer: srcLayer });
      outLayer++;
    }
  });

  // Tensors outside the layers: from the layout model's names, parameters at t = 0 (mergekit's rule).
  const layoutModel = recipe.base ?? recipe.slices[0].sources[0].model;
  const allModels = [...new Set([...recipe.slices.flatMap((s) => s.sources.map((x) => x.model)), ...(usesBase ? [recipe.base!] : [])])];
  const outsideModels = method.name === 'passthrough' ? [layoutModel] : allModels;
  const before: OutputTensor[] = [];
  const after: OutputTensor[] = [];
  for (const name of ckpts[layoutModel].names) {
    const cls = classifyTensor(name);
    if (cls.layer !== null) continue;
    const entry: OutputTensor = {
      name,
      layer: null,
      sources: outsideModels.map((model) => ({ model, name })),
      scope: { tensorName: name, t: 0, modelParams: recipe.modelParameters, globalParams: recipe.parameters },
    };
    (cls.module === 'embed' ? before : after).push(entry);
  }
  return { tensors: [...before, ...layerTensors, ...after], layers: outLayer, layerSources };
}

/** A checkpoint seen through the output's names: output name → the source tensor's location. */
function viewOf(ckpt: Checkpoint, tensors: Map<string, TensorLocation>): Checkpoint {
  return { ...ckpt, tensors, names: [...tensors.keys()] };
}

/** The output's shards: the layout model's own when the names are the same, else ≤ 5 GB shards in output order. */
function outputLayout(layoutCkpt: Checkpoint, out: OutputTensor[], first: (t: OutputTensor) => TensorLocation): Checkpoint {
  const same = out.length === layoutCkpt.names.length && out.every((t) => layoutCkpt.tensors.has(t.name));
  if (same) return layoutCkpt;
  const groups: OutputTensor[][] = [[]];
  let bytes = 0;
  for (const t of out) {
    const size = first(t).byteLength;
    if (bytes > 0 && bytes + size > MAX_SHARD_BYTES) {
      groups.push([]);
      bytes = 0;
    }
    groups[groups.length - 1].push(t);
    bytes += size;
  }
  const pad = (n: number) => String(n).padStart(5, '0');
  const shardName = (i: number) => (groups.length === 1 ? 'model.safetensors' : `model-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`);
  const tensors = new Map<string, TensorLocation>();
  // planMerge reads only the shard names and each tensor's shard, shape and size from a layout.
  const shards: Shard[] = groups.map((g, i) => ({ name: shardName(i), path: '', header: null as unknown as SafetensorsHeader }));
  groups.forEach((g, i) => {
    for (const t of g) tensors.set(t.name, { ...first(t), name: t.name, shard: shardName(i) });
  });
  return { ...layoutCkpt, shards, tensors, names: out.map((t) => t.name), indexed: groups.length > 1 || layoutCkpt.indexed };
}

function nativeDtype(d: SafetensorsDtype): NativeDtype {
  return isFloatDtype(d) ? d : 'U8';
}

export async function merge(input: Recipe | string | Record<string, unknown>, options: MergeOptions): Promise<RecipeMergeSummary> {
  const started = process.hrtime.bigint();
  if (typeof options.output !== 'string' || options.output === '') throw usageError('an output folder is required (-o OUT)');
  const recipe: Recipe = isRecipe(input) ? input : parseRecipe(input, options);
  const method = methodFor(recipe.method);
  const threads = parseThreads(options.threads);
  const blockBytes = parseBlockBytes(options.blockBytes);
  const direct = options.direct ?? true;
  const device = parseDevice(options.device);
  const ckpts = await openModels(recipe.models, options);
  const outDir = path.resolve(options.output);

  const { tensors: out, layers, layerSources } = planOutputTensors(recipe, ckpts);
  const label = (m: number) => recipe.modelNames[m];
  const locate = (model: number, name: string, outName: string): TensorLocation => {
    const loc = ckpts[model].tensors.get(name);
    if (!loc) throw new WeightmixError('ModelsDiffer', `tensor ${name} (for ${outName}) is missing from ${label(model)}`);
    return loc;
  };
  const views = recipe.models.map(() => new Map<string, TensorLocation>());
  for (const t of out) {
    const first = locate(t.sources[0].model, t.sources[0].name, t.name);
    for (const s of t.sources) {
      const loc = locate(s.model, s.name, t.name);
      if (loc.shape.length !== first.shape.length || loc.shape.some((d, i) => d !== first.shape[i])) {
        throw new WeightmixError('ShapeMismatch', `tensor ${s.name} has shape [${loc.shape}] in ${label(s.model)} but [${first.shape}] in ${label(t.sources[0].model)}`);
      }
      views[s.model].set(t.name, loc);
    }
  }
  const float = (t: OutputTensor) => t.sources.every((s) => isFloatDtype(views[s.model].get(t.name)!.dtype));

  // First pass: the moments the method asks for (slerp angles, model_stock cosines).
  const methodTensors = new Map<string, Omit<MethodTensor, 'moments'>>();
  const pairJobs = new Map<string, number>();
  const momentJobs: NativeJob[] = [];
  const inputFiles = new InputFiles();
  for (const t of out) {
    if (!float(t)) continue;
    const mt = { name: t.name, models: t.sources.map((s) => s.model), base: recipe.base, scope: t.scope, label };
    methodTensors.set(t.name, mt);
    for (const [a, b] of method.momentPairs?.(mt) ?? []) {
      const key = `${t.name}\u0000${a}\u0000${b}`;
      if (pairJobs.has(key)) continue;
      const la = views[a].get(t.name)!;
      const lb = views[b].get(t.name)!;
      pairJobs.set(key, momentJobs.length);
      momentJobs.push({
        count: la.elementCount,
        sources: [
          { input: inputFiles.indexOf(la.file), offset: la.offset, dtype: nativeDtype(la.dtype) },
          { input: inputFiles.indexOf(lb.file), offset: lb.offset, dtype: nativeDtype(lb.dtype) },
        ],
        dests: [],
        moments: true,
      });
    }
  }
  let moments: Float64Array = new Float64Array(0);
  if (momentJobs.length > 0) {
    const r = await runPlan({ inputs: inputFiles.paths, outputs: [], jobs: momentJobs, threads, blockBytes, direct: false }, { signal: options.signal });
    moments = r.moments;
  }
  const momentsOf = (name: string) => (a: number, b: number): PairMoments => {
    const j = pairJobs.get(`${name}\u0000${a}\u0000${b}`);
    if (j === undefined) throw new Error(`internal: no moments for ${name} (${a}, ${b})`);
    return { aa: moments[6 * j], bb: moments[6 * j + 1], ab: moments[6 * j + 2], dd: moments[6 * j + 3] };
  };

  const outDtypeOf = (t: OutputTensor): SafetensorsDtype => {
    const d = views[t.sources[0].model].get(t.name)!.dtype;
    return isFloatDtype(d) ? (recipe.outDtype ?? recipe.dtype ?? d) : d;
  };
  const recipes = new Map<string, TensorRecipe>();
  const sparse: SparseTensor[] = [];
  for (const t of out) {
    const dtype = outDtypeOf(t);
    const mt = methodTensors.get(t.name);
    const c: TensorCoefficients = mt ? method.coefficients({ ...mt, moments: momentsOf(t.name) }) : { op: 'copy', model: t.sources[0].model };
    if (c.op === 'sparse') {
      const spec = { ...c.spec, seed: recipe.randomSeed ?? 0 };
      const count = views[spec.base].get(t.name)!.elementCount;
      sparse.push({ name: t.name, count, spec, source: (m) => { const l = views[m].get(t.name)!; return { file: l.file, offset: l.offset, dtype: nativeDtype(l.dtype) }; } });
      recipes.set(t.name, { op: 'sparse', models: [spec.base, ...spec.models.map((m) => m.model)], w: [], dtype });
      continue;
    }
    recipes.set(t.name, c.op === 'copy' ? { op: 'copy', models: [c.model], w: [0], dtype } : { op: 'linear', models: c.models, w: c.w, dtype });
  }
  // Sparsified methods: thresholds (radix selection) and rescale factors from statistics passes.
  if (sparse.length > 0) {
    const resolved = await resolveSparse(sparse, (p) => runPlan({ ...p, outputs: [], threads, blockBytes, direct: false }, { signal: options.signal }));
    for (const [name, r] of resolved) recipes.get(name)!.sparse = r;
  }

  const layoutIndex = recipe.models.length;
  const layoutModel = recipe.base ?? recipe.slices[0].sources[0].model;
  const layout = outputLayout(ckpts[layoutModel], out, (t) => views[t.sources[0].model].get(t.name)!);
  const outDtype: FloatDtype | undefined = recipe.outDtype ?? recipe.dtype ?? undefined;
  const hub = ckpts.some((c) => c.hub) ? ckpts.map(hubProvenance) : undefined;
  const recipeJson = { method: recipe.method, recipe: recipe.document, hub, weightmix: VERSION };

  const tx = await OutputTransaction.begin(outDir, { force: options.force, notice: options.onNotice, reads: ckpts.flatMap(pathsRead) });
  try {
    const plan = planMerge({
      checkpoints: [...ckpts.map((c, i) => viewOf(c, views[i])), layout],
      layout: layoutIndex,
      outputs: [{ dir: tx.tempDir, metadata: { format: 'pt', weightmix: JSON.stringify(recipeJson) } }],
      recipe: (name) => recipes.get(name)!,
    });
    const ran = await executeMergePlan(plan, { threads, blockBytes, direct, device }, options);
    const model = plan.models[0];
    await writeIndex(model);
    const from = ckpts[recipe.tokenizerSource];
    await copySidecars(from, model.dir, outDtype);
    await fixLayerCount(model.dir, from, layers, layerSources.map((s) => ckpts[s.model].config), layerSources);
    await writeModelCard(model.dir, {
      title: `${recipe.method} merge of ${recipe.modelNames.map((n) => path.basename(n)).join(', ')}`,
      sources: ckpts.map((c, i) => ({ role: i === recipe.base ? 'base model' : `model ${i}`, dir: c.dir, hub: c.hub })),
      lines: [
        `merge_method: ${recipe.method}, from a mergekit recipe (${recipe.form} form)`,
        'arithmetic in f32, one round-to-nearest-even to the output dtype (the recipe\'s dtype sets only the output dtype when out_dtype is absent)',
        `config, tokenizer and templates from ${recipe.modelNames[recipe.tokenizerSource]}`,
        ...(recipe.randomSeed !== null && !method.name.startsWith('dare') ? [`random_seed: ${recipe.randomSeed} (no method here draws random numbers)`] : []),
        ...(method.name.startsWith('dare') ? [`DARE masks: counter-based (splitmix64) generator keyed by random_seed ${recipe.randomSeed ?? 0}, tensor name, model index and element index`] : []),
      ],
      recipe: recipeJson,
    });
    await tx.commit(options.signal);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return {
      output: outDir,
      method: recipe.method,
      files: model.shards.length,
      bytes: plan.bytesToWrite,
      tensors: out.length,
      layers,
      momentTensors: new Set([...pairJobs.keys()].map((k) => k.split('\u0000')[0])).size,
      seconds,
      gbPerSecond: plan.bytesToWrite / 1e9 / seconds,
      threads,
      ...ran,
    };
  } catch (e) {
    await tx.abort();
    throw e;
  }
}

function isRecipe(x: unknown): x is Recipe {
  return typeof x === 'object' && x !== null && Array.isArray((x as Recipe).slices) && (x as Recipe).modelParameters instanceof Map;
}

/** A stacked (passthrough) model has another depth: config.json says so. */
async function fixLayerCount(
  dir: string,
  from: Checkpoint,
  layers: number,
  sourceConfigs: (Record<string, unknown> | null)[],
  sources: { layer: number }[],
): Promise<void> {
  const file = path.join(dir, 'config.json');
  if (!from.config || !fs.existsSync(file) || from.config.num_hidden_layers === layers) return;
  const config = JSON.parse(await fs.promises.readFile(file, 'utf8')) as Record<string, unknown>;
  config.num_hidden_layers = layers;
  if (Array.isArray(config.layer_types)) {
    config.layer_types = sources.map((s, i) => {
      const types = sourceConfigs[i]?.layer_types;
      return Array.isArray(types) && s.layer < types.length ? types[s.layer] : (config.layer_types as unknown[])[0];
    });
  }
  await fs.promises.writeFile(file, JSON.stringify(config, null, 2) + '\n');
}

