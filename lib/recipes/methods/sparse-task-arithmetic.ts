/**
 * mergekit's generalized task arithmetic with sparsification: `ties` (TIES-Merging, Yadav et al.
 * 2023), `dare_linear` and `dare_ties` (DARE, Yu et al. 2023), `breadcrumbs` and `breadcrumbs_ties`
 * (Model Breadcrumbs, Davari & Belilovsky 2023). Task vectors δ_i = θ_i − θ_base are thinned per
 * tensor and per model (lib/sparsify.ts), optionally sign-elected, mixed and added back to the base:
 * native/kernels/sparsify.h has the arithmetic. Defaults are mergekit's registry's.
 */
import type { MergeMethodName } from '../../merge-method-names';
import { WeightmixError } from '../../errors';
import { booleanParameter, lookupParameter, numberParameter, ParameterScope } from '../recipe-params';
import type { SparseModelSpec } from '../sparsify';
import { MergeMethod, MethodTensor, TensorCoefficients } from './method';

interface Family {
  name: MergeMethodName;
  selection: SparseModelSpec['selection'];
  consensus: boolean;
  normalize: boolean;
  rescale: boolean;
}

function rescaleParameter(scope: ParameterScope, fallback: boolean): SparseModelSpec['rescale'] {
  const v = lookupParameter(scope, 'rescale');
  if (v === undefined) return fallback ? 'l1' : 'none';
  if (v === 'inverse') return 'inverse';
  if (v === true || v === 1 || v === 'l1') return 'l1';
  if (v === false || v === 0) return 'none';
  throw new WeightmixError(
    'InvalidRecipe',
    `parameter 'rescale' must be true (L1-norm matching, mergekit's), false or 'inverse' (× 1/density), got ${JSON.stringify(v)} (tensor ${scope.tensorName})`,
  );
}

function consensusParameter(scope: ParameterScope, method: string): 'sum' | 'count' {
  const v = lookupParameter(scope, 'consensus_method');
  if (v === undefined || v === 'sum') return 'sum';
  if (v === 'count') return 'count';
  throw new WeightmixError('InvalidRecipe', `${method}: parameter 'consensus_method' must be 'sum' or 'count', got ${JSON.stringify(v)}`);
}

/** A fraction of elements in [0, 1]; a density above 1 thins nothing, as 1 (mergekit's sparsify returns the tensor for density >= 1). */
function densityIn(v: number, name: string, t: MethodTensor, m: number): number {
  if (name === 'density' && v > 1) return 1;
  if (!(v >= 0 && v <= 1))
    throw new WeightmixError(
      'InvalidRecipe',
      `parameter '${name}' must lie in [0, ${name === 'density' ? '∞)' : '1]'}, got ${v} for ${t.label(m)} (tensor ${t.name})`,
    );
  return v;
}

function sparseMethod(f: Family): MergeMethod {
  const parameters = ['weight', 'density', 'normalize', 'rescale', 'lambda', 'int8_mask'];
  if (f.selection === 'magnitude' && f.name.startsWith('breadcrumbs')) parameters.push('gamma');
  if (f.consensus) parameters.push('consensus_method');
  return {
    name: f.name,
    resultInBaseDtype: true,
    parameters,
    modelParameters: parameters.filter((p) => p === 'weight' || p === 'density' || p === 'gamma'),
    needsBase: 'task vectors are differences from it',
    coefficients(t): TensorCoefficients {
      const base = t.base!;
      if (!t.models.includes(base)) throw new WeightmixError('InvalidRecipe', `${f.name}: tensor ${t.name} does not come from the base model`);
      const rescale = rescaleParameter(t.scope, f.rescale);
      const models = t.models
        .filter((m) => m !== base)
        .map((m): SparseModelSpec => ({
          model: m,
          weight: numberParameter(t.scope, 'weight', m, undefined, t.label(m)),
          selection: f.selection,
          density: densityIn(numberParameter(t.scope, 'density', m, 1, t.label(m)), 'density', t, m),
          gamma: parameters.includes('gamma') ? densityIn(numberParameter(t.scope, 'gamma', m, 0.01, t.label(m)), 'gamma', t, m) : 0,
          rescale,
        }));
      return {
        op: 'sparse',
        spec: {
          base,
          models,
          consensus: f.consensus ? consensusParameter(t.scope, f.name) : null,
          normalize: booleanParameter(t.scope, 'normalize', f.normalize),
          lambda: numberParameter(t.scope, 'lambda', undefined, 1),
          seed: 0,
        },
      };
    },
  };
}

export const ties = sparseMethod({ name: 'ties', selection: 'magnitude', consensus: true, normalize: true, rescale: false });
export const dareTies = sparseMethod({ name: 'dare_ties', selection: 'random', consensus: true, normalize: false, rescale: true });
export const dareLinear = sparseMethod({ name: 'dare_linear', selection: 'random', consensus: false, normalize: false, rescale: true });
export const breadcrumbs = sparseMethod({ name: 'breadcrumbs', selection: 'magnitude', consensus: false, normalize: false, rescale: false });
export const breadcrumbsTies = sparseMethod({ name: 'breadcrumbs_ties', selection: 'magnitude', consensus: true, normalize: false, rescale: false });
