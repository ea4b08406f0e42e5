// The end of a SIMD row max (arcee_fusion_avx2.cc's 4 lanes, arcee_fusion_avx512.cc's 8): arcee_fusion_rows.h's arceeRowMax
// from the lanes' maxima, as the scalar truth's std::max takes them.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "element_io.h"

namespace wm {

// The lanes folded, then the row's elements from j on (the SIMD loop's tail); where the max is 0, the row's first zero (-0 or
// +0), which the serial loop keeps and the lanes do not know.
inline double finishRowMax(const double* lanes, size_t count, const void* v, Dtype t, size_t r0, size_t j, size_t L) {
  double m = -INFINITY;
  for (size_t k = 0; k < count; ++k) m = std::max(m, lanes[k]);
  for (; j < L; ++j) m = std::max(m, static_cast<double>(loadElementF32(v, t, r0 + j)));
  if (m != 0) return m;
  for (j = 0; loadElementF32(v, t, r0 + j) != 0; ++j) {
  }
  return loadElementF32(v, t, r0 + j);
}

}  // namespace wm
