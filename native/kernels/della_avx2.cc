// AVX2 path of della.h's MAGPRUNE draws, equal bit for bit to the scalar truth in della.cc
// (native/tests/della_selftest.cc checks it on random ranks and limits).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include "avx2_splitmix.h"
#include "della.h"

namespace wm {
namespace avx2 {

__attribute__((target("avx2,fma,f16c"))) void dellaDraws(uint64_t seedKey, uint64_t first, const uint32_t* rankOf, const uint64_t* limit,
                                                         size_t n, uint8_t* keep) {
  constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
  const uint64_t c0 = seedKey + (first + 1) * kGolden;
  __m256i counter = _mm256_set_epi64x(static_cast<long long>(c0 + 3 * kGolden), static_cast<long long>(c0 + 2 * kGolden),
                                      static_cast<long long>(c0 + kGolden), static_cast<long long>(c0));
  const __m256i step = _mm256_set1_epi64x(static_cast<long long>(4 * kGolden));
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    // Limits are <= 2^53 and draws < 2^53: the signed compare orders them.
    const __m256i lim = _mm256_i32gather_epi64(reinterpret_cast<const long long*>(limit), _mm_loadu_si128(reinterpret_cast<const __m128i*>(rankOf + j)), 8);
    const __m256i k = _mm256_cmpgt_epi64(lim, _mm256_srli_epi64(splitmix64x4(counter), 11));
    counter = _mm256_add_epi64(counter, step);
    const uint32_t bits = static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(k)));
    // One byte per element: bit q of `bits` to byte q (a multiply spreads the 4 bits, as packBits gathers them).
    const uint32_t spread = ((bits * 0x00204081u) & 0x01010101u);
    __builtin_memcpy(keep + j, &spread, 4);
  }
  if (j < n) scalar::dellaDraws(seedKey, first + j, rankOf + j, limit, n - j, keep + j);
}

}  // namespace avx2
}  // namespace wm

#endif
