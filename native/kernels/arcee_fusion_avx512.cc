// arcee_fusion's order keys, merge row, importance check, softmax ratios and row maxes in 8 lanes (AVX-512), where avx512Enabled():
// arcee_fusion_avx2.cc's keys4, merge4, same4, arceeRatios and rowMax lane for lane, bit for bit the scalar truth.
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <cmath>

#include "arcee_fusion_rows.h"
#include "arcee_row_max.h"
#include "avx512_loads.h"

namespace wm {
namespace avx2 {
namespace {

template <Dtype DA, Dtype DB>
__attribute__((target(WM_AVX512_TARGET))) void keys8(const void* a, const void* b, size_t j0, size_t n, double kl, uint32_t* keys) {
  const __m512d k = _mm512_set1_pd(kl);
  const __m256i top = _mm256_set1_epi32(static_cast<int>(0x80000000u)), nanKey = _mm256_set1_epi32(static_cast<int>(0xFFC00000u));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(load8<DB>(b, j0 + i)), _mm512_cvtps_pd(load8<DA>(a, j0 + i)));
    const __m256 imp = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_abs_pd(d), k));
    const __m256i bits = _mm256_castps_si256(imp);
    // arceeOrderKey: negatives reversed (all bits flipped), the rest with the sign bit set; NaN above +Inf.
    const __m256i key = _mm256_xor_si256(bits, _mm256_or_si256(_mm256_srai_epi32(bits, 31), top));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys + i), _mm256_mask_mov_epi32(key, _mm256_cmp_ps_mask(imp, imp, _CMP_UNORD_Q), nanKey));
  }
  if (i < n) scalar::arceeKeys(a, DA, b, DB, j0 + i, n - i, kl, keys + i);
}

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

template <Dtype DA, Dtype DB>
__attribute__((target(WM_AVX512_TARGET))) bool same8(const void* a, const void* b, size_t j0, size_t n, double klLo, double klHi) {
  const __m512d kLo = _mm512_set1_pd(klLo), kHi = _mm512_set1_pd(klHi);
  __m256i differ = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512d d = _mm512_abs_pd(_mm512_sub_pd(_mm512_cvtps_pd(load8<DB>(b, j0 + i)), _mm512_cvtps_pd(load8<DA>(a, j0 + i))));
    differ = _mm256_or_si256(differ, _mm256_xor_si256(_mm256_castps_si256(_mm512_cvtpd_ps(_mm512_mul_pd(d, kLo))), _mm256_castps_si256(_mm512_cvtpd_ps(_mm512_mul_pd(d, kHi)))));
  }
  return _mm256_testz_si256(differ, differ) && (i == n || scalar::arceeSameImportances(a, DA, b, DB, j0 + i, n - i, klLo, klHi));
}

template <Dtype T>
__attribute__((target(WM_AVX512_TARGET))) double rowMax8(const void* v, size_t r0, size_t L) {
  // Lane maxima as std::max(m, x) takes them (VMAXPD returns its second operand, m, for a NaN or an equal value).
  __m512d m8 = _mm512_set1_pd(-INFINITY);
  size_t j = 0;
  for (; j + 8 <= L; j += 8) m8 = _mm512_max_pd(_mm512_cvtps_pd(load8<T>(v, r0 + j)), m8);
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, m8);
  return finishRowMax(lanes, 8, v, T, r0, j, L);
}

}  // namespace

double arceeRowMaxAvx512(const void* v, Dtype t, size_t r0, size_t L) {
  double m = 0;
  withDtype(t, [&](auto T) { m = rowMax8<decltype(T)::value>(v, r0, L); });
  return m;
}

// Three divisions per element: twice as many lanes per instruction as the AVX2 loop (arcee_fusion's row KLs).
__attribute__((target(WM_AVX512_TARGET))) void arceeRatiosAvx512(const double* ea, double sa, const double* eb, double sb, size_t L, double* p, double* r) {
  const __m512d sa8 = _mm512_set1_pd(sa), sb8 = _mm512_set1_pd(sb), eps = _mm512_set1_pd(1e-8);
  size_t j = 0;
  for (; j + 8 <= L; j += 8) {
    const __m512d p8 = _mm512_add_pd(_mm512_div_pd(_mm512_loadu_pd(eb + j), sb8), eps);
    const __m512d q8 = _mm512_add_pd(_mm512_div_pd(_mm512_loadu_pd(ea + j), sa8), eps);
    _mm512_storeu_pd(p + j, p8);
    _mm512_storeu_pd(r + j, _mm512_div_pd(p8, q8));
  }
  if (j < L) scalar::arceeRatios(ea + j, sa, eb + j, sb, L - j, p + j, r + j);
}

bool arceeSameImportancesAvx512(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double klLo, double klHi) {
  bool same = false;
  withDtype(ta, [&](auto A) { withDtype(tb, [&](auto B) { same = same8<decltype(A)::value, decltype(B)::value>(a, b, j0, n, klLo, klHi); }); });
  return same;
}

void arceeKeysAvx512(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, uint32_t* keys) {
  withDtype(ta, [&](auto A) { withDtype(tb, [&](auto B) { keys8<decltype(A)::value, decltype(B)::value>(a, b, j0, n, kl, keys); }); });
}

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
