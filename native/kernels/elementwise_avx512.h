// RAM's merge with AVX-512 (elementwise_avx512.cc): elementwise_avx2.cc's loop in 8 lanes, the same bits as the scalar
// truth; elementwise_avx2.cc calls it where avx512Enabled() and keeps its 4-lane loop for the rest and for other CPUs.
#pragma once
#include <cstddef>

#include "elementwise.h"
#include "kernels.h"

namespace wm {
namespace avx2 {

// Elements [0, n), n a multiple of 8, every source RAM reads of dtype t, at most 8 models.
void ramMergeAvx512(const void* const* srcs, Dtype t, const RamParams& p, size_t n, void* out, Dtype to);

}  // namespace avx2
}  // namespace wm
