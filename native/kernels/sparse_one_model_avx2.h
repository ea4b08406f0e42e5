// The sparse merge of one model (TIES, DARE, breadcrumbs and DELLA's recipes of a single fine-tune) with bf16 sources and
// output in AVX2, 8 elements a step: the 4-lane loop's arithmetic (sparse_avx2.cc) with its per-step branches taken out of
// the loop, 8 elements loaded and stored at once (one bf16 pack for the 8 results). Equal bit for bit to sparsify.h's scalar truth (native/tests/kernels_selftest.cc).
// Include only where WM_HAVE_AVX2_BACKEND is defined.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"
#include "sparsify.h"

namespace wm {
namespace avx2 {

// Whether sparseMergeOneModel takes this dest: one model, bf16 sources and output, rank keys of at most 33 index bits.
bool oneModelMergeApplies(Dtype sources, Dtype to, const SparseParams& p);
// Elements start .. start + n - 1 (n a multiple of 8) of `count`, srcs and out at element start.
void sparseMergeOneModel(const void* const* srcs, const SparseParams& p, uint64_t count, uint64_t start, size_t n, void* out);

}  // namespace avx2
}  // namespace wm
