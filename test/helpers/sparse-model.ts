/** A model's thinning rule for sparse-merge tests: weight 1, nothing thinned, unless `over` says otherwise. */
import type { SparseModelSpec } from '../../lib/recipes/sparsify';

export const sparseModel = (m: number, over: Partial<SparseModelSpec> = {}): SparseModelSpec => ({
  model: m,
  weight: 1,
  selection: 'magnitude',
  density: 1,
  gamma: 0,
  rescale: 'none',
  ...over,
});
