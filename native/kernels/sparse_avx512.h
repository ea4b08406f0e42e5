// sparsify.h's merge in 8 f64 lanes with AVX-512 (sparse_avx512.cc), the same bits as the scalar truth;
// sparse_avx2.cc calls it where the CPU has AVX-512F/DQ/BW/VL and keeps its 4-lane loop for the rest.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"
#include "sparsify.h"

namespace wm {
namespace avx2 {

// Elements [start, start + n) of a job of `count`, n a multiple of 8, every source the merge reads of
// dtype t, at most kSimdSparseMaxModels models: srcs[s] and out point at element `start`.
void sparseMergeAvx512(const void* const* srcs, Dtype t, const SparseParams& p, uint64_t count, uint64_t start, size_t n, void* out, Dtype to);

}  // namespace avx2
}  // namespace wm
