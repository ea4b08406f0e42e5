// arcee_fusion's per-element arithmetic, scalar truth (arcee_fusion_rows.h; dispatch.cc picks it or the AVX2 twin).
#include "arcee_fusion_rows.h"

#include <algorithm>
#include <cmath>

#include "arcee_fusion.h"
#include "cpu_backends.h"
#include "element_io.h"

namespace wm {

double scalar::arceeRowMax(const void* v, Dtype t, size_t r0, size_t L) {
  double m = -INFINITY;
  for (size_t j = 0; j < L; ++j) m = std::max(m, static_cast<double>(loadElementF32(v, t, r0 + j)));
  return m;
}

void scalar::arceeShiftedRow(const void* v, Dtype t, size_t r0, size_t L, double m, double* x) {
  for (size_t j = 0; j < L; ++j) x[j] = static_cast<double>(loadElementF32(v, t, r0 + j)) - m;
}

void scalar::arceeRatios(const double* ea, double sa, const double* eb, double sb, size_t L, double* p, double* r) {
  for (size_t j = 0; j < L; ++j) {
    p[j] = eb[j] / sb + 1e-8;
    r[j] = p[j] / (ea[j] / sa + 1e-8);
  }
}

void scalar::arceeKeys(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, uint32_t* keys) {
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) {
      constexpr Dtype DA = decltype(A)::value, DB = decltype(B)::value;
      for (size_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(loadElem<DB>(b, j0 + i)) - static_cast<double>(loadElem<DA>(a, j0 + i));
        keys[i] = arceeOrderKey(static_cast<float>(std::fabs(d) * kl));
      }
    });
  });
}

bool scalar::arceeSameImportances(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double klLo, double klHi) {
  bool same = true;
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) {
      constexpr Dtype DA = decltype(A)::value, DB = decltype(B)::value;
      for (size_t i = 0; i < n && same; ++i) {
        const double d = std::fabs(static_cast<double>(loadElem<DB>(b, j0 + i)) - static_cast<double>(loadElem<DA>(a, j0 + i)));
        same = num::f32Bits(static_cast<float>(d * klLo)) == num::f32Bits(static_cast<float>(d * klHi));
      }
    });
  });
  return same;
}

void scalar::arceeMergeRow(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, float threshold, void* out, Dtype to) {
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) {
      constexpr Dtype DA = decltype(A)::value, DB = decltype(B)::value;
      for (size_t j = j0; j < j0 + n; ++j) {
        const double av = loadElem<DA>(a, j);
        const double d = static_cast<double>(loadElem<DB>(b, j)) - av;
        // NaN * 0 is NaN, as mergekit's products; a NaN importance or threshold keeps nothing.
        const double kept = static_cast<float>(std::fabs(d) * kl) >= threshold ? 1.0 : 0.0;
        storeRoundedOnce(out, to, j, av + d * kept);
      }
    });
  });
}

}  // namespace wm
