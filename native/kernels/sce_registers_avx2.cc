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

// The variance bits of the 4 elements from j (r <= 4 of them; the lanes past r are 0-loaded).
template <Dtype T, size_t M>
WM_AVX2_INLINE __m128i varianceBitsAt(const void* base, const void* const* x, size_t j, size_t r) {
  __m256d t[M];
  loadTasks4<T, M>(base, x, j, r, t);
  return varianceBits4(Tasks4InRegisters{t}, M);
}

// sceVarianceBits with M models of dtype T: 8 elements a step (two independent halves, one store), then 4 at a time, the last r < 4 in
// lanes 0 .. r - 1.
template <Dtype T, size_t M>
__attribute__((target("avx2,fma,f16c"))) void varianceBitsOf(const void* const* srcs, const SceParams& p, size_t n, uint32_t* bits) {
  const void* base = srcs[p.base];
  const void* x[M];
  for (size_t k = 0; k < M; ++k) x[k] = srcs[p.sources[k]];
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m128i lo = varianceBitsAt<T, M>(base, x, j, 4), hi = varianceBitsAt<T, M>(base, x, j + 4, 4);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(bits + j), _mm256_set_m128i(hi, lo));
  }
  for (; j < n; j += 4) {
    const size_t r = std::min<size_t>(4, n - j);
    const __m128i v = varianceBitsAt<T, M>(base, x, j, r);
    alignas(16) uint32_t last[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(last), v);
    std::copy(last, last + r, bits + j);
  }
}

// The keep-map bits of r <= 8 elements from bit `at` of bytes (bit b: bit b % 8 of bytes[b / 8]), reading only the bytes that hold them.
inline unsigned mapBits(const uint8_t* bytes, size_t at, size_t r) {
  const size_t off = at % 8;
  const unsigned two = bytes[at / 8] | (off + r > 8 ? static_cast<unsigned>(bytes[at / 8 + 1]) << 8 : 0u);
  return (two >> off) & ((1u << r) - 1);
}

// Where a merge's keep bits come from: all kept (cut 0), the keep map, or sceKeep's rule on variance bits computed with the loads.
enum class KeepFrom { All, Map, Fresh };

// A merge's 4 elements from e (r <= 4 of them): their base and task vectors, and their keep mask (K::Map: from their 4 keep-map bits
// `mapBits`; lanes past r are never stored).
template <Dtype T, size_t M, KeepFrom K>
struct MergeLoads {
  const void* base;
  const void* x[M];
  uint64_t last;  // count - 1 - start: element e's index key is last - e
  __m128i indexShift;
  __m256i cuts;

  WM_AVX2_INLINE __m256d load(size_t e, size_t r, unsigned keepBits, __m256d& b, __m256d* t) const {
    b = loadTasks4<T, M>(base, x, e, r, t);
    if constexpr (K == KeepFrom::Map) {
      return keepOfBits4(keepBits);
    } else if constexpr (K == KeepFrom::Fresh) {
      const __m256i index = _mm256_sub_epi64(_mm256_set1_epi64x(static_cast<long long>(last - e)), _mm256_set_epi64x(3, 2, 1, 0));
      return keepOfCut4(belowCut4(varianceBits4(Tasks4InRegisters{t}, M), indexShift, index, cuts));
    } else {
      return _mm256_set1_pd(1.0);
    }
  }
};

// sceMerge (sce.h) of elements start .. start + n - 1 of count, M models of dtype T, output TO, keep bits from K: per 4 elements t = x - base,
// the keep bits and combine4; 8 elements a step (two halves, one store of their 8 results) and 4 at a time for the last ones of a run.
template <Dtype T, Dtype TO, size_t M, KeepFrom K>
__attribute__((target("avx2,fma,f16c"))) void mergeInRegisters(const void* const* srcs, const SceParams& p, uint64_t count, uint64_t start, size_t n,
                                                              void* out) {
  MergeLoads<T, M, K> loads{srcs[p.base], {}, count - 1 - start, _mm_cvtsi32_si128(static_cast<int>(p.indexBits)),
                            _mm256_set1_epi64x(static_cast<long long>(p.cut))};
  for (size_t k = 0; k < M; ++k) loads.x[k] = srcs[p.sources[k]];
  double weights[M];  // a copy the stores cannot alias: loaded once, not per step
  std::copy(p.weights.begin(), p.weights.begin() + M, weights);
  for (size_t j0 = 0; j0 < n;) {  // runs that do not cross a piece of the keep map
    const SceKeepMapRun keepRun =
        K == KeepFrom::Map ? sceKeepMapRun(p.keepMap, p.sumPiece, start + j0, n - j0) : SceKeepMapRun{n - j0, nullptr, 0};
    const size_t run = keepRun.length, shift = keepRun.shift;
    size_t j = 0;
    for (; j + 8 <= run; j += 8) {
      const size_t e = j0 + j;
      __m256d bLo, bHi, tLo[M], tHi[M];
      const unsigned eight = K == KeepFrom::Map ? mapBits(keepRun.bytes, shift + j, 8) : 0;
      const __m256d keepLo = loads.load(e, 4, eight & 0xF, bLo, tLo);
      const __m256d keepHi = loads.load(e + 4, 4, eight >> 4, bHi, tHi);
      storeResult8<TO>(out, e, combine4(bLo, Tasks4InRegisters{tLo}, keepLo, weights, M), combine4(bHi, Tasks4InRegisters{tHi}, keepHi, weights, M));
    }
    for (; j < run; j += 4) {
      const size_t e = j0 + j, r = std::min<size_t>(4, run - j);
      __m256d b, t[M];
      const __m256d keep = loads.load(e, r, K == KeepFrom::Map ? mapBits(keepRun.bytes, shift + j, r) : 0, b, t);
      storeLanes4<TO>(out, e, r, combine4(b, Tasks4InRegisters{t}, keep, weights, M));
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
      withSceModelCount(m, [&](auto M) {
        constexpr Dtype kIn = decltype(T)::value, kOut = decltype(TO)::value;
        constexpr size_t kModels = decltype(M)::value;
        if (p.cut == 0) {
          mergeInRegisters<kIn, kOut, kModels, KeepFrom::All>(srcs, p, count, start, n, out);
        } else if (p.keepMap != nullptr) {
          mergeInRegisters<kIn, kOut, kModels, KeepFrom::Map>(srcs, p, count, start, n, out);
        } else {
          mergeInRegisters<kIn, kOut, kModels, KeepFrom::Fresh>(srcs, p, count, start, n, out);
        }
      });
    });
  });
  return true;
}

}  // namespace avx2
}  // namespace wm

#endif
