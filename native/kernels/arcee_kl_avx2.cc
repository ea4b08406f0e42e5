// arcee_kl.h's term bounds in 4 lanes of AVX2 + FMA (two vectors per block of 8; 8 lanes in arcee_kl_avx512.cc where
// avx512Enabled()): the scalar truth's operations lane by lane, the same bits (native/tests/arcee_selftest.cc).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <algorithm>

#include "arcee_kl.h"
#include "avx2_loads.h"

namespace wm {
namespace avx2 {
namespace {

// Lanes of a block the polynomial may take: p > 0 and |r - 1| <= kArceeNearOne (false for NaN).
WM_AVX2_INLINE __m256d nearOne4(__m256d p, __m256d x) {
  const __m256d absX = _mm256_andnot_pd(_mm256_set1_pd(-0.0), x);
  return _mm256_and_pd(_mm256_cmp_pd(p, _mm256_setzero_pd(), _CMP_GT_OQ), _mm256_cmp_pd(absX, _mm256_set1_pd(kArceeNearOne), _CMP_LE_OQ));
}

// The polynomial's bounds of log(1 + x) times p (arcee_kl.cc's polynomialLogBounds; x == 0 lanes: +0).
WM_AVX2_INLINE void terms4(__m256d p, __m256d x, double* lo, double* hi) {
  __m256d q = _mm256_set1_pd(kArceeLog1pQ[8]);
  for (int k = 7; k >= 0; --k) q = _mm256_fmadd_pd(x, q, _mm256_set1_pd(kArceeLog1pQ[k]));
  const __m256d l = _mm256_fmadd_pd(rounded(_mm256_mul_pd(x, x)), q, x);
  // kArceeLogSteps bit patterns toward -Inf (lo) and +Inf (hi): a negative value's bits grow downward.
  const __m256i step = _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(_mm256_set1_epi64x(kArceeLogSteps)),
                                                            _mm256_castsi256_pd(_mm256_set1_epi64x(-kArceeLogSteps)), l));
  const __m256d nonzero = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_NEQ_UQ);
  const __m256d l0 = _mm256_and_pd(nonzero, _mm256_castsi256_pd(_mm256_sub_epi64(_mm256_castpd_si256(l), step)));
  const __m256d h0 = _mm256_and_pd(nonzero, _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(l), step)));
  _mm256_storeu_pd(lo, rounded(_mm256_mul_pd(p, l0)));
  _mm256_storeu_pd(hi, rounded(_mm256_mul_pd(p, h0)));
}

// One block of 8 elements: the polynomial where all 8 are near 1 (returns true), else nothing (false).
WM_AVX2_INLINE bool block8(const double* p, const double* r, double* lo, double* hi) {
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d p0 = _mm256_loadu_pd(p), p1 = _mm256_loadu_pd(p + 4);
  const __m256d x0 = _mm256_sub_pd(_mm256_loadu_pd(r), one), x1 = _mm256_sub_pd(_mm256_loadu_pd(r + 4), one);
  // Not all near 1: the exact terms, after the row's loop (arceeKlBlocks).
  if (_mm256_movemask_pd(_mm256_and_pd(nearOne4(p0, x0), nearOne4(p1, x1))) != 0xF) return false;
  terms4(p0, x0, lo, hi);
  terms4(p1, x1, lo + 4, hi + 4);
  return true;
}

}  // namespace

__attribute__((target("avx2,fma,f16c"))) bool arceeKlTerms(const double* p, const double* r, size_t n, double* lo, double* hi) {
  if (avx512Enabled()) return arceeKlTermsAvx512(p, r, n, lo, hi);
  return arceeKlBlocks(p, r, n, lo, hi, block8);
}

}  // namespace avx2
}  // namespace wm
#endif
