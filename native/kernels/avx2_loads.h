// What the AVX2 translation units share (cpu_avx2.cc, sparse_avx2.cc, elementwise_avx2.cc, della_avx2.cc, ...): the inline
// target attribute, the 8- and 4-lane loads of any float dtype, |x - base| bits, and the f64 kernels' one-rounding store. Include only where WM_HAVE_AVX2_BACKEND is defined.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"
#include "numerics.h"

#define WM_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace wm {
namespace avx2 {

// Every value exactly as numerics.h decodes it (cvtph is exact and quiets a signalling NaN keeping its payload, as numerics.h does).
template <Dtype T>
WM_AVX2_INLINE __m256 load8(const void* p, size_t i) {
  if constexpr (T == Dtype::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == Dtype::BF16) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      return _mm256_cvtph_ps(h);
    }
  }
}

// |x - base| as f32 bits, 8 elements (the sparse methods' and della's |d| keys): vsubps takes the first operand's NaN as subss does, so the
// payloads are the scalar x - base's.
template <Dtype B, Dtype X>
WM_AVX2_INLINE __m256i absDeltaBits8(const void* base, const void* x, size_t i) {
  return _mm256_and_si256(_mm256_castps_si256(_mm256_sub_ps(load8<X>(x, i), load8<B>(base, i))), _mm256_set1_epi32(0x7FFFFFFF));
}

// The 4-lane load (f64 kernels take 4 elements per step).
template <Dtype T>
WM_AVX2_INLINE __m128 load4(const void* p, size_t i) {
  if constexpr (T == Dtype::F32) {
    return _mm_loadu_ps(static_cast<const float*>(p) + i);
  } else {
    const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == Dtype::BF16) {
      return _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16));
    } else {
      return _mm_cvtph_ps(h);
    }
  }
}

// A product the compiler must not fuse with the add that follows (-ffp-contract=fast would): one rounding each, as the scalar truth.
WM_AVX2_INLINE __m256d rounded(__m256d x) {
  __asm__("" : "+x"(x));
  return x;
}

// The direct path's range as f64 magnitude bits: at least 2^-126 (bf16's least normal), below (2 - 2^-8) * 2^127 (the least
// magnitude that rounds to infinity); and its bias: + 2^44 - 1 (half an ulp, less one; with the kept last bit added, nearest, ties
// to even), - 896 << 52 (the exponent's bias 1023 made 127). normalBF16Bits4 here, storeNormalBF16Wide in avx512_loads.h.
constexpr long long kDirectBF16Least = 0x3810000000000000ll, kDirectBF16Bound = 0x47EFF00000000000ll;
constexpr long long kDirectBF16Bias = static_cast<long long>(0x00000FFFFFFFFFFFull - (uint64_t{896} << 52));
// Whether an f64 (its bits) lies in that range: the lanes both SIMD widths round directly (the store self-test groups them by it).
constexpr bool inDirectBF16Range(uint64_t bits) {
  const long long magnitude = static_cast<long long>(bits & 0x7FFFFFFFFFFFFFFFull);
  return magnitude >= kDirectBF16Least && magnitude < kDirectBF16Bound;
}

// bf16 of 4 f64 whose magnitudes lie in [2^-126, the least that rounds to infinity): round to nearest even at bf16's
// precision on the f64 bits, the exponent rebiased (one rounding: the same bits as round-to-odd f32 then bf16 there).
// Each lane's 16 bits in the low bits of its 64; *inRange -1 in the lanes that lie in that range (the others' bits are
// meaningless: zero, subnormal, overflow, Inf, NaN).
WM_AVX2_INLINE __m256i normalBF16Bits4(__m256d x, __m256i* inRange) {
  const __m256i bits = _mm256_castpd_si256(x);
  const __m256i abs = _mm256_and_si256(bits, _mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
  const __m256i atLeast = _mm256_cmpgt_epi64(abs, _mm256_set1_epi64x(kDirectBF16Least - 1));
  const __m256i below = _mm256_cmpgt_epi64(_mm256_set1_epi64x(kDirectBF16Bound), abs);
  *inRange = _mm256_and_si256(atLeast, below);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi64(abs, 45), _mm256_set1_epi64x(1));
  const __m256i rounded = _mm256_add_epi64(_mm256_add_epi64(abs, lsb), _mm256_set1_epi64x(kDirectBF16Bias));
  return _mm256_or_si256(_mm256_srli_epi64(rounded, 45), _mm256_and_si256(_mm256_srli_epi64(bits, 48), _mm256_set1_epi64x(0x8000)));
}

// The low 32 bits of each 64-bit lane, in the low 128 bits.
WM_AVX2_INLINE __m128i lowHalves(__m256i x) { return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6))); }

// normalBF16Bits4 stored where all 4 lanes lie in its range; false, storing nothing, where one does not.
WM_AVX2_INLINE bool storeNormalBF16x4(void* out, size_t i, __m256d x) {
  __m256i inRange;
  const __m256i h = normalBF16Bits4(x, &inRange);
  if (_mm256_movemask_pd(_mm256_castsi256_pd(inRange)) != 0xF) return false;
  const __m128i four = lowHalves(h);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i), _mm_packus_epi32(four, four));
  return true;
}

// The same for 8 results (lo: elements i .. i + 3, hi: i + 4 .. i + 7) in one 16-byte store.
WM_AVX2_INLINE bool storeNormalBF16x8(void* out, size_t i, __m256d lo, __m256d hi) {
  __m256i loRange, hiRange;
  const __m256i l = normalBF16Bits4(lo, &loRange), h = normalBF16Bits4(hi, &hiRange);
  if (_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_and_si256(loRange, hiRange))) != 0xF) return false;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i), _mm_packus_epi32(lowHalves(l), lowHalves(h)));
  return true;
}

// One rounding of the f64 results to `to`, as element_io.h's storeRoundedOnce: f32 directly, bf16 and f16 through round-to-odd
// (bf16 of normal magnitude directly, storeNormalBF16x4).
template <Dtype TO>
WM_AVX2_INLINE void storeResult4(void* out, size_t i, __m256d x) {
  if constexpr (TO == Dtype::BF16) {
    if (storeNormalBF16x4(out, i, x)) return;
  }
  __m128 r = _mm256_cvtpd_ps(x);
  if constexpr (TO != Dtype::F32) {
    const __m256d back = _mm256_cvtps_pd(r);
    const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
    const __m256d inexact = _mm256_cmp_pd(back, x, _CMP_NEQ_UQ);  // NaN lanes too; they become canonical below
    const __m256d away = _mm256_cmp_pd(_mm256_and_pd(back, absMask), _mm256_and_pd(x, absMask), _CMP_GT_OQ);
    // The 64-bit masks' low halves as 32-bit lanes: -1 where true.
    const __m256i low = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m128i inexact32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(inexact), low));
    const __m128i away32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(away), low));
    // Rounded away from zero: one step back toward it (bits - 1); inexact: the last bit set.
    r = _mm_castsi128_ps(_mm_or_si128(_mm_add_epi32(_mm_castps_si128(r), away32), _mm_srli_epi32(inexact32, 31)));
  }
  const __m128 nan = _mm_cmpunord_ps(r, r);
  r = _mm_blendv_ps(r, _mm_castsi128_ps(_mm_set1_epi32(static_cast<int>(num::kF32CanonicalNaN))), nan);
  if constexpr (TO == Dtype::F32) {
    _mm_storeu_ps(static_cast<float*>(out) + i, r);
  } else if constexpr (TO == Dtype::BF16) {
    const __m128i u = _mm_castps_si128(r);
    const __m128i lsb = _mm_and_si128(_mm_srli_epi32(u, 16), _mm_set1_epi32(1));
    const __m128i h = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(u, _mm_set1_epi32(0x7FFF)), lsb), 16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i), _mm_packus_epi32(h, h));
  } else {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i), _mm_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

// storeResult4 of 8 results (lo: elements i .. i + 3, hi: i + 4 .. i + 7): bf16 of normal magnitude in one store (storeNormalBF16x8).
template <Dtype TO>
WM_AVX2_INLINE void storeResult8(void* out, size_t i, __m256d lo, __m256d hi) {
  if constexpr (TO == Dtype::BF16) {
    if (storeNormalBF16x8(out, i, lo, hi)) return;
  }
  storeResult4<TO>(out, i, lo);
  storeResult4<TO>(out, i + 4, hi);
}

}  // namespace avx2
}  // namespace wm
