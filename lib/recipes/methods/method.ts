/** What a merge method decides per tensor: linear coefficients over the tensor's models (one f32 rounding). */
import type { Moments } from '../../engine/moments';
import type { Recipe, RecipeSlice } from '../recipe-types';
import { ParameterScope } from '../recipe-params';
import type { SparseMergeSpec } from '../sparsify';
import type { DellaRecipe } from '../../engine/della-params';
import type { MergeMethodName } from '../../merge-method-names';
import { WeightmixError } from '../../errors';

/** f64 statistics of a pair of tensors (a, b), from the engine's moments pass: the second moments the methods read (not diff's L1 sums). */
export type PairMoments = Pick<Moments, 'elements' | 'sumSqA' | 'sumSqB' | 'sumAB' | 'sumSqDiff' | 'maxAbsDiff' | 'nonFinite'>;

export interface MethodTensor {
  /** Output tensor name (method-wide parameters' filters match it; per-model ones match scope.sourceNames). */
  name: string;
  /** Recipe model indices that hold this tensor, in source order. */
  models: number[];
  base: number | null;
  /** The tensor's shape (its last dimension is a row, for the row-wise forms). */
  shape: readonly number[];
  scope: ParameterScope;
  /** How the recipe names a model, for messages. */
  label(model: number): string;
  /** Statistics of a pair asked for by `momentPairs` (throws for pairs not asked for). */
  moments(a: number, b: number): PairMoments;
  /** Tells the user something about this tensor in one line (the merge goes on). */
  notice(message: string): void;
}

/**
 * `copy`: the model's tensor as is (converted to the output dtype); `linear`: Σ w_k·x_k in f32;
 * `sparse`: sparsified task vectors (TIES, DARE, breadcrumbs), thresholds resolved by lib/sparsify.ts;
 * `nearswap`, `ram`: per-element weights (native/kernels/elementwise.h), f64 and one rounding. A `ram`
 * with `plus` (ramplus_tl) gets its per-model λ from a counting pass over the whole tensor. `rows`:
 * one combination per row of `rowLength` elements (base + Σ c·(x − base) with a base, else Σ c·x, f64)
 * or, `interleaved`, per vector along dim 0 (`rowLength` of them, element i in the (i mod rowLength)-th),
 * its coefficients from per-row moments of `pairs` (a pass of their own, lib/recipes/row-wise.ts).
 * `della`: MAGPRUNE's per-row random thinning (native/kernels/della.h); its mask keys are set from
 * random_seed by the planner, its L1 factors (`rescale`) by a statistics pass (lib/recipes/della-rescale.ts).
 * `sce`: SCE's variance selection, sign election and weights (native/kernels/sce.h), from two
 * statistics over the whole tensor (lib/recipes/sce-statistics.ts). `arcee_fusion`: the importance
 * threshold from quantile passes (lib/recipes/arcee-fusion-statistics.ts).
 */
export type TensorCoefficients =
  | { op: 'copy'; model: number }
  | { op: 'linear'; models: number[]; w: number[] }
  | { op: 'sparse'; spec: SparseMergeSpec }
  | { op: 'nearswap'; base: number; model: number; t: number }
  | { op: 'ram'; base: number; models: number[]; epsilon: number; plus: { r: number; alpha: number } | null }
  | { op: 'della'; della: DellaRecipe; rescale: boolean }
  | { op: 'sce'; base: number; models: number[]; selectTopk: number }
  | { op: 'arcee_fusion'; base: number; model: number; rowLength: number }
  | {
      op: 'rows';
      base: number | null;
      models: number[];
      rowLength: number;
      interleaved: boolean;
      pairs: [number, number][];
      weights(rows: RowMoments): number[][];
    };

/** Per-row statistics of a pair asked for in a `rows` decision, one entry per row (elements, maxAbsDiff and nonFinite are not counted there: 0). */
export type RowMoments = (a: number, b: number) => PairMoments[];

export interface MergeMethod {
  name: MergeMethodName;
  /** Parameter names the method reads; any other is refused. */
  parameters: readonly string[];
  /** Those of `parameters` read per model (mergekit's tensor_parameters): only these may stand in a model's own entry; the rest are method-wide. */
  modelParameters: readonly string[];
  /** mergekit casts this method's result to the base model's dtype (slerp, task-vector methods); others promote as torch does. */
  resultInBaseDtype?: boolean;
  /**
   * Set where the method reads a base model, to why (shown in brackets after "needs a base_model"; '' for nothing more): a recipe
   * without one is refused (recipe.ts's checkRecipe), and the planner gives it an unlisted base in every form. Unset: optional.
   */
  needsBase?: string;
  /**
   * A slice of the `slices:` form with a single source gives that source's tensors, its base model not read (mergekit's slerp,
   * nuslerp, nearswap and arcee_fusion tasks return a lone tensor before they look for the base: a frankenmerge's base-only slice).
   */
  loneSourceCopied?: boolean;
  /** Recipe-level checks (model counts, …; a missing base model is refused by `needsBase`); unset: none. */
  validate?(recipe: Recipe): void;
  /** Pairs of models whose moments the method needs for this tensor (a first pass over the inputs). */
  momentPairs?(tensor: Omit<MethodTensor, 'moments' | 'notice'>): [number, number][];
  /** Whether `coefficients` gives this tensor a `copy` or `linear` decision from its moments alone (the engine may then resolve them in the write pass, engine/open-moments.ts). */
  linearFromMoments?(tensor: Omit<MethodTensor, 'moments' | 'notice'>): boolean;
  coefficients(tensor: MethodTensor): TensorCoefficients;
}

/** A slice's base model: its own base_model, else the recipe's (mergekit's ConfigReader.base_model). */
export function baseOf(recipe: Recipe, slice: RecipeSlice): number | null {
  return slice.base ?? recipe.base;
}

/** A slice of the `slices:` form with one source, which a `loneSourceCopied` method copies. */
export function loneSource(recipe: Recipe, slice: RecipeSlice): boolean {
  return recipe.form === 'slices' && slice.sources.length === 1;
}

/** Whether some slice has no base model (neither its own nor the recipe's). */
export function lacksBase(recipe: Recipe): boolean {
  return recipe.slices.some((s) => baseOf(recipe, s) === null);
}

/**
 * w / Σw, mergekit's weight normalization (linear's, multislerp's); null where Σw is 0. Weights whose sum overflows f64 (1e308 each)
 * are first divided by the largest magnitude: the same quotients up to a rounding, where the plain form gives x / ±Infinity = 0.
 */
export function normalizedWeights(w: readonly number[]): number[] | null {
  const sum = w.reduce((s, x) => s + x, 0);
  if (Number.isFinite(sum)) return sum === 0 ? null : w.map((x) => x / sum);
  const largest = Math.max(...w.map(Math.abs));
  return normalizedWeights(w.map((x) => x / largest));
}

/** The linear form, or a byte-exact copy when it is one model with weight 1. */
export function linearOrCopy(models: number[], w: number[]): TensorCoefficients {
  const nonzero = models.filter((_, k) => w[k] !== 0);
  if (nonzero.length === 1 && w[models.indexOf(nonzero[0])] === 1) return { op: 'copy', model: nonzero[0] };
  return { op: 'linear', models, w };
}

/** validate() of a method that merges exactly one model with the base (arcee_fusion, nearswap): every slice it merges names one other. */
export function validateOneBesideBase(method: MergeMethodName): (recipe: Recipe) => void {
  return (recipe) => {
    for (const s of recipe.slices) {
      if (loneSource(recipe, s)) continue;
      const n = new Set(s.sources.map((x) => x.model).filter((m) => m !== baseOf(recipe, s))).size;
      if (n !== 1) throw new WeightmixError('InvalidRecipe', `${method} merges exactly one model with the base_model, a slice names ${n}`);
    }
  };
}

/**
 * A tensor's base and its one other model for such a method, or the copy mergekit makes where only one model holds the tensor
 * (the lone model's; the base's where no other model holds it). A tensor the base does not hold is refused.
 */
export function baseAndOther(t: MethodTensor, method: MergeMethodName): { base: number; other: number } | TensorCoefficients {
  if (t.models.length === 1) return { op: 'copy', model: t.models[0] };
  const base = t.base!;
  if (!t.models.includes(base)) throw new WeightmixError('InvalidRecipe', `${method}: tensor ${t.name} does not come from the base model`);
  const other = t.models.find((m) => m !== base);
  return other === undefined ? { op: 'copy', model: base } : { base, other };
}
