// arcee_fusion as a tensor-local job (local_job.h): a dest whose threshold is left open ([L, base, model],
// kernels/arcee_fusion.h) gets it from the tensor its worker holds in memory, instead of the planner's three
// radix passes (lib/recipes/arcee-fusion-statistics.ts, each re-reading both models). Each row's KL (first, over
// the whole tensor: arceeRowKls orders its rows by their maxes, so that the exps memo refills least) and every
// element's importance order key are computed once into scratch memory (8 bytes per row, 4 per element, from
// the run's local pool); the three order statistics at ranks floor(q (n - 1)), q = 0.25, 0.5, 0.75, are found
// exactly by a radix selection over the keys in memory, the threshold in mergekit's f32 steps, and the merge
// reads the row KLs. A dest whose keys do not fit beside its sources (ArceeParams::recomputeKeys: the embedding) keeps
// only the row KLs and computes the keys again from them in each counting pass, cheap SIMD next to re-reading the files.
// The same threshold as the streaming passes: test/tensor-local-arcee.test.ts compares the bytes.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/arcee_fusion.h"
#include "kernels/kernels.h"

namespace wm {

// Whether any arcee_fusion dest of the job has its threshold left open.
bool isLocalArcee(const std::vector<ArceeParams>& dests);

// The scratch bytes resolveLocalArcee needs: the row KLs of every open dest, and its keys unless it recomputes them.
uint64_t localArceeScratchBytes(const std::vector<ArceeParams>& dests, uint64_t count);

// Resolves the open dests' threshold and row KLs from their sources in memory (srcs[s]: element 0 of source s);
// `scratch` holds localArceeScratchBytes(dests, count) bytes, 8-byte aligned, and must outlive the merge, which reads the KLs from it.
void resolveLocalArcee(std::vector<ArceeParams>& dests, const void* const* srcs, const Dtype* types, uint64_t count, uint8_t* scratch);

// mergekit's calculate_dynamic_threshold, median + 1.5 * (q3 - q1), each step rounded to f32 as
// lib/recipes/arcee-fusion-statistics.ts's fusionThreshold does with Math.fround (f64 operations, then f32).
float arceeFusionThreshold(float q1, float median, float q3);

// The importance (an f32 value) of an order key: arceeOrderKey's inverse (every NaN key a NaN).
float arceeImportanceOfKey(uint32_t key);

}  // namespace wm
