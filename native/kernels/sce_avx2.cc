// AVX2 path of SCE's chunk arithmetic (sce.h's sceCombine), equal bit for bit to the scalar truth in sce.cc
// (native/tests/sce_selftest.cc checks it on random inputs with special values).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include "avx2_loads.h"
#include "sce.h"

namespace wm {
namespace avx2 {
namespace {

// Four elements a step, each with the scalar truth's operations in its order: the sign election on the
// kept sum, then num and den added model by model, one division and one rounding.
template <Dtype TO>
__attribute__((target("avx2,fma,f16c"))) void combineLoop(const double* base, const double* t, size_t stride, const double* keep, const double* weights,
                                                          size_t m, size_t full, void* out, size_t at) {
  const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0), minusOne = _mm256_set1_pd(-1.0), denFloor = _mm256_set1_pd(1e-6);
  for (size_t j = 0; j < full; j += 4) {
    const __m256d kept = _mm256_loadu_pd(keep + j);
    __m256d majority = zero;
    for (size_t k = 0; k < m; ++k) majority = _mm256_add_pd(majority, rounded(_mm256_mul_pd(_mm256_loadu_pd(t + k * stride + j), kept)));
    majority = _mm256_blendv_pd(minusOne, one, _mm256_cmp_pd(majority, zero, _CMP_GE_OQ));  // NaN: -1
    __m256d num = zero, den = zero;
    for (size_t k = 0; k < m; ++k) {
      const __m256d tk = rounded(_mm256_mul_pd(_mm256_loadu_pd(t + k * stride + j), kept));
      // +1, -1, or 0 for ±0 and NaN (which never equal the majority).
      const __m256d sign = _mm256_blendv_pd(_mm256_and_pd(_mm256_cmp_pd(tk, zero, _CMP_LT_OQ), minusOne), one, _mm256_cmp_pd(tk, zero, _CMP_GT_OQ));
      const __m256d ew = rounded(_mm256_mul_pd(_mm256_set1_pd(weights[k]), _mm256_and_pd(_mm256_cmp_pd(sign, majority, _CMP_EQ_OQ), one)));
      num = _mm256_add_pd(num, rounded(_mm256_mul_pd(tk, ew)));
      den = _mm256_add_pd(den, ew);
    }
    // max(1e-6, den) is std::max(den, 1e-6): den unless den < 1e-6 (den is never NaN: finite weights times 1 or 0).
    storeResult4<TO>(out, at + j, _mm256_add_pd(_mm256_loadu_pd(base + j), _mm256_div_pd(num, _mm256_max_pd(denFloor, den))));
  }
}

}  // namespace

void sceCombine(const double* base, const double* t, size_t stride, const double* keep, const double* weights, size_t m, size_t len, void* out, size_t at,
                Dtype to) {
  const size_t full = len & ~size_t{3};
  withDtype(to, [&](auto T) { combineLoop<decltype(T)::value>(base, t, stride, keep, weights, m, full, out, at); });
  if (full < len) scalar::sceCombine(base + full, t + full, stride, keep + full, weights, m, len - full, out, at + full, to);
}

}  // namespace avx2
}  // namespace wm

#endif
