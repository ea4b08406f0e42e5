// accumulateMoments in 8 f64 lanes with AVX-512 (moments_avx512.cc): lane l is numerics.h's moment lane l, so the sums are
// the scalar truth's bit for bit; cpu_avx2.cc's accumulateMoments calls it where avx512Enabled() and keeps its two 4-lane
// halves for other CPUs (native/tests/kernels_selftest.cc checks both widths against cpu_scalar.cc).
#pragma once
#include <cstddef>

#include "kernels.h"

namespace wm {
namespace avx2 {

void accumulateMomentsAvx512(const void* a, Dtype ta, const void* b, Dtype tb, size_t n, Moments& m);

}  // namespace avx2
}  // namespace wm
