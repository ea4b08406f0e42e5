// RAM's merge and nearswap with AVX-512 (elementwise_avx512.cc): elementwise_avx2.cc's loops in 8 lanes, the same bits as the
// scalar truths; elementwise_avx2.cc calls them where avx512Enabled() and keeps its 4-lane loops for the rest and for other CPUs.
#pragma once
#include <cstddef>

#include "elementwise.h"
#include "kernels.h"

namespace wm {
namespace avx2 {

// The most models the SIMD RAM loops take (their per-model registers are arrays of this size); more take the scalar path.
constexpr size_t kMaxRamModels = 8;

// Elements [0, n), n a multiple of 8, every source RAM reads of dtype t, at most kMaxRamModels models.
void ramMergeAvx512(const void* const* srcs, Dtype t, const RamParams& p, size_t n, void* out, Dtype to);
// nearswap of a (base) and b (model), both of dtype t, elements [0, n), n a multiple of 8.
void nearswapAvx512(const void* a, const void* b, Dtype t, double tv, size_t n, void* out, Dtype to);

}  // namespace avx2
}  // namespace wm
