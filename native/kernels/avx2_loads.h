// What both AVX2 translation units share (cpu_avx2.cc, sparse_avx2.cc): the inline target attribute and
// the 8-lane load of any float dtype. Include only where WM_HAVE_AVX2_BACKEND is defined.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"

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

}  // namespace avx2
}  // namespace wm
