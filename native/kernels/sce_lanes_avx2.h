// What SCE's AVX2 files share (sce_avx2.cc's chunk loops, sce_registers_avx2.cc and sce_sums_avx2.cc with the task vectors in
// registers): the scalar truth's per-element steps (sce.cc) in 4 lanes, on task vectors in memory or in registers, and the loads and
// stores of a loop's last, partial 4 elements. Include only in those files (avx2_loads.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "avx2_loads.h"

namespace wm {
namespace avx2 {

// Model k's task vector t = x - base of 4 elements: stored as f64 (model k's lanes at t + k * stride), or held in registers (t[k]).
struct Tasks4InMemory {
  const double* t;
  size_t stride;
  WM_AVX2_INLINE __m256d operator()(size_t k) const { return _mm256_loadu_pd(t + k * stride); }
};
struct Tasks4InRegisters {
  const __m256d* t;
  WM_AVX2_INLINE __m256d operator()(size_t k) const { return t[k]; }
};

// x / m as the scalar truth divides: times 1 / m where m is a power of two (the same one rounding of the same quotient), else divided.
WM_AVX2_INLINE __m256d overCount(__m256d x, size_t m) {
  if ((m & (m - 1)) == 0) return _mm256_mul_pd(x, _mm256_set1_pd(1.0 / static_cast<double>(m)));
  return _mm256_div_pd(x, _mm256_set1_pd(static_cast<double>(m)));
}

// The scalar varianceBits's operations per element: the mean in model order, / m, the squared deviations in model order, / m,
// rounded to f32, |bits| with every NaN one value above Inf.
template <typename TaskAt>
WM_AVX2_INLINE __m128i varianceBits4(TaskAt taskAt, size_t m) {
  const __m128i absMask = _mm_set1_epi32(0x7FFFFFFF), inf = _mm_set1_epi32(0x7F800000), nan = _mm_set1_epi32(0x7FC00000);
  __m256d mean = _mm256_setzero_pd();
  for (size_t k = 0; k < m; ++k) mean = _mm256_add_pd(mean, taskAt(k));
  mean = overCount(mean, m);
  __m256d v = _mm256_setzero_pd();
  for (size_t k = 0; k < m; ++k) {
    const __m256d d = _mm256_sub_pd(taskAt(k), mean);
    v = _mm256_add_pd(v, rounded(_mm256_mul_pd(d, d)));
  }
  const __m128i b = _mm_and_si128(_mm_castps_si128(_mm256_cvtpd_ps(overCount(v, m))), absMask);
  return _mm_blendv_epi8(b, nan, _mm_cmpgt_epi32(b, inf));
}

// All ones in the lanes whose rank key (bits << indexBits | index) lies below the cut, i.e. that sceKeep drops: keys and cut lie below
// 2^63, so a signed compare.
WM_AVX2_INLINE __m256i belowCut4(__m128i bits, __m128i indexShift, __m256i index, __m256i cuts) {
  return _mm256_cmpgt_epi64(cuts, _mm256_or_si256(_mm256_sll_epi64(_mm256_cvtepu32_epi64(bits), indexShift), index));
}

// sceKeep's 1.0 or 0.0 per lane from belowCut4.
WM_AVX2_INLINE __m256d keepOfCut4(__m256i below) { return _mm256_castsi256_pd(_mm256_andnot_si256(below, _mm256_set1_epi64x(0x3FF0000000000000ll))); }

// 1.0 in lane j where bit j of `four` is set, else 0.0 (the keep map's bits).
WM_AVX2_INLINE __m256d keepOfBits4(unsigned four) {
  const __m256i lane = _mm256_set_epi64x(8, 4, 2, 1);
  const __m256i b = _mm256_set1_epi64x(static_cast<long long>(four));
  return _mm256_and_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(b, lane), lane)), _mm256_set1_pd(1.0));
}

// The scalar sceCombine's operations on 4 elements (m >= 1 models), each in its order: the sign election on the kept sum, then num and
// den added model by model, one division. Model k agrees where its t * keep has the majority's sign (+1 where the kept sum is >= 0, else
// -1; a zero or NaN never agrees), and its w * e is then w * 1 = w, else w * 0: the same values as the scalar sign compare and product.
template <typename TaskAt>
WM_AVX2_INLINE __m256d combine4(__m256d base, TaskAt taskAt, __m256d kept, const double* weights, size_t m) {
  const __m256d zero = _mm256_setzero_pd(), denFloor = _mm256_set1_pd(1e-6);
  // Each model's t * keep once for both loops (the first kMaxCached models; the rest computed again, the same bits).
  constexpr size_t kMaxCached = 8;
  __m256d cached[kMaxCached];
  __m256d sum = zero;
  for (size_t k = 0; k < m; ++k) {
    const __m256d tk = rounded(_mm256_mul_pd(taskAt(k), kept));
    if (k < kMaxCached) cached[k] = tk;
    sum = _mm256_add_pd(sum, tk);
  }
  const __m256d positive = _mm256_cmp_pd(sum, zero, _CMP_GE_OQ);  // the majority is +1 (NaN: -1)
  __m256d num = zero, den = zero;
  for (size_t k = 0; k < m; ++k) {
    const __m256d tk = k < kMaxCached ? cached[k] : rounded(_mm256_mul_pd(taskAt(k), kept));
    const __m256d agrees = _mm256_blendv_pd(_mm256_cmp_pd(tk, zero, _CMP_LT_OQ), _mm256_cmp_pd(tk, zero, _CMP_GT_OQ), positive);
    const __m256d w = _mm256_set1_pd(weights[k]);
    const __m256d ew = _mm256_blendv_pd(rounded(_mm256_mul_pd(w, zero)), w, agrees);
    num = _mm256_add_pd(num, rounded(_mm256_mul_pd(tk, ew)));
    den = _mm256_add_pd(den, ew);
  }
  // max(1e-6, den) is std::max(den, 1e-6): den unless den < 1e-6; a NaN den (a NaN or Inf weight) is max_pd's second operand, returned.
  return _mm256_add_pd(base, _mm256_div_pd(num, _mm256_max_pd(denFloor, den)));
}

// Lanes 0 .. r - 1 (r <= 4) of the 4 elements of dtype T at i, as f64; the others +0, and not read.
template <Dtype T>
WM_AVX2_INLINE __m256d loadLanes4(const void* p, size_t i, size_t r) {
  constexpr size_t kSize = T == Dtype::F32 ? 4 : 2;
  if (r == 4) return _mm256_cvtps_pd(load4<T>(p, i));
  alignas(16) uint8_t part[4 * kSize] = {};
  std::memcpy(part, static_cast<const uint8_t*>(p) + i * kSize, r * kSize);
  return _mm256_cvtps_pd(load4<T>(part, 0));
}

// The base of the 4 elements from i (r <= 4 of them) as f64, and each of M models' task vectors t[k] = x[k] - base: the first step of
// every in-register pass (variance bits, sums of squares, merge).
template <Dtype T, size_t M>
WM_AVX2_INLINE __m256d loadTasks4(const void* base, const void* const* x, size_t i, size_t r, __m256d* t) {
  const __m256d b = loadLanes4<T>(base, i, r);
  for (size_t k = 0; k < M; ++k) t[k] = _mm256_sub_pd(loadLanes4<T>(x[k], i, r), b);
  return b;
}

// Lanes 0 .. r - 1 (r <= 4) of the 32-bit values at p; the others 0, and not read.
WM_AVX2_INLINE __m128i loadLanes4(const uint32_t* p, size_t r) {
  if (r == 4) return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  alignas(16) uint32_t part[4] = {};
  std::memcpy(part, p, r * 4);
  return _mm_load_si128(reinterpret_cast<const __m128i*>(part));
}

// storeResult4 of lanes 0 .. r - 1 (r <= 4) only.
template <Dtype TO>
WM_AVX2_INLINE void storeLanes4(void* out, size_t i, size_t r, __m256d x) {
  constexpr size_t kSize = TO == Dtype::F32 ? 4 : 2;
  if (r == 4) return storeResult4<TO>(out, i, x);
  alignas(16) uint8_t part[4 * kSize];
  storeResult4<TO>(part, 0, x);
  std::memcpy(static_cast<uint8_t*>(out) + i * kSize, part, r * kSize);
}

}  // namespace avx2
}  // namespace wm
