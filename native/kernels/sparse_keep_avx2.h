// sparsify.h's keep rule of one model in AVX2, 4 elements a step: the rank-key window and DARE's random mask, shared by the
// keep loop, the L1 slots and the multi-model merge (sparse_avx2.cc) and the one-model merge (sparse_one_model_avx2.cc).
// Include only where WM_HAVE_AVX2_BACKEND is defined.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "avx2_loads.h"
#include "avx2_splitmix.h"
#include "sparsify.h"

namespace wm {
namespace avx2 {

constexpr uint64_t kFlip = uint64_t{1} << 63;  // unsigned order through AVX2's signed 64-bit compare

// Windowed: the rank-key window is tested (false where it holds every key); Wide: splitmix64 by VPMULLQ (callers compile for
// AVX-512DQ/VL and check the CPU has it).
template <bool Wide, bool Windowed>
struct KeepSteps {
  __m256i lowF, highF;  // the cuts ^ kFlip
  bool masked;          // 0 < density < 1
  __m256i limit;        // keep where (u >> 11) < ceil(density * 2^53): bernoulliKeep's double compare, in integers
  __m256i counter;      // splitmix64's inputs for the next 4 elements
  __m128i shift;
  __m256i revF;  // the next 4 elements' index parts ^ kFlip

  KeepSteps() = default;
  WM_AVX2_INLINE KeepSteps(const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start)
      : lowF(_mm256_set1_epi64x(static_cast<long long>(m.lowKey ^ kFlip))),
        highF(_mm256_set1_epi64x(static_cast<long long>(m.highKey ^ kFlip))),
        masked(m.density > 0 && m.density < 1),
        limit(_mm256_set1_epi64x(masked ? static_cast<long long>(std::ceil(m.density * 0x1.0p53)) : 0)),
        counter(splitmixCounters4(m.seedKey, start)),
        shift(_mm_cvtsi32_si128(static_cast<int>(indexBits))) {
    const uint64_t top = count - 1 - start;
    revF = _mm256_xor_si256(_mm256_set_epi64x(static_cast<long long>(top - 3), static_cast<long long>(top - 2), static_cast<long long>(top - 1),
                                              static_cast<long long>(top)),
                            _mm256_set1_epi64x(static_cast<long long>(kFlip)));
  }

  // The next 4 elements (a: their |d| bits): -1 in the 64-bit lanes of those kept.
  WM_AVX2_INLINE __m256i mask(__m128i a) {
    const __m256i k = maskAt(a, revF);
    if constexpr (Windowed) revF = _mm256_sub_epi64(revF, _mm256_set1_epi64x(4));  // keeps the flipped top bit: rev stays below 2^63
    return k;
  }
  // The same with the 4 elements' index parts ^ kFlip given (a merge of several models steps one for all of them).
  WM_AVX2_INLINE __m256i maskAt(__m128i a, __m256i indexF) {
    __m256i k = _mm256_set1_epi64x(-1);
    if constexpr (Windowed) {
      const __m256i keyF = _mm256_or_si256(_mm256_sll_epi64(_mm256_cvtepu32_epi64(a), shift), indexF);
      k = _mm256_andnot_si256(_mm256_cmpgt_epi64(lowF, keyF), _mm256_cmpgt_epi64(highF, keyF));
    }
    if (masked) {
      k = _mm256_and_si256(k, _mm256_cmpgt_epi64(limit, _mm256_srli_epi64(splitmix64x4<Wide>(counter), 11)));
      counter = _mm256_add_epi64(counter, _mm256_set1_epi64x(static_cast<long long>(4 * kSplitmixGolden)));
    }
    return k;
  }
  // The same as a 4-bit mask, bit q set where element q is kept.
  WM_AVX2_INLINE unsigned next(__m128i a) { return static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(mask(a)))); }
};

}  // namespace avx2
}  // namespace wm
