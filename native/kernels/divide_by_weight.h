// RN(v / w) for v = RN(w * e) without a division: the normalize step of a one-model sparse merge
// (sparse_avx2.cc), where a division per 4 elements held up the whole loop. Bit for bit the
// quotient `v / w` (native/tests/kernels_selftest.cc checks it on random and special values).
//
// Why it is exact, for |w| in [2^-100, 2^100] and e = 0 or |e| in [2^-800, 2^800] (other lanes divide):
//  1. |w e| lies in [2^-900, 2^900], far from underflow, so the product's rounding error v - w e is a
//     double, and r = fma(-e, w, v) = v - w e exactly.
//  2. e is within one ulp of v / w: |v / w - e| = |r| / |w| <= ulp(w e) / (2 |w|), and with
//     |w e| in [2^j, 2^(j+1)), ulp(w e) = 2^(j-52) while |e| >= 2^j / |w|, so ulp(e) > 2^(j-53) / |w|:
//     the distance is below ulp(e).
//  3. Markstein's theorem (IBM J. Res. Dev. 34(1), 1990; Handbook of Floating-Point Arithmetic,
//     2nd ed., Th. 4.10): with y = RN(1 / w) and q within one ulp of a / b, RN(q + (a - b q) y) is
//     RN(a / b). So fma(r, y, e) is v / w rounded.
//  4. e = ±0: v = ±0 and v / w has e's sign; the fma would give +0 for -0, so those lanes take e.
#pragma once
#include <immintrin.h>

#include <cmath>

#include "avx2_loads.h"

namespace wm {
namespace avx2 {

struct WeightDivisor {
  __m256d w, y;  // the weight and RN(1 / w)
  bool exact;    // |w| in [2^-100, 2^100]: the proof's range; else divide
};

__attribute__((target("avx2,fma,f16c"))) inline WeightDivisor weightDivisor(double w) {
  const double a = std::fabs(w);
  return {_mm256_set1_pd(w), _mm256_set1_pd(1.0 / w), a >= 0x1.0p-100 && a <= 0x1.0p100};
}

// v / w, rounded, for v = RN(w * e) lane by lane; d.exact must hold.
WM_AVX2_INLINE __m256d divideProductByWeight(__m256d v, __m256d e, const WeightDivisor& d) {
  const __m256d absE = _mm256_and_pd(e, _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll)));
  const __m256d zero = _mm256_cmp_pd(e, _mm256_setzero_pd(), _CMP_EQ_OQ);
  const __m256d inRange = _mm256_and_pd(_mm256_cmp_pd(absE, _mm256_set1_pd(0x1.0p-800), _CMP_GE_OQ),
                                        _mm256_cmp_pd(absE, _mm256_set1_pd(0x1.0p800), _CMP_LE_OQ));
  const __m256d r = _mm256_fnmadd_pd(e, d.w, v);  // v - w e, exact (1.)
  const __m256d q = _mm256_blendv_pd(_mm256_fmadd_pd(r, d.y, e), e, zero);
  const __m256d fast = _mm256_or_pd(zero, inRange);
  if (_mm256_movemask_pd(fast) == 0xF) return q;
  return _mm256_blendv_pd(_mm256_div_pd(v, d.w), q, fast);  // Inf, NaN, extreme magnitudes: the division itself
}

}  // namespace avx2
}  // namespace wm
