// Picks the CPU backend at run time: AVX2+FMA+F16C where the CPU and OS have it, else scalar.
// Endpoints and same-dtype copies are decided here once, so every backend agrees on them.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "arcee_fusion_rows.h"
#include "arcee_kl.h"
#include "cpu_backends.h"
#include "della.h"
#include "della_rank.h"
#include "elementwise.h"
#include "exact_exp_log_tables.h"
#include "kernels.h"
#include "key_selection.h"
#include "numerics.h"
#include "sce.h"
#include "sparse_select.h"
#include "sparsify.h"

namespace wm {

bool environmentSwitch(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

namespace {

bool detectSimd() {
#if defined(WM_HAVE_AVX2_BACKEND)
  if (environmentSwitch("WEIGHTMIX_NO_SIMD")) return false;  // diagnostics: force the portable path
  return avx2::cpuSupported();
#else
  return false;
#endif
}

const bool kCpuHasSimd = detectSimd();
std::atomic<bool> simdEnabled{true};  // tests switch it; the executor never does

#if defined(WM_HAVE_AVX2_BACKEND)
// Whether the CPU has AVX-512F, DQ, BW and VL (libgcc's check includes the OS saving their state).
const bool kCpuHasAvx512 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}();

// Whether the AVX-512 paths may run (sparse_avx512.cc, elementwise_avx512.cc, sce_avx512.cc, sce_sums_avx512.cc,
// arcee_fusion_avx512.cc, the 8-lane exp/log, VPMULLQ in DARE's and della's hashes): the CPU
// has them, unless WEIGHTMIX_NO_AVX512 is set (diagnostics, or a CPU whose clock drops under 512-bit work) or a
// test turned them off (setAvx512Enabled).
std::atomic<bool> avx512{kCpuHasAvx512 && !environmentSwitch("WEIGHTMIX_NO_AVX512")};
// VBMI2 besides (16-bit compress and expand, sce_avx512.cc's mergeKeptOnlyVbmi2); tests turn it off to run the 32-bit-lane loop there.
const bool kCpuHasVbmi2 = kCpuHasAvx512 && __builtin_cpu_supports("avx512vbmi2");
std::atomic<bool> vbmi2{kCpuHasVbmi2};
#endif

inline bool useSimd() { return kCpuHasSimd && simdEnabled.load(std::memory_order_relaxed); }

}  // namespace

#if defined(WM_HAVE_AVX2_BACKEND)
#define WM_DISPATCH(call) (useSimd() ? avx2::call : scalar::call)
#else
#define WM_DISPATCH(call) (scalar::call)
#endif

void lerpExact(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n, float w) {
  switch (num::lerpEndpoint(w)) {
    case 0: return convert(a, ta, out, to, n);  // λ = 0 reproduces a, bit for bit
    case 1: return convert(b, tb, out, to, n);  // λ = 1 reproduces b
    default: return WM_DISPATCH(lerpExact(a, ta, b, tb, out, to, n, w));
  }
}

void lerpMi(const void* a, const void* b, Dtype t, void* out, Dtype to, size_t n, float w) {
  WM_DISPATCH(lerpMi(a, b, t, out, to, n, w));
}

void convert(const void* src, Dtype ts, void* out, Dtype to, size_t n) {
  if (ts == to) {
    if (n != 0 && out != src) std::memmove(out, src, n * dtypeSize(ts));
    return;
  }
  WM_DISPATCH(convert(src, ts, out, to, n));
}

void linear(const void* const* srcs, const Dtype* types, const float* w, size_t count, void* out, Dtype to,
            size_t n) {
  WM_DISPATCH(linear(srcs, types, w, count, out, to, n));
}

void accumulateMoments(const void* a, Dtype ta, const void* b, Dtype tb, size_t n, Moments& m) {
  WM_DISPATCH(accumulateMoments(a, ta, b, tb, n, m));
}

void absDeltaBits(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* out) {
  WM_DISPATCH(absDeltaBits(base, tb, x, tx, n, out));
}

void sparseMerge(const void* const* srcs, const Dtype* types, const SparseParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                 Dtype to) {
  WM_DISPATCH(sparseMerge(srcs, types, p, count, start, n, out, to));
}

void sparseKeep(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n,
                uint8_t* keep) {
  WM_DISPATCH(sparseKeep(absBits, m, indexBits, count, start, n, keep));
}

size_t windowKeys(const uint32_t* a, size_t n, uint32_t lo, uint32_t hi, uint32_t indexBits, uint64_t count, uint64_t start, uint64_t* keys,
                  uint64_t* above) {
  return WM_DISPATCH(windowKeys(a, n, lo, hi, indexBits, count, start, keys, above));
}

void l1Slots(const uint32_t* a, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n, uint32_t* slot, uint32_t* mant,
             uint8_t* bits) {
  WM_DISPATCH(l1Slots(a, m, indexBits, count, start, n, slot, mant, bits));
}

void ramMerge(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n, void* out, Dtype to) {
  WM_DISPATCH(ramMerge(srcs, types, p, n, out, to));
}

void ramCounts(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n, uint64_t* shared, uint64_t* unique) {
  WM_DISPATCH(ramCounts(srcs, types, p, n, shared, unique));
}

void nearswapMerge(const void* const* srcs, const Dtype* types, const NearswapParams& p, size_t n, void* out, Dtype to) {
  WM_DISPATCH(nearswapMerge(srcs, types, p, n, out, to));
}

void sceCombine(const double* base, const double* t, size_t stride, const double* keep, const double* weights, size_t m, size_t len, void* out,
                size_t at, Dtype to) {
  WM_DISPATCH(sceCombine(base, t, stride, keep, weights, m, len, out, at, to));
}

void sceTasks(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, double* base, double* t, size_t stride,
              uint32_t* bits) {
  WM_DISPATCH(sceTasks(srcs, types, p, j0, len, base, t, stride, bits));
}

void sceKeep(const uint32_t* bits, uint32_t indexBits, uint64_t count, uint64_t first, uint64_t cut, size_t len, double* keep) {
  WM_DISPATCH(sceKeep(bits, indexBits, count, first, cut, len, keep));
}

void sceMergeNone(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, void* out, Dtype to) {
  WM_DISPATCH(sceMergeNone(srcs, types, p, j0, len, out, to));
}

void sceSumSquaresPieces(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, double* sums, uint8_t* keepMap) {
  WM_DISPATCH(sceSumSquaresPieces(srcs, types, p, count, sums, keepMap));
}

void sceKeepOfMap(const uint8_t* map, uint64_t piece, uint64_t first, size_t len, double* keep) {
  WM_DISPATCH(sceKeepOfMap(map, piece, first, len, keep));
}

void sceVarianceBits(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits) {
  WM_DISPATCH(sceVarianceBits(srcs, types, p, n, bits));
}
uint64_t sceZeroBits(const uint32_t* bits, size_t n) { return WM_DISPATCH(sceZeroBits(bits, n)); }

bool sceMergeInRegisters(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                         Dtype to) {
  return WM_DISPATCH(sceMergeInRegisters(srcs, types, p, count, start, n, out, to));
}

const char* simdPathName() {
  if (!useSimd()) return "scalar";
#if defined(WM_HAVE_AVX2_BACKEND)
  if (avx2::avx512Enabled()) return "avx2+fma+f16c+avx512";  // the kernels' AVX-512 paths (avx512Enabled above)
#endif
  return "avx2+fma+f16c";
}

bool setSimdEnabled(bool enabled) { return simdEnabled.exchange(enabled); }

#if defined(WM_HAVE_AVX2_BACKEND)
bool avx2::setAvx512Enabled(bool enabled) { return avx512.exchange(enabled && kCpuHasAvx512); }  // never on where the CPU lacks them
bool avx2::avx512Enabled() { return avx512.load(std::memory_order_relaxed); }
bool avx2::setVbmi2Enabled(bool enabled) { return vbmi2.exchange(enabled && kCpuHasVbmi2); }
bool avx2::vbmi2Enabled() { return avx512Enabled() && vbmi2.load(std::memory_order_relaxed); }
#endif

void dellaUniforms(uint64_t seedKey, uint64_t first, size_t n, uint64_t* u) { WM_DISPATCH(dellaUniforms(seedKey, first, n, u)); }
uint32_t dellaSplitDraws(const uint64_t* u, size_t stride, uint32_t L, uint64_t low, uint64_t high, uint8_t* keep, uint32_t* middle) {
  return WM_DISPATCH(dellaSplitDraws(u, stride, L, low, high, keep, middle));
}
uint32_t dellaKeysIn(const uint32_t* keys, size_t stride, uint32_t from, uint32_t to, uint32_t lo, uint32_t span) {
  return WM_DISPATCH(dellaKeysIn(keys, stride, from, to, lo, span));
}
void keyWindows(const uint32_t* keys, size_t n, KeyWindow* w, size_t windows) { WM_DISPATCH(keyWindows(keys, n, w, windows)); }
uint32_t dellaOddKeys(const uint32_t* keys, uint32_t L, uint32_t* odd) { return WM_DISPATCH(dellaOddKeys(keys, L, odd)); }
DellaKeyFacts dellaKeys(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* keys) { return WM_DISPATCH(dellaKeys(base, tb, x, tx, n, keys)); }
uint32_t dellaDrawSplit(uint64_t seedKey, uint64_t first, uint32_t L, uint64_t low, uint64_t high, uint8_t* keep, uint32_t* middle, uint64_t* u) {
  return WM_DISPATCH(dellaDrawSplit(seedKey, first, L, low, high, keep, middle, u));
}
uint32_t dellaTakeMarks(uint8_t* marks, uint32_t from, uint32_t to, uint32_t* buckets) { return WM_DISPATCH(dellaTakeMarks(marks, from, to, buckets)); }

size_t expArrayCounting(const double* x, double* out, size_t n) { return WM_DISPATCH(expArray(x, out, n)); }
size_t logArrayCounting(const double* x, double* out, size_t n) { return WM_DISPATCH(logArray(x, out, n)); }

double arceeRowMax(const void* v, Dtype t, size_t r0, size_t L) { return WM_DISPATCH(arceeRowMax(v, t, r0, L)); }
void arceeShiftedRow(const void* v, Dtype t, size_t r0, size_t L, double m, double* x) { WM_DISPATCH(arceeShiftedRow(v, t, r0, L, m, x)); }
void arceeRatios(const double* ea, double sa, const double* eb, double sb, size_t L, double* p, double* r) {
  WM_DISPATCH(arceeRatios(ea, sa, eb, sb, L, p, r));
}
void arceeKeys(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, uint32_t* keys) {
  WM_DISPATCH(arceeKeys(a, ta, b, tb, j0, n, kl, keys));
}
void arceeMergeRow(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, float threshold, void* out, Dtype to) {
  WM_DISPATCH(arceeMergeRow(a, ta, b, tb, j0, n, kl, threshold, out, to));
}
bool arceeSameImportances(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double klLo, double klHi) {
  return WM_DISPATCH(arceeSameImportances(a, ta, b, tb, j0, n, klLo, klHi));
}
bool arceeKlTerms(const double* p, const double* r, size_t n, double* lo, double* hi) { return WM_DISPATCH(arceeKlTerms(p, r, n, lo, hi)); }

}  // namespace wm
