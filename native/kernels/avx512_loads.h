// What the AVX-512 translation units share (sparse_avx512.cc, elementwise_avx512.cc): the target attribute, the
// contraction barrier and avx2_loads.h's one-rounding store in 8 lanes (loads are avx2_loads.h's load8, widened
// with _mm512_cvtps_pd). Include only in those files, where WM_HAVE_AVX2_BACKEND is defined, and call only where
// avx512Enabled() (cpu_backends.h) says the CPU has them.
#pragma once
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized (in the store self-test
// -Wuninitialized) takes for a read of garbage; the warning fires where the intrinsics are inlined, so both are off for the
// files that include this one.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "avx2_loads.h"
#include "kernels.h"
#include "numerics.h"

#define WM_AVX512_TARGET "avx2,fma,f16c,avx512f,avx512dq,avx512bw,avx512vl"
#define WM_AVX512_INLINE __attribute__((target(WM_AVX512_TARGET), always_inline)) inline

namespace wm {
namespace avx2 {

// A product the compiler must not fuse with the add that follows: one rounding each, as the scalar truth.
WM_AVX512_INLINE __m512d rounded8(__m512d x) {
  __asm__("" : "+v"(x));
  return x;
}

// avx2_loads.h's load8 in 16 lanes (exact: every bf16 and f16 is an f32).
template <Dtype T>
WM_AVX512_INLINE __m512 load16(const void* p, size_t i) {
  if constexpr (T == Dtype::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(p) + i);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == Dtype::BF16) {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      return _mm512_cvtph_ps(h);
    }
  }
}

// storeResult8's f32 step: the f64 results rounded once to f32 (to odd where TO is bf16 or f16, so that storeF32As8's
// rounding to TO is the only one that counts), NaN made canonical.
template <Dtype TO>
WM_AVX512_INLINE __m256 roundedToF32(__m512d x) {
  __m256 r;
  if constexpr (TO == Dtype::F32) {
    r = _mm512_cvtpd_ps(x);
  } else {
    // Round to odd: toward zero (the instruction's own rounding mode), then the last bit set where that was inexact.
    r = _mm512_cvt_roundpd_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask8 inexact = _mm512_cmp_pd_mask(_mm512_cvtps_pd(r), x, _CMP_NEQ_UQ);  // NaN lanes too; they become canonical below
    r = _mm256_castsi256_ps(_mm256_mask_or_epi32(_mm256_castps_si256(r), inexact, _mm256_castps_si256(r), _mm256_set1_epi32(1)));
  }
  const __m256 canonicalNaN = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(num::kF32CanonicalNaN)));
  return _mm256_mask_mov_ps(r, _mm256_cmp_ps_mask(r, r, _CMP_UNORD_Q), canonicalNaN);
}

// storeResult8's last step: f32 values (roundedToF32's, or exact ones) stored as TO, bf16 and f16 rounded to nearest even.
template <Dtype TO>
WM_AVX512_INLINE void storeF32As8(void* out, size_t i, __m256 r) {
  if constexpr (TO == Dtype::F32) {
    _mm256_storeu_ps(static_cast<float*>(out) + i, r);
  } else if constexpr (TO == Dtype::BF16) {
    const __m256i u = _mm256_castps_si256(r);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i h = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i), _mm256_cvtepi32_epi16(h));
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i), _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

// avx2_loads.h's storeNormalBF16x4 in 8 lanes: bf16 of 8 f64 whose magnitudes all lie in the direct path's range, rounded on
// the f64 bits (one rounding: the bits of round-to-odd f32 then bf16 there) and stored; false, storing nothing, where one does not.
// The conversions there and back cost SCE's in-register merge 0.98 against 0.87 ns per element in cache (BENCHMARKS.md 2026-12-07).
WM_AVX512_INLINE bool storeNormalBF16Wide(void* out, size_t i, __m512d x) {
  const __m512i bits = _mm512_castpd_si512(x);
  const __m512i abs = _mm512_and_si512(bits, _mm512_set1_epi64(0x7FFFFFFFFFFFFFFFll));
  // kDirectBF16Least <= abs < kDirectBF16Bound, as one unsigned compare of the distance from the least.
  const __m512i offset = _mm512_sub_epi64(abs, _mm512_set1_epi64(kDirectBF16Least));
  if (_mm512_cmplt_epu64_mask(offset, _mm512_set1_epi64(kDirectBF16Bound - kDirectBF16Least)) != 0xFF) return false;
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi64(abs, 45), _mm512_set1_epi64(1));
  const __m512i rounded = _mm512_add_epi64(_mm512_add_epi64(abs, lsb), _mm512_set1_epi64(kDirectBF16Bias));
  const __m512i h = _mm512_or_si512(_mm512_srli_epi64(rounded, 45), _mm512_and_si512(_mm512_srli_epi64(bits, 48), _mm512_set1_epi64(0x8000)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint16_t*>(out) + i), _mm512_cvtepi64_epi16(h));
  return true;
}

// avx2_loads.h's storeResult4 in 8 lanes: one rounding of the f64 results to TO (bf16 and f16 through round-to-odd; bf16 of
// normal magnitude directly, storeNormalBF16Wide).
template <Dtype TO>
WM_AVX512_INLINE void storeResult8(void* out, size_t i, __m512d x) {
  if constexpr (TO == Dtype::BF16) {
    if (storeNormalBF16Wide(out, i, x)) return;
  }
  storeF32As8<TO>(out, i, roundedToF32<TO>(x));
}

}  // namespace avx2
}  // namespace wm
