// sparsify.h's splitmix64 in 4 lanes of AVX2 and 8 of AVX-512 (the DARE and DELLA random masks). Include only where WM_HAVE_AVX2_BACKEND is defined.
#pragma once
#include <immintrin.h>

#include "avx2_loads.h"
#include "sparsify.h"

namespace wm {
namespace avx2 {

// 64-bit lane product modulo 2^64 (AVX2 multiplies 32-bit halves only): the low halves' full product by VPMULUDQ, and the two
// cross products' low 32 bits, all the high half needs, by one VPMULLD of a against b's halves swapped.
WM_AVX2_INLINE __m256i mul64(__m256i a, __m256i b) {
  const __m256i cross = _mm256_mullo_epi32(a, _mm256_shuffle_epi32(b, 0xB1));  // a.lo * b.hi, a.hi * b.lo
  const __m256i high = _mm256_slli_epi64(_mm256_add_epi32(cross, _mm256_srli_epi64(cross, 32)), 32);
  return _mm256_add_epi64(_mm256_mul_epu32(a, b), high);
}

// The same product with AVX-512DQ's VPMULLQ (on 4 lanes, AVX-512VL), one instruction for mul64's six.
__attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl"))) inline __m256i mul64Wide(__m256i a, __m256i b) {
  return _mm256_mullo_epi64(a, b);
}

// Wide: mul64Wide (callers compile for AVX-512DQ/VL and check the CPU has it, as sparse_avx2.cc's avx512 flag does).
template <bool Wide = false>
__attribute__((target("avx2,fma,f16c"))) inline __m256i splitmix64x4(__m256i x) {
  const __m256i c1 = _mm256_set1_epi64x(static_cast<long long>(0xBF58476D1CE4E5B9ull)), c2 = _mm256_set1_epi64x(static_cast<long long>(0x94D049BB133111EBull));
  x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 30));
  if constexpr (Wide) x = mul64Wide(x, c1);
  else x = mul64(x, c1);
  x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 27));
  if constexpr (Wide) x = mul64Wide(x, c2);
  else x = mul64(x, c2);
  return _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
}

// splitmix64 in 8 lanes with VPMULLQ (callers compile for AVX-512F/DQ and run it where avx512Enabled(): sparse_avx512.cc, della_avx2.cc).
__attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512bw,avx512vl"), always_inline)) inline __m512i splitmix64x8(__m512i x) {
  x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 30));
  x = _mm512_mullo_epi64(x, _mm512_set1_epi64(static_cast<long long>(0xBF58476D1CE4E5B9ull)));
  x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 27));
  x = _mm512_mullo_epi64(x, _mm512_set1_epi64(static_cast<long long>(0x94D049BB133111EBull)));
  return _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
}

// splitmix64's inputs for elements first .. first + 3 of the mask keyed by seedKey (lane q: element first + q, as
// sparsify.h's bernoulliKeep); add 4 * kSplitmixGolden per step of 4.
WM_AVX2_INLINE __m256i splitmixCounters4(uint64_t seedKey, uint64_t first) {
  const uint64_t c0 = seedKey + (first + 1) * kSplitmixGolden;
  return _mm256_set_epi64x(static_cast<long long>(c0 + 3 * kSplitmixGolden), static_cast<long long>(c0 + 2 * kSplitmixGolden),
                           static_cast<long long>(c0 + kSplitmixGolden), static_cast<long long>(c0));
}

// The same for elements first .. first + 7 in 8 lanes (callers compile for AVX-512F); add 8 * kSplitmixGolden per step of 8.
__attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512bw,avx512vl"), always_inline)) inline __m512i splitmixCounters8(uint64_t seedKey,
                                                                                                                           uint64_t first) {
  const uint64_t c0 = seedKey + (first + 1) * kSplitmixGolden;
  return _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(c0)),
                          _mm512_mullo_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi64(static_cast<long long>(kSplitmixGolden))));
}

}  // namespace avx2
}  // namespace wm
