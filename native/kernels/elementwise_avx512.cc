// elementwise_avx512.h: RAM's merge and nearswap 8 elements per step, operation for operation elementwise_avx2.cc's loops
// (native/tests/elementwise_selftest.cc checks both against the scalar truths, with AVX-512 on and off).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <stdexcept>

#include "avx512_loads.h"
#include "elementwise_avx512.h"

namespace wm {
namespace avx2 {
namespace {

template <Dtype T, Dtype TO>
__attribute__((target(WM_AVX512_TARGET))) void ramMergeLoop8(const void* const* srcs, const RamParams& p, size_t n, void* out) {
  const size_t m = p.sources.size();
  const __m256 eps = _mm256_set1_ps(p.epsilon);
  const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
  const __m256i oneI = _mm256_set1_epi32(1);
  __m512d lambda[kMaxRamModels], d[kMaxRamModels];
  __mmask8 mask[kMaxRamModels];
  for (size_t k = 0; k < m; ++k) lambda[k] = _mm512_set1_pd(p.lambda[k]);
  for (size_t j = 0; j + 8 <= n; j += 8) {
    const __m256 b32 = load8<T>(srcs[p.base], j);
    const __m512d b = _mm512_cvtps_pd(b32);
    __m256i c = _mm256_setzero_si256();
    for (size_t k = 0; k < m; ++k) {
      const __m256 x32 = load8<T>(srcs[p.sources[k]], j);
      d[k] = _mm512_sub_pd(_mm512_cvtps_pd(x32), b);
      // |fl32(x - base)| > epsilon, ordered (NaN: false).
      mask[k] = _mm256_cmp_ps_mask(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(x32, b32)), eps, _CMP_GT_OQ);
      c = _mm256_mask_add_epi32(c, mask[k], c, oneI);
    }
    // u = (c == 1), o = (c > 1), div = c > 1 ? c : 1, as f64 lanes.
    const __mmask8 alone = _mm256_cmpeq_epi32_mask(c, oneI), many = _mm256_cmpgt_epi32_mask(c, oneI);
    const __m512d u = _mm512_maskz_mov_pd(alone, one), o = _mm512_maskz_mov_pd(many, one);
    const __m512d div = _mm512_mask_mov_pd(one, many, _mm512_cvtepi32_pd(c));
    // Where no lane is shared every divisor is 1, and x / 1 is x bit for bit: the division is skipped.
    const bool anyShared = many != 0;
    __m512d sum = zero;
    for (size_t k = 0; k < m; ++k) {
      const __m512d z = _mm512_mask_mov_pd(rounded8(_mm512_mul_pd(d[k], zero)), mask[k], d[k]);  // d * 0 keeps NaN and Inf as NaN
      const __m512d unique = rounded8(_mm512_mul_pd(rounded8(_mm512_mul_pd(z, u)), lambda[k]));
      const __m512d zo = rounded8(_mm512_mul_pd(z, o));
      const __m512d shared = anyShared ? _mm512_div_pd(zo, div) : zo;
      sum = _mm512_add_pd(sum, _mm512_add_pd(unique, shared));
    }
    storeResult8<TO>(out, j, _mm512_add_pd(b, sum));
  }
}

// nearswap, 8 elements per step, term by term as elementwise_avx2.cc's nearswapLoop.
template <Dtype T, Dtype TO>
__attribute__((target(WM_AVX512_TARGET))) void nearswapLoop8(const void* a, const void* b, double t, size_t n, void* out) {
  const __m512d floor = _mm512_set1_pd(1e-6), tv = _mm512_set1_pd(t), zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
  for (size_t j = 0; j + 8 <= n; j += 8) {
    const __m512d x = _mm512_cvtps_pd(load8<T>(a, j)), y = _mm512_cvtps_pd(load8<T>(b, j));
    const __m512d diff = _mm512_abs_pd(_mm512_sub_pd(x, y));
    // Ordered compares: a NaN difference (and so a NaN w) passes through both, as the scalar ternaries let it.
    __m512d w = _mm512_div_pd(tv, _mm512_mask_mov_pd(diff, _mm512_cmp_pd_mask(diff, floor, _CMP_LT_OQ), floor));
    w = _mm512_mask_mov_pd(w, _mm512_cmp_pd_mask(w, zero, _CMP_LT_OQ), zero);
    w = _mm512_mask_mov_pd(w, _mm512_cmp_pd_mask(w, one, _CMP_GT_OQ), one);
    storeResult8<TO>(out, j, _mm512_add_pd(rounded8(_mm512_mul_pd(w, y)), rounded8(_mm512_mul_pd(_mm512_sub_pd(one, w), x))));
  }
}

}  // namespace

void nearswapAvx512(const void* a, const void* b, Dtype t, double tv, size_t n, void* out, Dtype to) {
  withDtype(t, [&](auto T) { withDtype(to, [&](auto O) { nearswapLoop8<decltype(T)::value, decltype(O)::value>(a, b, tv, n, out); }); });
}

void ramMergeAvx512(const void* const* srcs, Dtype t, const RamParams& p, size_t n, void* out, Dtype to) {
  if (p.sources.size() > kMaxRamModels) throw std::logic_error("internal: ramMergeAvx512 takes at most kMaxRamModels models");
  withDtype(t, [&](auto T) { withDtype(to, [&](auto O) { ramMergeLoop8<decltype(T)::value, decltype(O)::value>(srcs, p, n, out); }); });
}

}  // namespace avx2
}  // namespace wm

#endif  // WM_HAVE_AVX2_BACKEND
