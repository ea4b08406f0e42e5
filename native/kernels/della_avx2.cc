// AVX2 path of della.h's MAGPRUNE uniform draws and keys, equal bit for bit to the scalar truth in della.cc, and of
// della_rank.h's draw() passes (the split by the draw alone, with the draws made in it, the count of keys in a range), equal to
// della_rank.cc's scalar ones (native/tests/della_selftest.cc checks them on random inputs, with AVX-512 on and off).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "avx2_loads.h"
#include "avx2_splitmix.h"
#include "avx512_loads.h"
#include "della.h"
#include "della_rank.h"
#include "lane_pack.h"

namespace wm {
namespace avx2 {
namespace {

// Four draws a step; Wide: splitmix64's products with VPMULLQ (compiled for AVX-512DQ/VL, run where avx512Enabled(); flatten inlines them).
template <bool Wide>
__attribute__((always_inline, target("avx2,fma,f16c"))) inline size_t uniformsLoop(uint64_t seedKey, uint64_t first, size_t n, uint64_t* u) {
  __m256i counter = splitmixCounters4(seedKey, first);
  const __m256i step = _mm256_set1_epi64x(static_cast<long long>(4 * kSplitmixGolden));
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

// Positions t..t+3 of the lanes set in a 4-bit mask, in ascending order (the first popcount(mask) lanes).
constexpr LanePack<4> kLanePack;

// dellaKeys' 8 lanes: |d| bits as absDeltaBits (avx2_loads.h's absDeltaBits8), NaN made
// canonical by a signed compare (every key < 2^31), the low 16 bits ORed, and the least nonzero and greatest key (keys are below
// 2^31, so the unsigned min and max see them as they are; a zero key made all ones for the min). Returns how many elements it
// did, their facts in *facts.
template <Dtype B, Dtype X>
__attribute__((target("avx2,fma,f16c"))) size_t keysLoop(const void* base, const void* x, size_t n, uint32_t* keys, DellaKeyFacts* facts) {
  const __m256i inf = _mm256_set1_epi32(0x7F800000), nan = _mm256_set1_epi32(0x7FC00000), zero = _mm256_setzero_si256();
  __m256i low = zero, least = _mm256_set1_epi32(-1), greatest = zero;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i a = absDeltaBits8<B, X>(base, x, i);
    const __m256i k = _mm256_blendv_epi8(a, nan, _mm256_cmpgt_epi32(a, inf));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys + i), k);
    low = _mm256_or_si256(low, k);
    least = _mm256_min_epu32(least, _mm256_or_si256(k, _mm256_cmpeq_epi32(k, zero)));
    greatest = _mm256_max_epu32(greatest, k);
  }
  alignas(32) uint32_t lanes[3][8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[0]), low);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[1]), least);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[2]), greatest);
  uint32_t bits = 0, a = 0xFFFFFFFFu, b = 0;
  for (uint32_t q = 0; q < 8; ++q) {
    bits |= lanes[0][q];
    a = std::min(a, lanes[1][q]);
    b = std::max(b, lanes[2][q]);
  }
  facts->lowBits = bits & 0xFFFFu;
  facts->lowest = a >> 16;
  facts->highest = b >> 16;
  return i;
}

// dellaDrawSplit's 8 lanes with AVX-512: splitmix64 by VPMULLQ, unsigned compares into masks, the keep bytes from one mask,
// the middle positions by VPCOMPRESSD (register form), u stored whole (a masked store is slower). Returns how many elements it
// did (a multiple of 8).
__attribute__((target(WM_AVX512_TARGET))) size_t drawSplitWide(uint64_t seedKey, uint64_t first, uint32_t L, uint64_t low, uint64_t high,
                                                               uint8_t* keep, uint32_t* middle, uint64_t* u, uint32_t* nmOut) {
  __m512i counter = splitmixCounters8(seedKey, first);
  const __m512i step = _mm512_set1_epi64(static_cast<long long>(8 * kSplitmixGolden));
  const __m512i lo = _mm512_set1_epi64(static_cast<long long>(low)), hi = _mm512_set1_epi64(static_cast<long long>(high));
  const __m128i ones = _mm_set1_epi8(1);
  const __m256i eight = _mm256_set1_epi32(8);
  __m256i at = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  uint32_t nm = 0, t = 0;
  for (; t + 8 <= L; t += 8) {
    const __m512i x = _mm512_srli_epi64(splitmix64x8(counter), 11);
    counter = _mm512_add_epi64(counter, step);
    const __mmask8 kept = _mm512_cmplt_epu64_mask(x, lo);
    const __mmask8 mid = _mm512_mask_cmplt_epu64_mask(static_cast<__mmask8>(~kept), x, hi);  // low <= u < high
    _mm_storel_epi64(reinterpret_cast<__m128i*>(keep + t), _mm_maskz_mov_epi8(kept, ones));  // the eight 0/1 bytes
    _mm512_storeu_si512(u + t, x);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(middle + nm), _mm256_maskz_compress_epi32(mid, at));
    nm += static_cast<uint32_t>(__builtin_popcount(mid));
    at = _mm256_add_epi32(at, eight);
  }
  *nmOut = nm;
  return t;
}

// The scalar tail lists its middle positions from 0: moved to the row's, t on. Returns how many (n).
uint32_t shiftedBy(uint32_t t, uint32_t* middle, uint32_t n) {
  for (uint32_t k = 0; k < n; ++k) middle[k] += t;
  return n;
}

// dellaOddKeys' AVX-512 steps, 16 keys each: the odd keys' positions packed by VPCOMPRESSD (register form) and stored whole.
// Returns how many it listed; *stop: where it stopped.
__attribute__((target(WM_AVX512_TARGET))) uint32_t oddKeysWide(const uint32_t* keys, uint32_t L, uint32_t* odd, uint32_t* stop) {
  const __m512i low = _mm512_set1_epi32(0xFFFF), sixteen = _mm512_set1_epi32(16);
  __m512i at = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  uint32_t n = 0, t = 0;
  for (; t + 16 <= L; t += 16) {
    const __mmask16 m = _mm512_test_epi32_mask(_mm512_loadu_si512(keys + t), low);
    _mm512_storeu_si512(odd + n, _mm512_maskz_compress_epi32(m, at));
    n += static_cast<uint32_t>(__builtin_popcount(m));
    at = _mm512_add_epi32(at, sixteen);
  }
  *stop = t;
  return n;
}

// dellaOddKeys' AVX2 steps, 8 keys each: the odd keys' positions packed 4 at a time through kLanePack (as dellaSplitDraws' middles)
// and stored whole (the caller's odd has 16 slots past L). Returns how many it listed; *stop: where it stopped.
__attribute__((target("avx2,fma,f16c"))) uint32_t oddKeys8(const uint32_t* keys, uint32_t L, uint32_t* odd, uint32_t* stop) {
  const __m256i low = _mm256_set1_epi32(0xFFFF), zero = _mm256_setzero_si256();
  uint32_t n = 0, t = 0;
  for (; t + 8 <= L; t += 8) {
    const __m256i even = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + t)), low), zero);
    const uint32_t odds = ~static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(even))) & 0xFFu;
    for (uint32_t half = 0; half < 2; ++half) {
      const uint32_t four = (odds >> (4 * half)) & 0xFu;
      const __m128i lanes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kLanePack.lanes[four]));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(odd + n), _mm_add_epi32(lanes, _mm_set1_epi32(static_cast<int>(t + 4 * half))));
      n += static_cast<uint32_t>(__builtin_popcount(four));
    }
  }
  *stop = t;
  return n;
}

}  // namespace

uint32_t dellaOddKeys(const uint32_t* keys, uint32_t L, uint32_t* odd) {
  uint32_t n = 0, t = 0;
  n = (avx512Enabled() ? oddKeysWide : oddKeys8)(keys, L, odd, &t);
  if (t == L) return n;
  return n + shiftedBy(t, odd + n, scalar::dellaOddKeys(keys + t, L - t, odd + n));
}

// Draws and limits are below 2^53: the signed 64-bit compares order them as unsigned.
__attribute__((target("avx2,fma,f16c"))) uint32_t dellaSplitDraws(const uint64_t* u, size_t stride, uint32_t L, uint64_t low, uint64_t high,
                                                                  uint8_t* keep, uint32_t* middle) {
  if (stride != 1 || low > (uint64_t{1} << 53) || high > (uint64_t{1} << 53)) return scalar::dellaSplitDraws(u, stride, L, low, high, keep, middle);
  const __m256i lo = _mm256_set1_epi64x(static_cast<long long>(low)), hi = _mm256_set1_epi64x(static_cast<long long>(high));
  uint32_t nm = 0, t = 0;
  for (; t + 4 <= L; t += 4) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + t));
    const __m256i below = _mm256_cmpgt_epi64(lo, x), belowHigh = _mm256_cmpgt_epi64(hi, x);
    const uint32_t kept = static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(below)));
    const uint32_t mid = static_cast<uint32_t>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_andnot_si256(below, belowHigh))));
    std::memcpy(keep + t, &kSpreadBits.bytes[kept], 4);  // a 4-bit mask: the first 4 of its 8 bytes
    const __m128i lanes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kLanePack.lanes[mid]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(middle + nm), _mm_add_epi32(lanes, _mm_set1_epi32(static_cast<int>(t))));
    nm += static_cast<uint32_t>(__builtin_popcount(mid));
  }
  if (t < L) {
    nm += shiftedBy(t, middle + nm, scalar::dellaSplitDraws(u + t, 1, L - t, low, high, keep + t, middle + nm));
  }
  return nm;
}

// dellaKeysIn at stride 1 with AVX-512: unsigned (k - lo) < span by VPCMPUD into masks, counted by POPCNT, 32 keys a step, the
// last 0-31 by masked loads (no scalar tail: draw()'s chunk-local counts are short).
namespace {
WM_AVX512_INLINE __mmask16 keysInside(__m512i k, __mmask16 valid, __m512i lo, __m512i span) {
  return _mm512_mask_cmplt_epu32_mask(valid, _mm512_sub_epi32(k, lo), span);
}

__attribute__((target(WM_AVX512_TARGET))) uint32_t keysInWide(const uint32_t* keys, uint32_t from, uint32_t to, uint32_t lo, uint32_t span) {
  const __m512i loV = _mm512_set1_epi32(static_cast<int>(lo)), spanV = _mm512_set1_epi32(static_cast<int>(span));
  uint32_t n = 0, s = from;
  for (; s + 32 <= to; s += 32) {
    const __mmask16 a = keysInside(_mm512_loadu_si512(keys + s), 0xFFFF, loV, spanV), b = keysInside(_mm512_loadu_si512(keys + s + 16), 0xFFFF, loV, spanV);
    n += static_cast<uint32_t>(__builtin_popcount(a) + __builtin_popcount(b));
  }
  for (; s < to; s += 16) {
    const __mmask16 valid = to - s >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (to - s)) - 1);
    n += static_cast<uint32_t>(__builtin_popcount(keysInside(_mm512_maskz_loadu_epi32(valid, keys + s), valid, loV, spanV)));
  }
  return n;
}
}  // namespace

// Unsigned (k - lo) < span as a signed compare of both sides with their sign bits flipped.
__attribute__((target("avx2,fma,f16c"))) uint32_t dellaKeysIn(const uint32_t* keys, size_t stride, uint32_t from, uint32_t to, uint32_t lo,
                                                              uint32_t span) {
  if (stride != 1) return scalar::dellaKeysIn(keys, stride, from, to, lo, span);
  if (avx512Enabled()) return from < to ? keysInWide(keys, from, to, lo, span) : 0;
  const __m256i offset = _mm256_set1_epi32(static_cast<int>(0x80000000u - lo)), limit = _mm256_set1_epi32(static_cast<int>(span ^ 0x80000000u));
  __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();  // each lane's count, negated (a match is -1)
  uint32_t s = from;
  for (; s + 16 <= to; s += 16) {
    const __m256i ka = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + s)), offset);
    const __m256i kb = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + s + 8)), offset);
    a = _mm256_add_epi32(a, _mm256_cmpgt_epi32(limit, ka));
    b = _mm256_add_epi32(b, _mm256_cmpgt_epi32(limit, kb));
  }
  const __m256i sum = _mm256_add_epi32(a, b);
  __m128i h = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
  h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
  return static_cast<uint32_t>(-_mm_cvtsi128_si32(h)) + scalar::dellaKeysIn(keys, 1, s, to, lo, span);
}

DellaKeyFacts dellaKeys(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* keys) {
  DellaKeyFacts facts;
  size_t i = 0;
  withDtype(tb, [&](auto B) { withDtype(tx, [&](auto X) { i = keysLoop<decltype(B)::value, decltype(X)::value>(base, x, n, keys, &facts); }); });
  if (i == n) return facts;
  const auto* b8 = static_cast<const uint8_t*>(base) + i * dtypeSize(tb);
  const auto* x8 = static_cast<const uint8_t*>(x) + i * dtypeSize(tx);
  const DellaKeyFacts tail = scalar::dellaKeys(b8, tb, x8, tx, n - i, keys + i);  // the last n % 8
  facts.lowBits |= tail.lowBits;
  facts.lowest = std::min(facts.lowest, tail.lowest);
  facts.highest = std::max(facts.highest, tail.highest);
  return facts;
}

uint32_t dellaDrawSplit(uint64_t seedKey, uint64_t first, uint32_t L, uint64_t low, uint64_t high, uint8_t* keep, uint32_t* middle, uint64_t* u) {
  if (!avx512Enabled()) {
    dellaUniforms(seedKey, first, L, u);
    return dellaSplitDraws(u, 1, L, low, high, keep, middle);
  }
  uint32_t nm = 0;
  const uint32_t t = static_cast<uint32_t>(drawSplitWide(seedKey, first, L, low, high, keep, middle, u, &nm));
  if (t == L) return nm;
  return nm + shiftedBy(t, middle + nm, scalar::dellaDrawSplit(seedKey, first + t, L - t, low, high, keep + t, middle + nm, u + t));
}

// dellaTakeMarks' AVX-512 steps, 16 marks each and branch-free (a branch per 32 marks mispredicted on most rows): the marked
// buckets packed by VPCOMPRESSD (register form) and stored whole, so buckets needs 16 slots past its count. Returns how many
// it listed; *stop: where it stopped.
__attribute__((target(WM_AVX512_TARGET))) uint32_t takeMarksWide(uint8_t* marks, uint32_t from, uint32_t to, uint32_t* buckets, uint32_t* stop) {
  const __m512i sixteen = _mm512_set1_epi32(16);
  __m512i index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(from)), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  uint32_t n = 0, h = from;
  for (; h + 16 <= to; h += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(marks + h));
    const __mmask16 m = _mm_test_epi8_mask(v, v);
    _mm512_storeu_si512(buckets + n, _mm512_maskz_compress_epi32(m, index));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(marks + h), _mm_setzero_si128());
    n += static_cast<uint32_t>(__builtin_popcount(m));
    index = _mm512_add_epi32(index, sixteen);
  }
  *stop = h;
  return n;
}

__attribute__((target("avx2,fma,f16c"))) uint32_t dellaTakeMarks(uint8_t* marks, uint32_t from, uint32_t to, uint32_t* buckets) {
  const __m256i zero = _mm256_setzero_si256();
  uint32_t n = 0, h = from;
  if (avx512Enabled() && from < to) n = takeMarksWide(marks, from, to, buckets, &h);
  for (; h + 32 <= to; h += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(marks + h));
    uint32_t m = ~static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, zero)));
    if (m == 0) continue;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(marks + h), zero);
    for (; m != 0; m &= m - 1) buckets[n++] = h + static_cast<uint32_t>(__builtin_ctz(m));
  }
  return n + scalar::dellaTakeMarks(marks, h, to, buckets + n);
}

__attribute__((target("avx2,fma,f16c"))) void dellaUniforms(uint64_t seedKey, uint64_t first, size_t n, uint64_t* u) {
  const size_t j = avx512Enabled() ? uniformsWide(seedKey, first, n, u) : uniformsLoop<false>(seedKey, first, n, u);
  if (j < n) scalar::dellaUniforms(seedKey, first + j, n - j, u + j);
}

}  // namespace avx2
}  // namespace wm

#endif
