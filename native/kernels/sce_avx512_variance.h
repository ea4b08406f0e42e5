// What SCE's AVX-512 files share (sce_avx512.cc, sce_sums_avx512.cc): 8-lane loads (the last, partial vector masked) as f64 and the f32 variance bits of
// 8 elements from their task vectors (sce.cc's varianceBits in 8 lanes). Include only in those files (avx512_loads.h).
#pragma once
#include <cstddef>
#include <cstdint>

#include "avx512_loads.h"

namespace wm {
namespace avx2 {

// Full vectors take plain loads and stores, only a loop's last, partial vector masked ones: a masked load or store streams from
// memory at a fraction of a plain one's rate on Zen 5 (a loop over 256 MiB: loads 9 against 30 GB/s, stores 17 against 30 GB/s).
constexpr __mmask8 kAllLanes8 = 0xFF;
constexpr __mmask16 kAllLanes16 = 0xFFFF;

// Lanes `lanes` of the 8 elements at i, as f64 (avx2_loads.h's load8 widened); the other lanes 0 and not read.
template <Dtype T>
WM_AVX512_INLINE __m512d loadLanes8(const void* p, size_t i, __mmask8 lanes) {
  if (lanes == kAllLanes8) return _mm512_cvtps_pd(load8<T>(p, i));
  if constexpr (T == Dtype::F32) {
    return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(lanes, static_cast<const float*>(p) + i));
  } else {
    const __m128i h = _mm_maskz_loadu_epi16(lanes, static_cast<const uint16_t*>(p) + i);
    if constexpr (T == Dtype::BF16) {
      return _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
    } else {
      return _mm512_cvtps_pd(_mm256_cvtph_ps(h));
    }
  }
}

// Lanes `lanes` of the 8 32-bit values at p (the other lanes 0 and not read), and their store.
WM_AVX512_INLINE __m256i loadLanes8(const uint32_t* p, __mmask8 lanes) {
  if (lanes == kAllLanes8) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm256_maskz_loadu_epi32(lanes, p);
}
WM_AVX512_INLINE void storeLanes8(uint32_t* p, __mmask8 lanes, __m256i v) {
  if (lanes == kAllLanes8) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  } else {
    _mm256_mask_storeu_epi32(p, lanes, v);
  }
}

// x / m as the scalar truth divides: times 1 / m where m is a power of two (both the one rounding of the same quotient: equal
// bits for every x, NaN and Inf included; the multiply takes a fraction of the divide's time), else the division.
WM_AVX512_INLINE __m512d sceOverCount8(__m512d x, size_t m) {
  if ((m & (m - 1)) == 0) return _mm512_mul_pd(x, _mm512_set1_pd(1.0 / static_cast<double>(m)));
  return _mm512_div_pd(x, _mm512_set1_pd(static_cast<double>(m)));
}

// The mean in model order, / m, the squared deviations in model order, / m, rounded to f32, |bits| with every NaN one
// value above Inf; t_k's 8 lanes at t + k * stride.
WM_AVX512_INLINE __m256i sceVarianceBits8(const double* t, size_t stride, size_t m) {
  const __m256i absMask = _mm256_set1_epi32(0x7FFFFFFF), inf = _mm256_set1_epi32(0x7F800000), nan = _mm256_set1_epi32(0x7FC00000);
  __m512d mean = _mm512_setzero_pd();
  for (size_t k = 0; k < m; ++k) mean = _mm512_add_pd(mean, _mm512_loadu_pd(t + k * stride));
  mean = sceOverCount8(mean, m);
  __m512d v = _mm512_setzero_pd();
  for (size_t k = 0; k < m; ++k) {
    const __m512d d = _mm512_sub_pd(_mm512_loadu_pd(t + k * stride), mean);
    v = _mm512_add_pd(v, rounded8(_mm512_mul_pd(d, d)));
  }
  const __m256i b = _mm256_and_si256(_mm256_castps_si256(_mm512_cvtpd_ps(sceOverCount8(v, m))), absMask);
  return _mm256_mask_mov_epi32(b, _mm256_cmpgt_epi32_mask(b, inf), nan);
}

// sceKeep's rule on 8 elements: (bits << indexBits | index) >= cut, index each lane's count - 1 - i; keys and cut lie below 2^63, so a
// signed compare. The AVX-512 keep masks, merges and sums of squares all take their keep bits from it.
WM_AVX512_INLINE __mmask8 sceKeeps8(__m256i bits, __m512i index, __m128i indexBits, __m512i cuts) {
  return _mm512_cmpge_epi64_mask(_mm512_or_si512(_mm512_sll_epi64(_mm512_cvtepu32_epi64(bits), indexBits), index), cuts);
}

}  // namespace avx2
}  // namespace wm
