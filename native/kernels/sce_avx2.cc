// AVX2 path of SCE's chunk loads, variance bits, keep mask and arithmetic (sce.h's sceTasks, sceKeep, sceCombine), equal bit for bit to the scalar truth in sce.cc
// (native/tests/sce_selftest.cc checks it on random inputs with special values).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <algorithm>

#include "sce.h"
#include "sce_avx512.h"
#include "sce_lanes_avx2.h"
#include "sce_registers_avx2.h"
#include "sparse_select.h"

namespace wm {
namespace avx2 {
namespace {

// Four elements a step, each with the scalar truth's operations in its order (combine4).
template <Dtype TO>
__attribute__((target("avx2,fma,f16c"))) void combineLoop(const double* base, const double* t, size_t stride, const double* keep, const double* weights,
                                                          size_t m, size_t full, void* out, size_t at) {
  if (m == 0) {  // no models (sceMerge keeping none): num and den are +0, and num / max(den, 1e-6) is +0
    for (size_t j = 0; j < full; j += 4) storeResult4<TO>(out, at + j, _mm256_add_pd(_mm256_loadu_pd(base + j), _mm256_setzero_pd()));
    return;
  }
  for (size_t j = 0; j < full; j += 4) {
    storeResult4<TO>(out, at + j, combine4(_mm256_loadu_pd(base + j), Tasks4InMemory{t + j, stride}, _mm256_loadu_pd(keep + j), weights, m));
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

// The variance bits of 4 elements a step (varianceBits4).
__attribute__((target("avx2,fma,f16c"))) void varianceLoop(const double* t, size_t stride, size_t m, size_t full, uint32_t* bits) {
  for (size_t j = 0; j < full; j += 4) _mm_storeu_si128(reinterpret_cast<__m128i*>(bits + j), varianceBits4(Tasks4InMemory{t + j, stride}, m));
}

// keep[j] = 1.0 where (bits[j] << indexBits | (count - 1 - (first + j))) >= cut.
__attribute__((target("avx2,fma,f16c"))) void keepLoop(const uint32_t* bits, uint32_t indexBits, uint64_t count, uint64_t first, uint64_t cut,
                                                        size_t full, double* keep) {
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(indexBits));
  const uint64_t last = count - 1 - first;
  const __m256i cuts = _mm256_set1_epi64x(static_cast<long long>(cut)), four = _mm256_set1_epi64x(4);
  __m256i index = _mm256_setr_epi64x(static_cast<long long>(last), static_cast<long long>(last - 1), static_cast<long long>(last - 2),
                                     static_cast<long long>(last - 3));
  for (size_t j = 0; j < full; j += 4) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bits + j));
    _mm256_storeu_pd(keep + j, keepOfCut4(belowCut4(v, shift, index, cuts)));
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

namespace {

// sceKeepOfBitsAvx512 (sce_avx512.h) in two 4-lane halves (keepOfBits4).
__attribute__((target("avx2,fma,f16c"))) void keepOfBits(const uint8_t* bytes, unsigned shift, size_t full, double* keep) {
  for (size_t j = 0; j < full; j += 8) {  // elements j .. j + 7: the high bits of one byte and the low bits of the next (shift > 0)
    const unsigned two = shift == 0 ? bytes[j / 8] : (bytes[j / 8] | static_cast<unsigned>(bytes[j / 8 + 1]) << 8) >> shift;
    _mm256_storeu_pd(keep + j, keepOfBits4(two & 0xF));
    _mm256_storeu_pd(keep + j + 4, keepOfBits4((two >> 4) & 0xF));
  }
}

}  // namespace

void sceVarianceBits(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits) {
  // In registers, 8 lanes where the CPU has AVX-512 (sce_avx512.h), else 4 (sce_registers_avx2.h); else the chunks of sceTasks' loops.
  if (avx512Enabled() ? sceVarianceBitsAvx512(srcs, types, p, n, bits) : sceVarianceBitsAvx2(srcs, types, p, n, bits)) return;
  scalar::sceVarianceBits(srcs, types, p, n, bits);
}

// sce.h's sceZeroBits: 16 a step where the CPU has AVX-512 (sce_avx512.cc), else 8, the rest one by one.
__attribute__((target("avx2"))) uint64_t sceZeroBits(const uint32_t* bits, size_t n) {
  size_t j = 0;
  uint64_t zeros = avx512Enabled() ? sceZeroBitsAvx512(bits, n, &j) : 0;
  for (; j + 8 <= n; j += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + j));
    zeros += static_cast<uint64_t>(__builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(v, _mm256_setzero_si256())))));
  }
  return zeros + scalar::sceZeroBits(bits + j, n - j);
}

bool sceMergeInRegisters(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                         Dtype to) {
  return avx512Enabled() ? sceMergeInRegistersAvx512(srcs, types, p, count, start, n, out, to) : sceMergeInRegistersAvx2(srcs, types, p, count, start, n, out, to);
}

void sceKeepOfMap(const uint8_t* map, uint64_t piece, uint64_t first, size_t len, double* keep) {
  // 8 elements a step (one vector with AVX-512, two without), to the piece's end or the run's; the scalar truth for the few left of each
  // (its division per element made the bench's sce3 spend a third of its CPU here on a CPU without AVX-512).
  const bool wide = avx512Enabled();
  for (size_t j = 0; j < len;) {
    const SceKeepMapRun run = sceKeepMapRun(map, piece, first + j, len - j);
    const size_t full = run.length & ~size_t{7};
    if (full > 0) (wide ? sceKeepOfBitsAvx512 : keepOfBits)(run.bytes, run.shift, full, keep + j);
    scalar::sceKeepOfMap(map, piece, first + j + full, run.length - full, keep + j + full);
    j += run.length;
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
