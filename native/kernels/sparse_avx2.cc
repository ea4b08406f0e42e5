// AVX2 paths of the sparse methods' kernels (sparse_select.h's |d| bits), each equal bit for bit
// to its scalar truth (native/tests/kernels_selftest.cc checks it on random inputs with special values).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <cstring>

#include "numerics.h"

#define WM_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace wm {
namespace avx2 {
namespace {

// Every value exactly as numerics.h decodes it (cvtph quiets a signalling NaN keeping its payload, as numerics.h does).
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

template <Dtype B, Dtype X>
__attribute__((target("avx2,fma,f16c"))) void absDeltaBitsLoop(const void* base, const void* x, size_t n, uint32_t* out) {
  const __m256i mask = _mm256_set1_epi32(0x7FFFFFFF);
  size_t i = 0;
  // vsubps takes the first operand's NaN as subss does: the same payloads as the scalar x - base.
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_sub_ps(load8<X>(x, i), load8<B>(base, i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_and_si256(_mm256_castps_si256(d), mask));
  }
  if (i < n) {
    // The ragged end through zero-padded copies, so that it runs the same vector code.
    alignas(32) unsigned char pb[8 * 4] = {}, px[8 * 4] = {};
    alignas(32) uint32_t r[8];
    std::memcpy(pb, static_cast<const unsigned char*>(base) + i * dtypeSize(B), (n - i) * dtypeSize(B));
    std::memcpy(px, static_cast<const unsigned char*>(x) + i * dtypeSize(X), (n - i) * dtypeSize(X));
    const __m256 d = _mm256_sub_ps(load8<X>(px, 0), load8<B>(pb, 0));
    _mm256_store_si256(reinterpret_cast<__m256i*>(r), _mm256_and_si256(_mm256_castps_si256(d), mask));
    std::memcpy(out + i, r, (n - i) * 4);
  }
}

}  // namespace

void absDeltaBits(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* out) {
  withDtype(tb, [&](auto B) { withDtype(tx, [&](auto X) { absDeltaBitsLoop<decltype(B)::value, decltype(X)::value>(base, x, n, out); }); });
}

}  // namespace avx2
}  // namespace wm

#endif  // WM_HAVE_AVX2_BACKEND
