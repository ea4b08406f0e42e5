// arcee_kl.h's term bounds in 8 lanes of AVX-512 (where avx512Enabled()): arcee_kl_avx2.cc's block8 in one vector, the
// scalar truth's operations lane by lane, the same bits (native/tests/arcee_selftest.cc).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <algorithm>

#include "arcee_kl.h"
#include "avx512_loads.h"

namespace wm {
namespace avx2 {
namespace {

// One block of 8 elements: the polynomial where all 8 have p > 0 and |r - 1| <= kArceeNearOne (returns true), else
// nothing (false).
WM_AVX512_INLINE bool block8(const double* p, const double* r, double* lo, double* hi) {
  const __m512d pv = _mm512_loadu_pd(p), x = _mm512_sub_pd(_mm512_loadu_pd(r), _mm512_set1_pd(1.0));
  const __mmask8 near = _mm512_cmp_pd_mask(pv, _mm512_setzero_pd(), _CMP_GT_OQ) & _mm512_cmp_pd_mask(_mm512_abs_pd(x), _mm512_set1_pd(kArceeNearOne), _CMP_LE_OQ);
  if (near != 0xFF) return false;  // the exact terms, after the row's loop (arceeKlBlocks)
  __m512d q = _mm512_set1_pd(kArceeLog1pQ[8]);
  for (int k = 7; k >= 0; --k) q = _mm512_fmadd_pd(x, q, _mm512_set1_pd(kArceeLog1pQ[k]));
  const __m512d l = _mm512_fmadd_pd(rounded8(_mm512_mul_pd(x, x)), q, x);
  // kArceeLogSteps bit patterns toward -Inf (lo) and +Inf (hi): a negative value's bits grow downward; x == 0 lanes: +0.
  const __m512i step = _mm512_mask_blend_epi64(_mm512_cmp_pd_mask(l, _mm512_setzero_pd(), _CMP_LT_OQ), _mm512_set1_epi64(kArceeLogSteps),
                                               _mm512_set1_epi64(-kArceeLogSteps));
  const __mmask8 nonzero = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_NEQ_UQ);
  const __m512d l0 = _mm512_maskz_mov_pd(nonzero, _mm512_castsi512_pd(_mm512_sub_epi64(_mm512_castpd_si512(l), step)));
  const __m512d h0 = _mm512_maskz_mov_pd(nonzero, _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(l), step)));
  _mm512_storeu_pd(lo, rounded8(_mm512_mul_pd(pv, l0)));
  _mm512_storeu_pd(hi, rounded8(_mm512_mul_pd(pv, h0)));
  return true;
}

}  // namespace

__attribute__((target(WM_AVX512_TARGET))) bool arceeKlTermsAvx512(const double* p, const double* r, size_t n, double* lo, double* hi) {
  return arceeKlBlocks(p, r, n, lo, hi, block8);
}

}  // namespace avx2
}  // namespace wm
#endif
