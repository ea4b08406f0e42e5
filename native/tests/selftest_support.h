// What the CPU kernels' self-test files share (kernels_selftest.cc runs them all): the failure count
// and CHECK, the digest of every output, and random tensors salted with special values.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu_backends.h"
#include "kernels/kernels.h"

using wm::Dtype;

inline int failures = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      if (++failures <= 30) {                              \
        std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
        std::fprintf(stderr, __VA_ARGS__);                 \
        std::fprintf(stderr, "\n");                        \
      }                                                    \
    }                                                      \
  } while (0)

inline uint64_t digest = 1469598103934665603ull;
inline void digestBytes(const void* p, size_t n) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) digest = (digest ^ b[i]) * 1099511628211ull;
}

inline const char* dtypeName(Dtype t) { return t == Dtype::F32 ? "F32" : t == Dtype::F16 ? "F16" : "BF16"; }

// f() with the AVX-512 kernels switched on or off (where this build has the AVX2 backend; else f() alone), then the setting
// restored: the SIMD tests run both widths on a CPU that has AVX-512.
template <class F>
void withAvx512(bool on, F&& f) {
#if defined(WM_HAVE_AVX2_BACKEND)
  const bool was = wm::avx2::setAvx512Enabled(on);
  f();
  wm::avx2::setAvx512Enabled(was);
#else
  (void)on;
  f();
#endif
}

// f() with AVX-512 on and VBMI2's 16-bit loops switched on or off (where the CPU has them), then both settings restored: the loops
// that VBMI2 replaces run too on a CPU that has it.
template <class F>
void withVbmi2(bool on, F&& f) {
#if defined(WM_HAVE_AVX2_BACKEND)
  const bool was = wm::avx2::setVbmi2Enabled(on);
  withAvx512(true, f);
  wm::avx2::setVbmi2Enabled(was);
#else
  (void)on;
  f();
#endif
}

// f(path) on each kernel path in turn, 0: scalar, 1: AVX2, 2: AVX-512 (where the CPU has it; else AVX2 again), then SIMD on again.
template <class F>
void onEachPath(F&& f) {
  for (int path = 0; path < 3; ++path) {
    wm::setSimdEnabled(path > 0);
    withAvx512(path == 2, [&] { f(path); });
  }
  wm::setSimdEnabled(true);
}

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  uint64_t next() { return g(); }
};

// A value in dtype t's encoding: mostly ordinary weights, often special or near a rounding tie.
inline uint32_t randomBits(Rng& r, Dtype t) {
  const uint64_t k = r.next() % 100;
  const uint64_t x = r.next();
  if (t == Dtype::F32) {
    static const uint32_t special[] = {0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000,
                                       0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF,
                                       0xFFC12345, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000, 0x477FEFFF, 0x477FF000,
                                       0x33000000, 0x33000001, 0x387FFFFF, 0x38800000, 0x3F808000, 0x3F818000};
    if (k < 15) return special[x % (sizeof special / sizeof special[0])];
    if (k < 30) return (uint32_t)(x & 0xFFFF0000u) | ((x >> 32) & 1 ? 0x8000u : 0x7FFFu);  // bf16 ties
    if (k < 40) return (uint32_t)(x & 0xFFFFE000u) | 0x1000u;                          // f16 ties
    if (k < 50) return (uint32_t)x;                                                    // any pattern
    // ordinary weights: |x| around 2^-12 .. 2^1
    const uint32_t exp = 115 + (uint32_t)((x >> 40) % 13);
    return (uint32_t)((x >> 63) << 31) | (exp << 23) | (uint32_t)(x & 0x7FFFFF);
  }
  static const uint16_t specialF16[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF,
                                        0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0x7D55, 0xFF00, 0x3C00};
  static const uint16_t specialBF16[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x7F7F, 0xFF7F,
                                         0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x7F81, 0x7FA5, 0xFFFF, 0x3F80};
  if (k < 15) return t == Dtype::F16 ? specialF16[x % 16] : specialBF16[x % 16];
  if (k < 40) return (uint32_t)(x & 0xFFFF);
  if (t == Dtype::F16) {
    const uint32_t exp = 3 + (uint32_t)((x >> 40) % 14);  // 2^-12 .. 2^1
    return (uint32_t)(((x >> 63) << 15) | (exp << 10) | (x & 0x3FF));
  }
  const uint32_t exp = 115 + (uint32_t)((x >> 40) % 13);
  return (uint32_t)(((x >> 63) << 15) | (exp << 7) | (x & 0x7F));
}

inline std::vector<unsigned char> randomTensor(Rng& r, Dtype t, size_t n) {
  std::vector<unsigned char> v(n * wm::dtypeSize(t) + 1);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t b = randomBits(r, t);
    std::memcpy(v.data() + i * wm::dtypeSize(t), &b, wm::dtypeSize(t));  // little-endian
  }
  return v;
}

// The test groups in files of their own (kernels_selftest.cc's main runs them).
void testRam(uint64_t seed);       // elementwise_selftest.cc
void testNearswap(uint64_t seed);  // elementwise_selftest.cc
void testSce(uint64_t seed);       // sce_selftest.cc
void testDella(uint64_t seed);     // della_selftest.cc
void testDellaMixedRows(uint64_t seed);  // della_mixed_selftest.cc
void testArcee(uint64_t seed);     // arcee_selftest.cc
void testArceeKl(uint64_t seed);   // arcee_kl_selftest.cc
void testKeySelection(uint64_t seed);  // key_selection_selftest.cc
void testExactExpLog(uint64_t seed);  // exact_exp_log_selftest.cc
void testHugePageBuffers(uint64_t seed);  // buffers_selftest.cc (io.h's buffers, beside the kernels they feed)
void testBlockQueue(uint64_t seed);       // block_queue_selftest.cc (block_assembler.h's queue of blocks held by a write)
void testOutputFlush(uint64_t seed);      // output_flush_selftest.cc (output_flusher.h: each output flushed at its last write)
void testReadHint(uint64_t seed);         // read_hint_selftest.cc (io.h's willNeed: a long range read ahead whole)
void testStoreResult(uint64_t seed);      // store_selftest.cc (avx2_loads.h's one-rounding store against the scalar truth)
