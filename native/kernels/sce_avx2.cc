// AVX2 path of SCE's chunk loads, variance bits, keep mask and arithmetic (sce.h's sceTasks, sceKeep, sceCombine), equal bit for bit to the scalar truth in sce.cc
// (native/tests/sce_selftest.cc checks it on random inputs with special values).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <algorithm>

#include "avx2_loads.h"
#include "sce.h"
#include "sce_avx512.h"
#include "sparse_select.h"

namespace wm {
namespace avx2 {
namespace {

// Four elements a step, each with the scalar truth's operations in its order: the sign election on the
// kept sum, then num and den added model by model, one division and one rounding.
template <Dtype TO>
__attribute__((target("avx2,fma,f16c"))) void combineLoop(const double* base, const double* t, size_t stride, const double* keep, const double* weights,
                                                          size_t m, size_t full, void* out, size_t at) {
  const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0), minusOne = _mm256_set1_pd(-1.0), denFloor = _mm256_set1_pd(1e-6);
  if (m == 0) {  // no models (sceMerge keeping none): num and den are +0, and num / max(den, 1e-6) is +0
    for (size_t j = 0; j < full; j += 4) storeResult4<TO>(out, at + j, _mm256_add_pd(_mm256_loadu_pd(base + j), zero));
    return;
  }
  for (size_t j = 0; j < full; j += 4) {
    const __m256d kept = _mm256_loadu_pd(keep + j);
    // Each model's t * keep once for both loops (the first kMaxCached models; the rest computed again, the same bits).
    constexpr size_t kMaxCached = 8;
    __m256d cached[kMaxCached];
    __m256d majority = zero;
    for (size_t k = 0; k < m; ++k) {
      const __m256d tk = rounded(_mm256_mul_pd(_mm256_loadu_pd(t + k * stride + j), kept));
      if (k < kMaxCached) cached[k] = tk;
      majority = _mm256_add_pd(majority, tk);
    }
    majority = _mm256_blendv_pd(minusOne, one, _mm256_cmp_pd(majority, zero, _CMP_GE_OQ));  // NaN: -1
    __m256d num = zero, den = zero;
    for (size_t k = 0; k < m; ++k) {
      const __m256d tk = k < kMaxCached ? cached[k] : rounded(_mm256_mul_pd(_mm256_loadu_pd(t + k * stride + j), kept));
      // +1, -1, or 0 for ±0 and NaN (which never equal the majority).
      const __m256d sign = _mm256_blendv_pd(_mm256_and_pd(_mm256_cmp_pd(tk, zero, _CMP_LT_OQ), minusOne), one, _mm256_cmp_pd(tk, zero, _CMP_GT_OQ));
      const __m256d ew = rounded(_mm256_mul_pd(_mm256_set1_pd(weights[k]), _mm256_and_pd(_mm256_cmp_pd(sign, majority, _CMP_EQ_OQ), one)));
      num = _mm256_add_pd(num, rounded(_mm256_mul_pd(tk, ew)));
      den = _mm256_add_pd(den, ew);
    }
    // max(1e-6, den) is std::max(den, 1e-6): den unless den < 1e-6; a NaN den (a NaN or Inf weight) is max_pd's second operand, returned.
    storeResult4<TO>(out, at + j, _mm256_add_pd(_mm256_loadu_pd(base + j), _mm256_div_pd(num, _mm256_max_pd(denFloor, den))));
  }
}

// out[j] = (double) x[j0 + j] (- base[j]) for j < full, four at a time.
template <Dtype T, bool kMinusBase>
__attribute__((target("avx2,fma,f16c"))) void loadLoop(const void* x, size_t j0, size_t full, const double* base, double* out) {
  for (size_t j = 0; j < full; j += 4) {
    const __m256d v = _mm256_cvtps_pd(load4<T>(x, j0 + j));
    _mm256_storeu_pd(out + j, kMinusBase ? _mm256_sub_pd(v, _mm256_loadu_pd(base + j)) : v);
  }
}

// x / m as the scalar truth divides: times 1 / m where m is a power of two (the same one rounding of the same quotient), else divided.
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256d overCount(__m256d x, size_t m) {
  if ((m & (m - 1)) == 0) return _mm256_mul_pd(x, _mm256_set1_pd(1.0 / static_cast<double>(m)));
  return _mm256_div_pd(x, _mm256_set1_pd(static_cast<double>(m)));
}

// The scalar varianceBits's operations per element: the mean in model order, / m, the squared deviations
// in model order, / m, rounded to f32, |bits| with every NaN one value above Inf.
__attribute__((target("avx2,fma,f16c"))) void varianceLoop(const double* t, size_t stride, size_t m, size_t full, uint32_t* bits) {
  const __m128i absMask = _mm_set1_epi32(0x7FFFFFFF), inf = _mm_set1_epi32(0x7F800000), nan = _mm_set1_epi32(0x7FC00000);
  for (size_t j = 0; j < full; j += 4) {
    __m256d mean = _mm256_setzero_pd();
    for (size_t k = 0; k < m; ++k) mean = _mm256_add_pd(mean, _mm256_loadu_pd(t + k * stride + j));
    mean = overCount(mean, m);
    __m256d v = _mm256_setzero_pd();
    for (size_t k = 0; k < m; ++k) {
      const __m256d d = _mm256_sub_pd(_mm256_loadu_pd(t + k * stride + j), mean);
      v = _mm256_add_pd(v, rounded(_mm256_mul_pd(d, d)));
    }
    const __m128i b = _mm_and_si128(_mm_castps_si128(_mm256_cvtpd_ps(overCount(v, m))), absMask);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bits + j), _mm_blendv_epi8(b, nan, _mm_cmpgt_epi32(b, inf)));
  }
}

// keep[j] = 1.0 where (bits[j] << indexBits | (count - 1 - (first + j))) >= cut: keys and cut lie below 2^63, so a signed compare.
__attribute__((target("avx2,fma,f16c"))) void keepLoop(const uint32_t* bits, uint32_t indexBits, uint64_t count, uint64_t first, uint64_t cut,
                                                        size_t full, double* keep) {
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(indexBits));
  const uint64_t last = count - 1 - first;
  const __m256i cuts = _mm256_set1_epi64x(static_cast<long long>(cut)), one = _mm256_set1_epi64x(0x3FF0000000000000ll), four = _mm256_set1_epi64x(4);
  __m256i index = _mm256_setr_epi64x(static_cast<long long>(last), static_cast<long long>(last - 1), static_cast<long long>(last - 2),
                                     static_cast<long long>(last - 3));
  for (size_t j = 0; j < full; j += 4) {
    const __m256i v = _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bits + j)));
    const __m256i key = _mm256_or_si256(_mm256_sll_epi64(v, shift), index);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(keep + j), _mm256_andnot_si256(_mm256_cmpgt_epi64(cuts, key), one));
    index = _mm256_sub_epi64(index, four);
  }
}

// mask[j] &= -1 where element j0 + j of x is finite (x - x == 0 in f32: Inf and NaN give NaN), for j < full.
template <Dtype T, bool kFirst>
__attribute__((target("avx2,fma,f16c"))) void finiteLoop(const void* x, size_t j0, size_t full, uint32_t* mask) {
  const __m128 zero = _mm_setzero_ps();
  for (size_t j = 0; j < full; j += 4) {
    const __m128 v = load4<T>(x, j0 + j);
    const __m128i finite = _mm_castps_si128(_mm_cmp_ps(_mm_sub_ps(v, v), zero, _CMP_EQ_OQ));
    __m128i* at = reinterpret_cast<__m128i*>(mask + j);
    _mm_storeu_si128(at, kFirst ? finite : _mm_and_si128(finite, _mm_loadu_si128(at)));
  }
}

// out = round(x + 0) where mask is set, else NaN, for elements j0 .. j0 + full - 1 (x and mask from element j0).
template <Dtype TO>
__attribute__((target("avx2,fma,f16c"))) void baseOrNanLoop(const double* x, const uint32_t* mask, size_t j0, size_t full, void* out) {
  const __m256d nan = _mm256_set1_pd(__builtin_nan("")), zero = _mm256_setzero_pd();
  for (size_t j = 0; j < full; j += 4) {
    const __m256d keep = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mask + j))));
    storeResult4<TO>(out, j0 + j, _mm256_blendv_pd(nan, _mm256_add_pd(_mm256_loadu_pd(x + j), zero), keep));
  }
}

}  // namespace

void sceMergeNone(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, void* out, Dtype to) {
  // scalar::sceMergeNone's result without its f64 task vectors: t = x - base (f64, of two f32) is finite exactly where
  // x and base are, so out = round(base + 0) where the base and every model are finite, else NaN.
  if (avx512Enabled() && sceMergeNoneAvx512(srcs, types, p, j0, len, out, to)) return;
  const size_t full = len & ~size_t{3};
  constexpr size_t kPiece = 512;
  double base[kPiece];
  uint32_t mask[kPiece];
  for (size_t c0 = 0; c0 < full; c0 += kPiece) {
    const size_t cl = std::min(kPiece, full - c0);
    withDtype(types[p.base], [&](auto T) {
      loadLoop<decltype(T)::value, false>(srcs[p.base], j0 + c0, cl, nullptr, base);
      finiteLoop<decltype(T)::value, true>(srcs[p.base], j0 + c0, cl, mask);
    });
    for (uint32_t src : p.sources) withDtype(types[src], [&](auto T) { finiteLoop<decltype(T)::value, false>(srcs[src], j0 + c0, cl, mask); });
    withDtype(to, [&](auto T) { baseOrNanLoop<decltype(T)::value>(base, mask, j0 + c0, cl, out); });
  }
  if (full < len) scalar::sceMergeNone(srcs, types, p, j0 + full, len - full, out, to);
}

void sceTasks(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, double* base, double* t, size_t stride,
              uint32_t* bits) {
  // 8 lanes where the CPU has AVX-512 (sce_avx512.h), 4 for the rest, the scalar truth for the last few.
  const size_t wide = avx512Enabled() ? len & ~size_t{7} : 0, full = len & ~size_t{3}, m = p.sources.size();
  if (wide > 0) sceTasksAvx512(srcs, types, p, j0, wide, base, t, stride, bits);
  const size_t w = wide, rest = full - wide;
  withDtype(types[p.base], [&](auto T) { loadLoop<decltype(T)::value, false>(srcs[p.base], j0 + w, rest, nullptr, base + w); });
  for (size_t k = 0; k < m; ++k) {
    withDtype(types[p.sources[k]], [&](auto T) { loadLoop<decltype(T)::value, true>(srcs[p.sources[k]], j0 + w, rest, base + w, t + k * stride + w); });
  }
  if (bits != nullptr) varianceLoop(t + w, stride, m, rest, bits + w);
  if (full < len) scalar::sceTasks(srcs, types, p, j0 + full, len - full, base + full, t + full, stride, bits != nullptr ? bits + full : nullptr);
}

void sceKeep(const uint32_t* bits, uint32_t indexBits, uint64_t count, uint64_t first, uint64_t cut, size_t len, double* keep) {
  if (cut >= kRankKeyNone) {  // above every key: none kept
    std::fill(keep, keep + len, 0.0);
    return;
  }
  const size_t wide = avx512Enabled() ? len & ~size_t{7} : 0, full = len & ~size_t{3};
  if (wide > 0) sceKeepAvx512(bits, indexBits, count, first, cut, wide, keep);
  keepLoop(bits + wide, indexBits, count, first + wide, cut, full - wide, keep + wide);
  if (full < len) scalar::sceKeep(bits + full, indexBits, count, first + full, cut, len - full, keep + full);
}

void sceVarianceBits(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits) {
  // In registers where the CPU has AVX-512 (sce_avx512.h); else the chunks of sceTasks' loops.
  if (!avx512Enabled() || !sceVarianceBitsAvx512(srcs, types, p, n, bits)) scalar::sceVarianceBits(srcs, types, p, n, bits);
}

bool sceMergeInRegisters(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                         Dtype to) {
  return avx512Enabled() && sceMergeInRegistersAvx512(srcs, types, p, count, start, n, out, to);
}

void sceKeepOfMap(const uint8_t* map, uint64_t piece, uint64_t first, size_t len, double* keep) {
  // 8 lanes a step where the CPU has AVX-512, to the piece's end or the run's; the scalar truth for the few left of each.
  if (!avx512Enabled()) {
    scalar::sceKeepOfMap(map, piece, first, len, keep);
    return;
  }
  for (size_t j = 0; j < len;) {
    const uint64_t i = first + j, bit = sceKeepMapBit(i, piece);
    const size_t run = static_cast<size_t>(std::min<uint64_t>(len - j, piece - i % piece)), full = run & ~size_t{7};
    if (full > 0) sceKeepOfBitsAvx512(map + bit / 8, static_cast<unsigned>(bit % 8), full, keep + j);
    scalar::sceKeepOfMap(map, piece, i + full, run - full, keep + j + full);
    j += run;
  }
}

void sceCombine(const double* base, const double* t, size_t stride, const double* keep, const double* weights, size_t m, size_t len, void* out, size_t at,
                Dtype to) {
  // 8 lanes where the CPU has AVX-512 (sce_avx512.h), 4 for the rest, the scalar truth for the last few.
  const size_t wide = m > 0 && avx512Enabled() ? len & ~size_t{7} : 0, full = len & ~size_t{3};
  if (wide > 0) sceCombineAvx512(base, t, stride, keep, weights, m, wide, out, at, to);
  withDtype(to, [&](auto T) { combineLoop<decltype(T)::value>(base + wide, t + wide, stride, keep + wide, weights, m, full - wide, out, at + wide); });
  if (full < len) scalar::sceCombine(base + full, t + full, stride, keep + full, weights, m, len - full, out, at + full, to);
}

}  // namespace avx2
}  // namespace wm

#endif
