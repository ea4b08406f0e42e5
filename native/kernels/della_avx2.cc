// AVX2 path of della.h's MAGPRUNE uniform draws, equal bit for bit to the scalar truth in della.cc
// (native/tests/della_selftest.cc checks it on random seeds, offsets and lengths, with AVX-512 on and off).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include "avx2_splitmix.h"
#include "della.h"

namespace wm {
namespace avx2 {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// Four draws a step; Wide: splitmix64's products with VPMULLQ (compiled for AVX-512DQ/VL, run where avx512Enabled(); flatten inlines them).
template <bool Wide>
__attribute__((always_inline, target("avx2,fma,f16c"))) inline size_t uniformsLoop(uint64_t seedKey, uint64_t first, size_t n, uint64_t* u) {
  const uint64_t c0 = seedKey + (first + 1) * kGolden;
  __m256i counter = _mm256_set_epi64x(static_cast<long long>(c0 + 3 * kGolden), static_cast<long long>(c0 + 2 * kGolden),
                                      static_cast<long long>(c0 + kGolden), static_cast<long long>(c0));
  const __m256i step = _mm256_set1_epi64x(static_cast<long long>(4 * kGolden));
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + j), _mm256_srli_epi64(splitmix64x4<Wide>(counter), 11));
    counter = _mm256_add_epi64(counter, step);
  }
  return j;
}

__attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl"), flatten)) size_t uniformsWide(uint64_t seedKey, uint64_t first, size_t n, uint64_t* u) {
  return uniformsLoop<true>(seedKey, first, n, u);
}

}  // namespace

__attribute__((target("avx2,fma,f16c"))) void dellaUniforms(uint64_t seedKey, uint64_t first, size_t n, uint64_t* u) {
  const size_t j = avx512Enabled() ? uniformsWide(seedKey, first, n, u) : uniformsLoop<false>(seedKey, first, n, u);
  if (j < n) scalar::dellaUniforms(seedKey, first + j, n - j, u + j);
}

}  // namespace avx2
}  // namespace wm

#endif
