// sparsify.h's splitmix64 in 4 lanes of AVX2 (the DARE and DELLA random masks). Include only where WM_HAVE_AVX2_BACKEND is defined.
#pragma once
#include <immintrin.h>

#include "avx2_loads.h"

namespace wm {
namespace avx2 {

// 64-bit lane product modulo 2^64 (AVX2 multiplies 32-bit halves only).
WM_AVX2_INLINE __m256i mul64(__m256i a, __m256i b) {
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b), _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
  return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

WM_AVX2_INLINE __m256i splitmix64x4(__m256i x) {
  x = mul64(_mm256_xor_si256(x, _mm256_srli_epi64(x, 30)), _mm256_set1_epi64x(static_cast<long long>(0xBF58476D1CE4E5B9ull)));
  x = mul64(_mm256_xor_si256(x, _mm256_srli_epi64(x, 27)), _mm256_set1_epi64x(static_cast<long long>(0x94D049BB133111EBull)));
  return _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
}

}  // namespace avx2
}  // namespace wm
