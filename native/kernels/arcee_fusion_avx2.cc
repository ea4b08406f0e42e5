// AVX2 twins of arcee_fusion's per-element arithmetic (arcee_fusion_rows.h): the same operations lane by lane
// (IEEE subtraction, division, product and conversion round alike in any lane), bit for bit the scalar truth.
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "arcee_fusion_rows.h"
#include "arcee_row_max.h"
#include "avx2_loads.h"
#include "element_io.h"

namespace wm {
namespace avx2 {
namespace {

template <Dtype T>
__attribute__((target("avx2,fma,f16c"))) double rowMax(const void* v, size_t r0, size_t L) {
  // Lane maxima as std::max(m, x) takes them (MAXPD returns its second operand, m, for a NaN or an equal value).
  __m256d m4 = _mm256_set1_pd(-INFINITY);
  size_t j = 0;
  for (; j + 4 <= L; j += 4) m4 = _mm256_max_pd(_mm256_cvtps_pd(load4<T>(v, r0 + j)), m4);
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, m4);
  return finishRowMax(lanes, 4, v, T, r0, j, L);
}

template <Dtype T>
__attribute__((target("avx2,fma,f16c"))) void shiftedRow(const void* v, size_t r0, size_t L, double m, double* x) {
  const __m256d mm = _mm256_set1_pd(m);
  size_t j = 0;
  for (; j + 4 <= L; j += 4) _mm256_storeu_pd(x + j, _mm256_sub_pd(_mm256_cvtps_pd(load4<T>(v, r0 + j)), mm));
  for (; j < L; ++j) x[j] = static_cast<double>(loadElementF32(v, T, r0 + j)) - m;
}

template <Dtype DA, Dtype DB>
__attribute__((target("avx2,fma,f16c"))) void keys4(const void* a, const void* b, size_t j0, size_t n, double kl, uint32_t* keys) {
  const __m256d k = _mm256_set1_pd(kl);
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
  const __m128i top = _mm_set1_epi32(static_cast<int>(0x80000000u)), nanKey = _mm_set1_epi32(static_cast<int>(0xFFC00000u));
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(load4<DB>(b, j0 + i)), _mm256_cvtps_pd(load4<DA>(a, j0 + i)));
    const __m128 imp = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_and_pd(d, absMask), k));
    const __m128i bits = _mm_castps_si128(imp);
    // arceeOrderKey: negatives reversed (all bits flipped), the rest with the sign bit set; NaN above +Inf.
    const __m128i key = _mm_xor_si128(bits, _mm_or_si128(_mm_srai_epi32(bits, 31), top));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(keys + i), _mm_castps_si128(_mm_blendv_ps(_mm_castsi128_ps(key), _mm_castsi128_ps(nanKey), _mm_cmpunord_ps(imp, imp))));
  }
  if (i < n) scalar::arceeKeys(a, DA, b, DB, j0 + i, n - i, kl, keys + i);
}

// arceeMergeRow's 4 elements from j: a + d where fl32(|d| * kl) >= threshold (false for a NaN on either side), else a + d * 0.
template <Dtype DA, Dtype DB>
WM_AVX2_INLINE __m256d merged4(const void* a, const void* b, size_t j, __m256d k, __m128 threshold) {
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
  const __m256d a4 = _mm256_cvtps_pd(load4<DA>(a, j));
  const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(load4<DB>(b, j)), a4);
  const __m128 imp = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_and_pd(d, absMask), k));
  // importance >= threshold, widened to the f64 lanes: 1.0 or +0.0.
  const __m256d keep = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_castps_si128(_mm_cmp_ps(imp, threshold, _CMP_GE_OQ))));
  return _mm256_add_pd(a4, rounded(_mm256_mul_pd(d, _mm256_and_pd(keep, _mm256_set1_pd(1.0)))));
}

// 8 elements a step (one store of their results), then 4, then the scalar truth for the last n % 4.
template <Dtype DA, Dtype DB, Dtype TO>
__attribute__((target("avx2,fma,f16c"))) void merge4(const void* a, const void* b, size_t j0, size_t n, double kl, float threshold, void* out) {
  const __m256d k = _mm256_set1_pd(kl);
  const __m128 t = _mm_set1_ps(threshold);
  size_t j = j0;
  for (; j + 8 <= j0 + n; j += 8) storeResult8<TO>(out, j, merged4<DA, DB>(a, b, j, k, t), merged4<DA, DB>(a, b, j + 4, k, t));
  for (; j + 4 <= j0 + n; j += 4) storeResult4<TO>(out, j, merged4<DA, DB>(a, b, j, k, t));
  if (j < j0 + n) scalar::arceeMergeRow(a, DA, b, DB, j, j0 + n - j, kl, threshold, out, TO);
}

template <Dtype DA, Dtype DB>
__attribute__((target("avx2,fma,f16c"))) bool same4(const void* a, const void* b, size_t j0, size_t n, double klLo, double klHi) {
  const __m256d kLo = _mm256_set1_pd(klLo), kHi = _mm256_set1_pd(klHi);
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
  __m128i differ = _mm_setzero_si128();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d d = _mm256_and_pd(_mm256_sub_pd(_mm256_cvtps_pd(load4<DB>(b, j0 + i)), _mm256_cvtps_pd(load4<DA>(a, j0 + i))), absMask);
    differ = _mm_or_si128(differ, _mm_xor_si128(_mm_castps_si128(_mm256_cvtpd_ps(_mm256_mul_pd(d, kLo))), _mm_castps_si128(_mm256_cvtpd_ps(_mm256_mul_pd(d, kHi)))));
  }
  return _mm_testz_si128(differ, differ) && (i == n || scalar::arceeSameImportances(a, DA, b, DB, j0 + i, n - i, klLo, klHi));
}

}  // namespace

bool arceeSameImportances(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double klLo, double klHi) {
  if (avx512Enabled()) return arceeSameImportancesAvx512(a, ta, b, tb, j0, n, klLo, klHi);
  bool same = false;
  withDtype(ta, [&](auto A) { withDtype(tb, [&](auto B) { same = same4<decltype(A)::value, decltype(B)::value>(a, b, j0, n, klLo, klHi); }); });
  return same;
}

void arceeMergeRow(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, float threshold, void* out, Dtype to) {
  if (avx512Enabled()) return arceeMergeRowAvx512(a, ta, b, tb, j0, n, kl, threshold, out, to);
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) {
      withDtype(to, [&](auto O) { merge4<decltype(A)::value, decltype(B)::value, decltype(O)::value>(a, b, j0, n, kl, threshold, out); });
    });
  });
}

double arceeRowMax(const void* v, Dtype t, size_t r0, size_t L) {
  if (avx512Enabled()) return arceeRowMaxAvx512(v, t, r0, L);
  double m = 0;
  withDtype(t, [&](auto T) { m = rowMax<decltype(T)::value>(v, r0, L); });
  return m;
}

void arceeShiftedRow(const void* v, Dtype t, size_t r0, size_t L, double m, double* x) {
  withDtype(t, [&](auto T) { shiftedRow<decltype(T)::value>(v, r0, L, m, x); });
}

__attribute__((target("avx2,fma,f16c"))) void arceeRatios(const double* ea, double sa, const double* eb, double sb, size_t L, double* p, double* r) {
  if (avx512Enabled()) return arceeRatiosAvx512(ea, sa, eb, sb, L, p, r);
  const __m256d sa4 = _mm256_set1_pd(sa), sb4 = _mm256_set1_pd(sb), eps = _mm256_set1_pd(1e-8);
  size_t j = 0;
  for (; j + 4 <= L; j += 4) {
    const __m256d p4 = _mm256_add_pd(_mm256_div_pd(_mm256_loadu_pd(eb + j), sb4), eps);
    const __m256d q4 = _mm256_add_pd(_mm256_div_pd(_mm256_loadu_pd(ea + j), sa4), eps);
    _mm256_storeu_pd(p + j, p4);
    _mm256_storeu_pd(r + j, _mm256_div_pd(p4, q4));
  }
  if (j < L) scalar::arceeRatios(ea + j, sa, eb + j, sb, L - j, p + j, r + j);
}

void arceeKeys(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, uint32_t* keys) {
  if (avx512Enabled()) return arceeKeysAvx512(a, ta, b, tb, j0, n, kl, keys);
  withDtype(ta, [&](auto A) { withDtype(tb, [&](auto B) { keys4<decltype(A)::value, decltype(B)::value>(a, b, j0, n, kl, keys); }); });
}

}  // namespace avx2
}  // namespace wm
#endif
