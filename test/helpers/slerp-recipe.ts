/** The mergekit slerp recipe the method, batch and device tests share, and the bench's batch section. */

/** A slerp of one slice, layers [0, layers) of `base` (also base_model) and of `other`, at `t`; `extra` keys follow `parameters`. */
export function slerpSliceRecipe(base: string, other: string, layers: number, t: unknown, extra: Record<string, unknown> = {}) {
  return {
    merge_method: 'slerp',
    base_model: base,
    slices: [
      {
        sources: [
          { model: base, layer_range: [0, layers] },
          { model: other, layer_range: [0, layers] },
        ],
      },
    ],
    parameters: { t },
    ...extra,
  };
}
