// The CPU backends behind kernels.h's dispatcher. Each backend implements the same formulas
// (numerics.h); the dispatcher handles lerpExact's endpoints and same-dtype copies before calling.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <type_traits>

#include "kernels.h"

namespace wm {

// Whether the environment variable `name` is set to something other than "" or "0": the kernels' switches
// (WEIGHTMIX_NO_SIMD, WEIGHTMIX_NO_AVX512, WEIGHTMIX_ARCEE_KL_STATS), read in dispatch.cc.
bool environmentSwitch(const char* name);

struct SparseParams;  // sparsify.h
struct DellaKeyFacts;  // della_rank.h
struct SparseModel;
struct RamParams;  // elementwise.h
struct NearswapParams;

#define WM_CPU_BACKEND_DECLS                                                                            \
  void lerpExact(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n,       \
                 float w);                                                                              \
  void lerpMi(const void* a, const void* b, Dtype t, void* out, Dtype to, size_t n, float w);          \
  void convert(const void* src, Dtype ts, void* out, Dtype to, size_t n);                               \
  void linear(const void* const* srcs, const Dtype* types, const float* w, size_t count, void* out,     \
              Dtype to, size_t n);                                                                      \
  void accumulateMoments(const void* a, Dtype ta, const void* b, Dtype tb, size_t n, Moments& m);     \
  void absDeltaBits(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* out);      \
  void sparseMerge(const void* const* srcs, const Dtype* types, const SparseParams& p, uint64_t count,  \
                   uint64_t start, size_t n, void* out, Dtype to);                                      \
  void sparseKeep(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count,   \
                  uint64_t start, size_t n, uint8_t* keep);                                            \
  size_t windowKeys(const uint32_t* a, size_t n, uint32_t lo, uint32_t hi, uint32_t indexBits,         \
                    uint64_t count, uint64_t start, uint64_t* keys, uint64_t* above);                  \
  void l1Slots(const uint32_t* a, const SparseModel& m, uint32_t indexBits, uint64_t count,           \
               uint64_t start, size_t n, uint32_t* slot, uint32_t* mant, uint8_t* bits);                \
  void ramMerge(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n, void* out,   \
                Dtype to);                                                                              \
  void ramCounts(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n,            \
                 uint64_t* shared, uint64_t* unique);                                                   \
  void nearswapMerge(const void* const* srcs, const Dtype* types, const NearswapParams& p, size_t n,    \
                     void* out, Dtype to);                                                              \
  void sceCombine(const double* base, const double* t, size_t stride, const double* keep,               \
                  const double* weights, size_t m, size_t len, void* out, size_t at, Dtype to);

namespace scalar {
WM_CPU_BACKEND_DECLS
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WM_HAVE_AVX2_BACKEND 1
namespace avx2 {
WM_CPU_BACKEND_DECLS
bool cpuSupported();  // AVX2, FMA and F16C, with the OS saving YMM state
bool setAvx512Enabled(bool enabled);  // the AVX-512 paths (sparse: merge, keep rule, |d| bits, window keys; ram and nearswap merges) where the CPU has them (tests turn them off); returns the old setting
bool avx512Enabled();                 // whether they may run now
bool setVbmi2Enabled(bool enabled);   // AVX-512 VBMI2's 16-bit compress and expand (sce's kept-only merge of 16-bit values) where the CPU has it; returns the old setting
bool vbmi2Enabled();                  // whether it may run now: avx512Enabled() and the CPU has it
}  // namespace avx2
#endif

#undef WM_CPU_BACKEND_DECLS

// sce.h's chunk loads with the variance bits, its keep mask, its keep-nothing merge (scalar in sce.cc, AVX2 in sce_avx2.cc) and
// a tensor's sums of squares with its keep map, and the keep mask from that map (scalar in sce.cc, AVX-512 in sce_sums_avx512.cc),
// the merge with the task vectors in registers (none in sce.cc: its chunks are the truth; AVX-512 in sce_avx512.cc).
struct SceParams;
#define WM_SCE_CHUNK_DECLS                                                                                                      \
  void sceTasks(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, double* base, double* t, \
                size_t stride, uint32_t* bits);                                                                                  \
  void sceKeep(const uint32_t* bits, uint32_t indexBits, uint64_t count, uint64_t first, uint64_t cut, size_t len, double* keep); \
  void sceMergeNone(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, void* out, Dtype to); \
  void sceSumSquaresPieces(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, double* sums,         \
                           uint8_t* keepMap);                                                                                     \
  void sceKeepOfMap(const uint8_t* map, uint64_t piece, uint64_t first, size_t len, double* keep);                            \
  void sceVarianceBits(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits);           \
  uint64_t sceZeroBits(const uint32_t* bits, size_t n);                                                                          \
  bool sceMergeInRegisters(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start,     \
                           size_t n, void* out, Dtype to);
namespace scalar {
WM_SCE_CHUNK_DECLS
}
#if defined(WM_HAVE_AVX2_BACKEND)
namespace avx2 {
WM_SCE_CHUNK_DECLS
}
#endif
#undef WM_SCE_CHUNK_DECLS

// della.h's MAGPRUNE uniform draws and keys (scalar in della.cc, AVX2 in della_avx2.cc), della_rank.h's draw() passes (scalar in
// della_rank.cc, AVX2 in della_avx2.cc).
#define WM_DELLA_DECLS                                                                                                        \
  void dellaUniforms(uint64_t seedKey, uint64_t first, size_t n, uint64_t* u);                                              \
  uint32_t dellaSplitDraws(const uint64_t* u, size_t stride, uint32_t L, uint64_t low, uint64_t high, uint8_t* keep,       \
                           uint32_t* middle);                                                                                \
  uint32_t dellaKeysIn(const uint32_t* keys, size_t stride, uint32_t from, uint32_t to, uint32_t lo, uint32_t span);        \
  uint32_t dellaOddKeys(const uint32_t* keys, uint32_t L, uint32_t* odd);                                                    \
  DellaKeyFacts dellaKeys(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* keys);                   \
  uint32_t dellaDrawSplit(uint64_t seedKey, uint64_t first, uint32_t L, uint64_t low, uint64_t high, uint8_t* keep,         \
                          uint32_t* middle, uint64_t* u);                                                                    \
  uint32_t dellaTakeMarks(uint8_t* marks, uint32_t from, uint32_t to, uint32_t* buckets);
namespace scalar {
WM_DELLA_DECLS
}
#if defined(WM_HAVE_AVX2_BACKEND)
namespace avx2 {
WM_DELLA_DECLS
}
#endif
#undef WM_DELLA_DECLS

// Calls f(std::integral_constant<Dtype, t>{}) so that loops can be specialized per dtype.
template <class F>
inline void withDtype(Dtype t, F&& f) {
  switch (t) {
    case Dtype::F32: f(std::integral_constant<Dtype, Dtype::F32>{}); return;
    case Dtype::F16: f(std::integral_constant<Dtype, Dtype::F16>{}); return;
    case Dtype::BF16: f(std::integral_constant<Dtype, Dtype::BF16>{}); return;
    default: break;
  }
  std::abort();  // callers validate dtypes; an unknown one is a bug, never a silent no-op
}

}  // namespace wm
