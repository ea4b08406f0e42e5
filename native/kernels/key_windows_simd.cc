// key_selection.h's keyWindows in 8 lanes of AVX2 and 16 of AVX-512 (where avx512Enabled()), the same counts and keys as the
// scalar truth in key_selection.cc (native/tests/key_selection_selftest.cc).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "avx512_loads.h"
#include "key_selection.h"
#include "lane_pack.h"

namespace wm {
namespace avx2 {
namespace {

constexpr LanePack<8> kLanePack8;  // for VPERMD

// 16 keys a step: VPCMPUD into masks, the counts below added in lanes, the window's keys packed by VPCOMPRESSD into a register
// and stored whole (a compress straight to memory is slow on AMD's cores). Returns how many keys it did.
template <size_t W>
__attribute__((target(WM_AVX512_TARGET))) size_t windowsWide(const uint32_t* keys, size_t n, KeyWindow* w) {
  __m512i lo[W], width[W], below[W];
  uint32_t* out[W];  // in locals: the stores through __m512i may alias w's fields
  uint64_t count[W];
  for (size_t q = 0; q < W; ++q) {
    lo[q] = _mm512_set1_epi32(static_cast<int>(w[q].lo));
    width[q] = _mm512_set1_epi32(static_cast<int>(w[q].width));
    below[q] = _mm512_setzero_si512();
    out[q] = w[q].out;
    count[q] = w[q].n;
  }
  const __m512i one = _mm512_set1_epi32(1);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i v = _mm512_loadu_si512(keys + i);
    for (size_t q = 0; q < W; ++q) {
      below[q] = _mm512_mask_add_epi32(below[q], _mm512_cmplt_epu32_mask(v, lo[q]), below[q], one);
      const __mmask16 in = _mm512_cmple_epu32_mask(_mm512_sub_epi32(v, lo[q]), width[q]);
      if (out[q] != nullptr) _mm512_storeu_si512(out[q] + count[q], _mm512_maskz_compress_epi32(in, v));
      count[q] += static_cast<uint64_t>(__builtin_popcount(in));
    }
  }
  for (size_t q = 0; q < W; ++q) {
    w[q].below += static_cast<uint32_t>(_mm512_reduce_add_epi32(below[q]));
    w[q].n = count[q];
  }
  return i;
}

// 8 keys a step: unsigned compares as signed ones of the keys with their top bit flipped, the window's keys packed by
// kLanePack8 and stored whole.
template <size_t W>
__attribute__((target("avx2,fma,f16c"))) size_t windows8(const uint32_t* keys, size_t n, KeyWindow* w) {
  const __m256i flip = _mm256_set1_epi32(INT32_MIN);
  __m256i lo[W], loFlipped[W], widthFlipped[W], below[W];
  uint32_t* out[W];
  uint64_t count[W];
  for (size_t q = 0; q < W; ++q) {
    lo[q] = _mm256_set1_epi32(static_cast<int>(w[q].lo));
    loFlipped[q] = _mm256_xor_si256(lo[q], flip);
    widthFlipped[q] = _mm256_xor_si256(_mm256_set1_epi32(static_cast<int>(w[q].width)), flip);
    below[q] = _mm256_setzero_si256();
    out[q] = w[q].out;
    count[q] = w[q].n;
  }
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i));
    const __m256i vFlipped = _mm256_xor_si256(v, flip);
    for (size_t q = 0; q < W; ++q) {
      below[q] = _mm256_sub_epi32(below[q], _mm256_cmpgt_epi32(loFlipped[q], vFlipped));  // a true compare is -1
      const __m256i outside = _mm256_cmpgt_epi32(_mm256_xor_si256(_mm256_sub_epi32(v, lo[q]), flip), widthFlipped[q]);
      const uint32_t in = ~static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(outside))) & 0xFFu;
      if (out[q] != nullptr) {
        const __m256i lanes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanePack8.lanes[in]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[q] + count[q]), _mm256_permutevar8x32_epi32(v, lanes));
      }
      count[q] += static_cast<uint64_t>(__builtin_popcount(in));
    }
  }
  for (size_t q = 0; q < W; ++q) {
    uint32_t lanes[8];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes), below[q]);
    for (const uint32_t c : lanes) w[q].below += c;
    w[q].n = count[q];
  }
  return i;
}

template <size_t W>
size_t windowsSimd(const uint32_t* keys, size_t n, KeyWindow* w) {
  return avx512Enabled() ? windowsWide<W>(keys, n, w) : windows8<W>(keys, n, w);
}

}  // namespace

void keyWindows(const uint32_t* keys, size_t n, KeyWindow* w, size_t windows) {
  size_t done = 0;
  if (windows == 1) done = windowsSimd<1>(keys, n, w);
  else if (windows == 2) done = windowsSimd<2>(keys, n, w);
  else if (windows == 3) done = windowsSimd<3>(keys, n, w);
  scalar::keyWindows(keys + done, n - done, w, windows);
}

}  // namespace avx2
}  // namespace wm
#endif
