/** The names of the merge methods weightmix runs, as a recipe's `merge_method` spells them. */
export const MERGE_METHOD_NAMES = [
  'linear',
  'slerp',
  'task_arithmetic',
  'model_stock',
  'passthrough',
  'ties',
  'dare_ties',
  'dare_linear',
  'breadcrumbs',
  'breadcrumbs_ties',
  'karcher',
  'multislerp',
  'nuslerp',
  'nearswap',
  'ram',
  'ramplus_tl',
  'della',
  'della_linear',
  'sce',
  'arcee_fusion',
] as const;

/** A recipe's `merge_method` that weightmix runs. */
export type MergeMethodName = (typeof MERGE_METHOD_NAMES)[number];
