/** How one output tensor is made (the planner's per-tensor input): an op over tensors of the listed checkpoints. */
import type { NativeOp } from './native';
import type { SafetensorsDtype } from '../format/dtypes';
import type { ResolvedSparse } from './sparse-params';
import type { RamPlusOpen, RowWeights } from './elementwise-params';
import type { DellaRecipe } from './della-params';
import type { SceRecipe } from './sce-params';
import type { ArceeFusionRecipe } from './arcee-fusion-params';
import type { OpenMoments } from './open-moments';

export interface TensorRecipe {
  op: NativeOp;
  /** Checkpoint indices, in the order the op takes them. */
  models: number[];
  /** copy: [index into `models`]; lerp, lerp_mi: [λ]; linear: one weight per model; nearswap: [t] (models: base, model); ram: [epsilon, λ per model] (models: base first). */
  w: number[];
  dtype: SafetensorsDtype;
  /** sparse only: thresholds, mask keys and factors (models lists the base and every model it names). */
  sparse?: ResolvedSparse;
  /** row_linear only: per-row coefficients (models lists the base first when `rows.base`). */
  rows?: RowWeights;
  /** della only: MAGPRUNE's parameters and rescale factors (models lists the base first). */
  della?: DellaRecipe;
  /** sce only: the selection cut and weights (models lists the base first). */
  sce?: SceRecipe;
  /** arcee_fusion only: rows and threshold (models are [base, model]). */
  arceeFusion?: ArceeFusionRecipe;
  /** ram only: ramplus_tl's λ left for the engine to count from the tensor in memory (w's λ are then placeholders). */
  ramPlus?: RamPlusOpen;
  /** linear only: the weights are decided in the write pass from moments of the tensor (engine/open-moments.ts); `w` is a placeholder. */
  open?: OpenMoments;
}
