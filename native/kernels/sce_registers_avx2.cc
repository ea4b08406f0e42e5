// sce_registers_avx2.h: SCE's variance bits and merge with the task vectors in 4-lane registers, for CPUs without AVX-512 (sce_avx512.cc's
// in-register kernels in AVX2): t = x - base, the keep bits and the merge arithmetic per 4 elements, with no f64 task vectors or keep mask
// stored between loops (the chunk loops of sce_avx2.cc spent a third of the bench's sce3 CPU on storing and reading them back).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <algorithm>

#include "sce_lanes_avx2.h"
#include "sce_model_count.h"
#include "sce_registers_avx2.h"

namespace wm {
namespace avx2 {
namespace {

// sceVarianceBits with M models of dtype T: 4 elements a step, the last r < 4 in lanes 0 .. r - 1.
template <Dtype T, size_t M>
__attribute__((target("avx2,fma,f16c"))) void varianceBitsOf(const void* const* srcs, const SceParams& p, size_t n, uint32_t* bits) {
  const void* base = srcs[p.base];
  const void* x[M];
  for (size_t k = 0; k < M; ++k) x[k] = srcs[p.sources[k]];
  for (size_t j = 0; j < n; j += 4) {
    const size_t r = std::min<size_t>(4, n - j);
    const __m256d b = loadLanes4<T>(base, j, r);
    __m256d t[M];
    for (size_t k = 0; k < M; ++k) t[k] = _mm256_sub_pd(loadLanes4<T>(x[k], j, r), b);
    const __m128i v = varianceBits4(Tasks4InRegisters{t}, M);
    if (r == 4) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(bits + j), v);
    } else {
      alignas(16) uint32_t last[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(last), v);
      std::copy(last, last + r, bits + j);
    }
  }
}

// The keep-map bits of r <= 4 elements from bit `at` of bytes (bit b: bit b % 8 of bytes[b / 8]), reading only the bytes that hold them.
inline unsigned mapBits4(const uint8_t* bytes, size_t at, size_t r) {
  const size_t off = at % 8;
  const unsigned two = bytes[at / 8] | (off + r > 8 ? static_cast<unsigned>(bytes[at / 8 + 1]) << 8 : 0u);
  return (two >> off) & ((1u << r) - 1);
}

// sceMerge (sce.h) of elements start .. start + n - 1 of count, M models of dtype T, output TO: per 4 elements t = x - base, the keep
// bits (all kept: cut 0; from the keep map; or sceKeep's rule on the variance bits computed here) and combine4.
template <Dtype T, Dtype TO, size_t M>
__attribute__((target("avx2,fma,f16c"))) void mergeInRegisters(const void* const* srcs, const SceParams& p, uint64_t count, uint64_t start, size_t n,
                                                              void* out) {
  const void* base = srcs[p.base];
  const void* x[M];
  for (size_t k = 0; k < M; ++k) x[k] = srcs[p.sources[k]];
  const bool all = p.cut == 0, byMap = !all && p.keepMap != nullptr, fresh = !all && !byMap;
  const __m256d one = _mm256_set1_pd(1.0);
  const __m128i indexShift = _mm_cvtsi32_si128(static_cast<int>(p.indexBits));
  const __m256i cuts = _mm256_set1_epi64x(static_cast<long long>(p.cut)), lane = _mm256_set_epi64x(3, 2, 1, 0);
  for (size_t j0 = 0; j0 < n;) {  // runs that do not cross a piece of the keep map
    const SceKeepMapRun keepRun = byMap ? sceKeepMapRun(p.keepMap, p.sumPiece, start + j0, n - j0) : SceKeepMapRun{n - j0, nullptr, 0};
    const size_t run = keepRun.length, shift = keepRun.shift;
    const uint8_t* bytes = keepRun.bytes;
    for (size_t j = 0; j < run; j += 4) {
      const size_t e = j0 + j, r = std::min<size_t>(4, run - j);
      const __m256d b = loadLanes4<T>(base, e, r);
      __m256d t[M];
      for (size_t k = 0; k < M; ++k) t[k] = _mm256_sub_pd(loadLanes4<T>(x[k], e, r), b);
      __m256d keep = one;
      if (byMap) {
        keep = keepOfBits4(mapBits4(bytes, shift + j, r));
      } else if (fresh) {  // sceKeep's rule on the variance bits of these t (lanes past r: never stored)
        const __m256i index = _mm256_sub_epi64(_mm256_set1_epi64x(static_cast<long long>(count - 1 - (start + e))), lane);
        keep = keepOfCut4(belowCut4(varianceBits4(Tasks4InRegisters{t}, M), indexShift, index, cuts));
      }
      storeLanes4<TO>(out, e, r, combine4(b, Tasks4InRegisters{t}, keep, p.weights.data(), M));
    }
    j0 += run;
  }
}

}  // namespace

bool sceVarianceBitsAvx2(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits) {
  if (!sceFitsRegisters(types, p)) return false;
  const Dtype type = types[p.base];
  const size_t m = p.sources.size();
  withDtype(type, [&](auto T) {
    withSceModelCount(m, [&](auto M) { varianceBitsOf<decltype(T)::value, decltype(M)::value>(srcs, p, n, bits); });
  });
  return true;
}

bool sceMergeInRegistersAvx2(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                             Dtype to) {
  if (!sceFitsRegisters(types, p)) return false;
  const Dtype type = types[p.base];
  const size_t m = p.sources.size();
  if (p.cut != 0 && p.keepMap == nullptr && p.varianceBits != nullptr) return false;  // stored variance bits without a keep map: the chunk path
  withDtype(type, [&](auto T) {
    withDtype(to, [&](auto TO) {
      withSceModelCount(m, [&](auto M) { mergeInRegisters<decltype(T)::value, decltype(TO)::value, decltype(M)::value>(srcs, p, count, start, n, out); });
    });
  });
  return true;
}

}  // namespace avx2
}  // namespace wm

#endif
