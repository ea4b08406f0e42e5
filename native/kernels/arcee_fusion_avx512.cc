// arcee_fusion's merge row in 8 lanes (AVX-512), where avx512Enabled(): arcee_fusion_avx2.cc's merge4 lane for lane,
// bit for bit the scalar truth.
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include "arcee_fusion_rows.h"
#include "avx512_loads.h"

namespace wm {
namespace avx2 {
namespace {

template <Dtype DA, Dtype DB, Dtype TO>
__attribute__((target(WM_AVX512_TARGET))) void merge8(const void* a, const void* b, size_t j0, size_t n, double kl, float threshold, void* out) {
  const __m512d k = _mm512_set1_pd(kl), one = _mm512_set1_pd(1.0);
  const __m256 t = _mm256_set1_ps(threshold);
  size_t j = j0;
  for (; j + 8 <= j0 + n; j += 8) {
    const __m512d a8 = _mm512_cvtps_pd(load8<DA>(a, j));
    const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(load8<DB>(b, j)), a8);
    const __m256 imp = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_abs_pd(d), k));
    // importance >= threshold (false for a NaN on either side): d times 1.0 or +0.0, as the scalar product.
    const __mmask8 keep = _mm256_cmp_ps_mask(imp, t, _CMP_GE_OQ);
    storeResult8<TO>(out, j, _mm512_add_pd(a8, rounded8(_mm512_mul_pd(d, _mm512_maskz_mov_pd(keep, one)))));
  }
  if (j < j0 + n) scalar::arceeMergeRow(a, DA, b, DB, j, j0 + n - j, kl, threshold, out, TO);
}

}  // namespace

void arceeMergeRowAvx512(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, float threshold, void* out, Dtype to) {
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) {
      withDtype(to, [&](auto O) { merge8<decltype(A)::value, decltype(B)::value, decltype(O)::value>(a, b, j0, n, kl, threshold, out); });
    });
  });
}

}  // namespace avx2
}  // namespace wm
#endif
