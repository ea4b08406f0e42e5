/**
 * A batch's statistics: the moment pairs its recipes ask for (each tensor pair once, whichever recipes
 * share it), and every recipe's tensor recipes from those moments with the sparse thresholds shared
 * where recipes thin the same tensors alike.
 */
import type { TensorLocation } from '../model/checkpoint';
import type { StatisticsOptions } from '../engine/execute-plan';
import { runStatisticsPlan } from '../engine/execute-plan';
import type { Moments, TensorPair } from '../engine/moments';
import type { ResolvedSparse } from '../engine/sparse-params';
import type { TensorRecipe } from '../engine/plan';
import type { Recipe } from './recipe';
import { RecipePlan, tensorRecipes } from './recipe-plan';
import { fitsInMemory, resolveSparse, SparseTensor } from './sparsify';
import { RamPlusTensor, setRamPlusLambdas } from './ram-counts';
import { RowWiseTensor, setRowWeights } from './row-wise';
import { DellaRescaleTensor, setDellaScales } from './della-rescale';
import { SceTensor, setSceStatistics } from './sce-statistics';
import { ArceeFusionTensor, setArceeFusionThresholds } from './arcee-fusion-statistics';

/** What the statistics need of a batch entry, and where its tensor recipes go. */
export interface StatisticsEntry {
  /** The recipe's name in the batch (notices name it). */
  name: string;
  recipe: Recipe;
  planned: RecipePlan;
  recipes?: Map<string, TensorRecipe>;
}

/** The distinct tensor pairs whose moments the entries ask for, and the index of each (by where both tensors are read). */
export interface BatchMomentPairs {
  pairs: TensorPair[];
  index: Map<string, number>;
}

/** A tensor read: file, offset and length (a tensor cut to its first rows is another read). */
const locationKey = (l: TensorLocation) => `${l.file}\u0000${l.offset}\u0000${l.byteLength}`;
const pairKey = (a: TensorLocation, b: TensorLocation) => `${locationKey(a)}\u0000${locationKey(b)}`;

export function batchMomentPairs(entries: readonly StatisticsEntry[]): BatchMomentPairs {
  const index = new Map<string, number>();
  const pairs: TensorPair[] = [];
  for (const e of entries) {
    for (const { tensor, a, b } of e.planned.momentPairs) {
      const pair = { a: e.planned.views[a].get(tensor)!, b: e.planned.views[b].get(tensor)! };
      const key = pairKey(pair.a, pair.b);
      if (!index.has(key)) index.set(key, pairs.push(pair) - 1);
    }
  }
  return { pairs, index };
}

/**
 * Every entry's tensor recipes, given the moments of `pairs` (one per pair, in order): sparse thresholds
 * are resolved once for entries with the same sparse spec over the same tensors; passes hold each tensor
 * name at most once (the DARE mask key is the name).
 */
export async function resolveStatistics(
  entries: readonly StatisticsEntry[],
  { index }: BatchMomentPairs,
  moments: readonly Moments[],
  statistics: StatisticsOptions,
  notice?: (message: string) => void,
): Promise<void> {
  const rounds: Map<string, SparseTensor>[] = [];
  const shared = new Map<string, { tensor: SparseTensor; users: Map<string, TensorRecipe>[] }>();
  const ownPasses: {
    ramPlus: RamPlusTensor[];
    rowWise: RowWiseTensor[];
    dellaRescale: DellaRescaleTensor[];
    sceTensors: SceTensor[];
    fusionTensors: ArceeFusionTensor[];
    recipes: Map<string, TensorRecipe>;
  }[] = [];
  for (const e of entries) {
    const { views } = e.planned;
    const momentsOf = (name: string, a: number, b: number): Moments => {
      const j = index.get(pairKey(views[a].get(name)!, views[b].get(name)!));
      if (j === undefined) throw new Error(`internal: no moments for ${name} (${a}, ${b})`);
      return moments[j];
    };
    const { recipes, sparse, ...own } = tensorRecipes(e.recipe, e.planned, momentsOf, (message) => notice?.(`${e.name}: ${message}`));
    e.recipes = recipes;
    ownPasses.push({ ...own, recipes });
    for (const t of sparse) {
      const sources = [t.spec.base, ...t.spec.models.map((m) => m.model)].map((m) => t.source(m));
      const key = JSON.stringify([t.name, t.count, t.spec, sources]);
      const known = shared.get(key);
      if (known) {
        known.users.push(recipes);
        continue;
      }
      shared.set(key, { tensor: t, users: [recipes] });
      let round = rounds.find((r) => !r.has(t.name));
      if (!round) rounds.push((round = new Map()));
      round.set(t.name, t);
    }
  }
  const resolved = new Map<SparseTensor, ResolvedSparse>();
  for (const round of rounds) {
    const tensors = [...round.values()];
    const r = await resolveSparse(tensors, (p) => runStatisticsPlan(p, statistics), fitsInMemory);
    for (const t of tensors) resolved.set(t, r.get(t.name)!);
  }
  for (const { tensor, users } of shared.values()) for (const recipes of users) recipes.get(tensor.name)!.sparse = resolved.get(tensor)!;
  // ramplus_tl's counts, the row-wise moments, della's L1 factors, sce's and arcee_fusion's statistics: a pass per recipe that has them (their coefficients are its own).
  for (const { ramPlus, rowWise, dellaRescale, sceTensors, fusionTensors, recipes } of ownPasses) {
    const run = (p: Parameters<typeof runStatisticsPlan>[0]) => runStatisticsPlan(p, statistics);
    await setRamPlusLambdas(recipes, ramPlus, run);
    await setRowWeights(recipes, rowWise, run);
    await setDellaScales(recipes, dellaRescale, run);
    await setSceStatistics(recipes, sceTensors, run, { statisticsBlockBytes: statistics.blockBytes });
    await setArceeFusionThresholds(recipes, fusionTensors, run, { local: true });
  }
}
