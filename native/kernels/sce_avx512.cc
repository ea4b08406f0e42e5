// sce_avx512.h: SCE's merge arithmetic 8 elements per step, operation for operation sce_avx2.cc's combineLoop
// (native/tests/sce_selftest.cc checks both against the scalar truth, with AVX-512 on and off).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include "avx512_loads.h"
#include "sce_avx512.h"

namespace wm {
namespace avx2 {
namespace {

// The scalar truth's operations per element: the sign election on the kept sum, then num and den added model by
// model, one division and one rounding; signs as masks (a lane's sign agrees with the majority only if t * keep is
// > 0 under a majority of +1, or < 0 under -1: ±0 and NaN never agree).
template <Dtype TO>
__attribute__((target(WM_AVX512_TARGET))) void combineLoop8(const double* base, const double* t, size_t stride, const double* keep, const double* weights,
                                                            size_t m, size_t full, void* out, size_t at) {
  const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0), denFloor = _mm512_set1_pd(1e-6);
  constexpr size_t kMaxCached = 8;  // each model's t * keep once for both loops (the rest computed again, the same bits)
  for (size_t j = 0; j < full; j += 8) {
    const __m512d kept = _mm512_loadu_pd(keep + j);
    __m512d cached[kMaxCached];
    __m512d majority = zero;
    for (size_t k = 0; k < m; ++k) {
      const __m512d tk = rounded8(_mm512_mul_pd(_mm512_loadu_pd(t + k * stride + j), kept));
      if (k < kMaxCached) cached[k] = tk;
      majority = _mm512_add_pd(majority, tk);
    }
    const __mmask8 positive = _mm512_cmp_pd_mask(majority, zero, _CMP_GE_OQ);  // the majority is +1 (NaN: -1)
    __m512d num = zero, den = zero;
    for (size_t k = 0; k < m; ++k) {
      const __m512d tk = k < kMaxCached ? cached[k] : rounded8(_mm512_mul_pd(_mm512_loadu_pd(t + k * stride + j), kept));
      const __mmask8 agree = (positive & _mm512_cmp_pd_mask(tk, zero, _CMP_GT_OQ)) | (~positive & _mm512_cmp_pd_mask(tk, zero, _CMP_LT_OQ));
      const __m512d ew = rounded8(_mm512_mul_pd(_mm512_set1_pd(weights[k]), _mm512_maskz_mov_pd(agree, one)));
      num = _mm512_add_pd(num, rounded8(_mm512_mul_pd(tk, ew)));
      den = _mm512_add_pd(den, ew);
    }
    // max(1e-6, den) as the 4-lane loop's: den unless den < 1e-6 (den is never NaN).
    storeResult8<TO>(out, at + j, _mm512_add_pd(_mm512_loadu_pd(base + j), _mm512_div_pd(num, _mm512_max_pd(denFloor, den))));
  }
}

}  // namespace

void sceCombineAvx512(const double* base, const double* t, size_t stride, const double* keep, const double* weights, size_t m, size_t full, void* out,
                      size_t at, Dtype to) {
  withDtype(to, [&](auto T) { combineLoop8<decltype(T)::value>(base, t, stride, keep, weights, m, full, out, at); });
}

}  // namespace avx2
}  // namespace wm

#endif
