// arcee_fusion as a tensor-local job (local_job.h): a dest whose threshold is left open ([L, base, model],
// kernels/arcee_fusion.h) gets it from the tensor its worker holds in memory, instead of the planner's three
// radix passes (lib/recipes/arcee-fusion-statistics.ts, each re-reading both models). Each row's KL is computed first,
// over the whole tensor, into scratch memory (8 bytes per row, from the run's local pool; arceeRowKls orders the rows by
// their maxes, so that the exps memo refills least). The three order statistics at ranks floor(q (n - 1)), q = 0.25, 0.5,
// 0.75, of the elements' importance order keys are then found exactly (kernels/key_selection.h): up to 2^16 elements
// from the keys made whole into the scratch (4 bytes per element), in place; above, by a sample of keys and one pass that
// makes the keys a block at a time and counts them into windows around the quartiles, with two radix passes more where the
// windows miss. The threshold is taken in mergekit's f32 steps, and the merge reads the row KLs. A dest marked
// ArceeParams::recomputeKeys (sources and row KLs alone fit the pool: the embedding) keeps no keys at any size.
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
