// Stand-alone self-test of the CPU kernels (no Node needed):
//   g++ -std=c++17 -O3 -ffp-contract=off -Inative native/tests/kernels_selftest.cc native/tests/elementwise_selftest.cc native/kernels/*.cc
//       -o /tmp/kernels_selftest && /tmp/kernels_selftest [seed] [--quick]
// 1. Conversions, exhaustively: numerics.h against c10's float-arithmetic algorithms (copied below
//    as the independent oracle) and against the SIMD path, for every f32 and every f16/bf16 pattern.
// 2. Every op and dtype combination on random data salted with special values: SIMD == scalar.
// 3. Prints a digest of all outputs; build once more with -ffp-contract=fast and compare digests to
//    prove that no compiler contraction changes a bit.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_backends.h"
#include "kernels/elementwise.h"
#include "kernels/histogram_cuts.h"
#include "kernels/kernels.h"
#include "kernels/numerics.h"
#include "kernels/sparse_select.h"
#include "kernels/sparsify.h"
#include "tests/selftest_support.h"

namespace num = wm::num;

// ---- c10 (PyTorch) conversions, as published, used as the oracle ----------------------------------
static float fp32FromBits(uint32_t w) { return num::f32FromBits(w); }
static uint32_t fp32ToBits(float f) { return num::f32Bits(f); }

static float c10Fp16ToFp32(uint16_t h) {
  const uint32_t w = (uint32_t)h << 16;
  const uint32_t sign = w & UINT32_C(0x80000000);
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = UINT32_C(0xE0) << 23;
  const float exp_scale = 0x1.0p-112f;
  const float normalized_value = fp32FromBits((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = UINT32_C(126) << 23;
  const float magic_bias = 0.5f;
  const float denormalized_value = fp32FromBits((two_w >> 17) | magic_mask) - magic_bias;
  const uint32_t denormalized_cutoff = UINT32_C(1) << 27;
  const uint32_t result =
      sign | (two_w < denormalized_cutoff ? fp32ToBits(denormalized_value) : fp32ToBits(normalized_value));
  return fp32FromBits(result);
}

static uint16_t c10Fp32ToFp16(float f) {
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = (std::fabs(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = fp32ToBits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & UINT32_C(0x80000000);
  uint32_t bias = shl1_w & UINT32_C(0xFF000000);
  if (bias < UINT32_C(0x71000000)) bias = UINT32_C(0x71000000);
  base = fp32FromBits((bias >> 1) + UINT32_C(0x07800000)) + base;
  const uint32_t bits = fp32ToBits(base);
  const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
  const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return (uint16_t)((sign >> 16) | (shl1_w > UINT32_C(0xFF000000) ? UINT16_C(0x7E00) : nonsign));
}

static uint16_t c10Fp32ToBf16(float f) {
  if (std::isnan(f)) return UINT16_C(0x7FC0);
  const uint32_t u = fp32ToBits(f);
  const uint32_t rounding_bias = ((u >> 16) & 1) + UINT32_C(0x7FFF);
  return (uint16_t)((u + rounding_bias) >> 16);
}

// ---- 1. exhaustive conversions ------------------------------------------------------------------------
static void testConversionsExhaustive() {
  // f16 -> f32 and bf16 -> f32, every pattern, scalar truth vs c10 vs both dispatch paths.
  std::vector<uint16_t> h(65536);
  for (uint32_t i = 0; i < 65536; ++i) h[i] = (uint16_t)i;
  for (Dtype t : {Dtype::F16, Dtype::BF16}) {
    std::vector<float> simd(65536), scal(65536);
    wm::setSimdEnabled(true);
    wm::convert(h.data(), t, simd.data(), Dtype::F32, 65536);
    wm::setSimdEnabled(false);
    wm::convert(h.data(), t, scal.data(), Dtype::F32, 65536);
    wm::setSimdEnabled(true);
    for (uint32_t i = 0; i < 65536; ++i) {
      const uint32_t truth = fp32ToBits(t == Dtype::F16 ? num::f16ToF32((uint16_t)i) : num::bf16ToF32((uint16_t)i));
      const uint32_t oracle = t == Dtype::F16 ? fp32ToBits(c10Fp16ToFp32((uint16_t)i)) : i << 16;
      CHECK(truth == oracle, "%s->f32 %04x: numerics %08x c10 %08x", t == Dtype::F16 ? "f16" : "bf16", i, truth, oracle);
      CHECK(fp32ToBits(simd[i]) == truth, "%s->f32 %04x: simd %08x truth %08x", t == Dtype::F16 ? "f16" : "bf16", i,
            fp32ToBits(simd[i]), truth);
      CHECK(fp32ToBits(scal[i]) == truth, "%s->f32 %04x: scalar %08x truth %08x", t == Dtype::F16 ? "f16" : "bf16", i,
            fp32ToBits(scal[i]), truth);
    }
  }
  // f32 -> f16 and f32 -> bf16, every f32 pattern, in chunks.
  const size_t kChunk = size_t(1) << 20;
  std::vector<uint32_t> src(kChunk);
  std::vector<uint16_t> s16(kChunk), v16(kChunk), sb(kChunk), vb(kChunk);
  uint64_t checked = 0;
  for (uint64_t base = 0; base < (uint64_t(1) << 32); base += kChunk) {
    for (size_t i = 0; i < kChunk; ++i) src[i] = (uint32_t)(base + i);
    wm::setSimdEnabled(true);
    wm::convert(src.data(), Dtype::F32, v16.data(), Dtype::F16, kChunk);
    wm::convert(src.data(), Dtype::F32, vb.data(), Dtype::BF16, kChunk);
    wm::setSimdEnabled(false);
    wm::convert(src.data(), Dtype::F32, s16.data(), Dtype::F16, kChunk);
    wm::convert(src.data(), Dtype::F32, sb.data(), Dtype::BF16, kChunk);
    wm::setSimdEnabled(true);
    for (size_t i = 0; i < kChunk; ++i) {
      const float f = fp32FromBits(src[i]);
      const uint16_t t16 = num::f32ToF16(f), tb = num::f32ToBF16(f);
      CHECK(t16 == c10Fp32ToFp16(f), "f32->f16 %08x: numerics %04x c10 %04x", src[i], t16, c10Fp32ToFp16(f));
      CHECK(tb == c10Fp32ToBf16(f), "f32->bf16 %08x: numerics %04x c10 %04x", src[i], tb, c10Fp32ToBf16(f));
      CHECK(v16[i] == t16 && s16[i] == t16, "f32->f16 %08x: simd %04x scalar %04x truth %04x", src[i], v16[i], s16[i], t16);
      CHECK(vb[i] == tb && sb[i] == tb, "f32->bf16 %08x: simd %04x scalar %04x truth %04x", src[i], vb[i], sb[i], tb);
    }
    checked += kChunk;
    if (failures > 30) break;
  }
  std::printf("conversions: %" PRIu64 " f32 patterns and 2 x 65536 half patterns checked\n", checked);
}

// ---- 2. ops: SIMD vs scalar on random data with special values --------------------------------------
static bool momentsEqual(const wm::Moments& x, const wm::Moments& y) {
  return std::memcmp(&x.aa, &y.aa, sizeof(double)) == 0 && std::memcmp(&x.bb, &y.bb, sizeof(double)) == 0 &&
         std::memcmp(&x.ab, &y.ab, sizeof(double)) == 0 && std::memcmp(&x.dd, &y.dd, sizeof(double)) == 0 &&
         std::memcmp(&x.absA, &y.absA, sizeof(double)) == 0 && std::memcmp(&x.absB, &y.absB, sizeof(double)) == 0 &&
         std::memcmp(&x.absD, &y.absD, sizeof(double)) == 0 && std::memcmp(&x.maxAbsDiff, &y.maxAbsDiff, sizeof(double)) == 0 &&
         x.nonFinite == y.nonFinite;
}

static void testOps(uint64_t seed) {
  Rng r(seed);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  const size_t lengths[] = {0, 1, 7, 8, 9, 15, 16, 17, 33, 1000, 1023, 1024, 1025, 2100};
  const float weights[] = {0.0f, -0.0f, 0.2f, 0.45f, 0.49999997f, 0.5f, 0.8f, 1.0f, 1.3f, -0.2f, -0.5f, 0.3333333f};
  size_t cases = 0;
  // The first element of every buffer is skipped so that no path can rely on alignment.
  auto run = [&](auto&& body) {
    std::vector<unsigned char> outS, outV;
    body(outS, false);
    body(outV, true);
    ++cases;
    return outS == outV;
  };
  for (size_t n : lengths) {
    for (Dtype ta : all) {
      for (Dtype tb : all) {
        auto a = randomTensor(r, ta, n + 1), b = randomTensor(r, tb, n + 1);
        const void* pa = a.data() + wm::dtypeSize(ta);
        const void* pb = b.data() + wm::dtypeSize(tb);
        for (Dtype to : all) {
          const size_t outBytes = n * wm::dtypeSize(to) + 3;
          for (float w : weights) {
            bool ok = run([&](std::vector<unsigned char>& out, bool simd) {
              out.assign(outBytes, 0xA5);
              wm::setSimdEnabled(simd);
              wm::lerpExact(pa, ta, pb, tb, out.data() + 1, to, n, w);
              wm::setSimdEnabled(true);
              if (simd) digestBytes(out.data(), out.size());
            });
            CHECK(ok, "lerpExact %s,%s->%s n=%zu w=%g: SIMD != scalar", dtypeName(ta), dtypeName(tb), dtypeName(to), n, w);
            if (ta == tb) {
              ok = run([&](std::vector<unsigned char>& out, bool simd) {
                out.assign(outBytes, 0xA5);
                wm::setSimdEnabled(simd);
                wm::lerpMi(pa, pb, ta, out.data() + 1, to, n, w);
                wm::setSimdEnabled(true);
                if (simd) digestBytes(out.data(), out.size());
              });
              CHECK(ok, "lerpMi %s->%s n=%zu w=%g: SIMD != scalar", dtypeName(ta), dtypeName(to), n, w);
            }
            // linear over (a, b, a): three sources with mixed dtypes and weights (w, 1 - w, 0.25).
            const void* srcs[3] = {pa, pb, pa};
            const Dtype types[3] = {ta, tb, ta};
            const float lw[3] = {w, num::subRn(1.0f, w), 0.25f};
            for (size_t count = 0; count <= 3; ++count) {
              ok = run([&](std::vector<unsigned char>& out, bool simd) {
                out.assign(outBytes, 0xA5);
                wm::setSimdEnabled(simd);
                wm::linear(srcs, types, lw, count, out.data() + 1, to, n);
                wm::setSimdEnabled(true);
                if (simd) digestBytes(out.data(), out.size());
              });
              CHECK(ok, "linear x%zu %s,%s->%s n=%zu w=%g: SIMD != scalar", count, dtypeName(ta), dtypeName(tb),
                    dtypeName(to), n, w);
            }
          }
          bool ok = run([&](std::vector<unsigned char>& out, bool simd) {
            out.assign(outBytes, 0xA5);
            wm::setSimdEnabled(simd);
            wm::convert(pa, ta, out.data() + 1, to, n);
            wm::setSimdEnabled(true);
            if (simd) digestBytes(out.data(), out.size());
          });
          CHECK(ok, "convert %s->%s n=%zu: SIMD != scalar", dtypeName(ta), dtypeName(to), n);
        }
        wm::Moments start;  // accumulates onto what is there
        start.aa = 1.5;
        start.absA = 0.25;
        start.absB = 0.75;
        start.absD = 0.125;
        wm::Moments ms = start;
        wm::setSimdEnabled(false);
        wm::accumulateMoments(pa, ta, pb, tb, n, ms);
        wm::setSimdEnabled(true);
        for (bool wide : {false, true}) {
          wm::Moments mv = start;
          withAvx512(wide, [&] { wm::accumulateMoments(pa, ta, pb, tb, n, mv); });
          if (wide) digestBytes(&mv, sizeof mv);
          ++cases;
          CHECK(momentsEqual(ms, mv),
                "moments %s,%s n=%zu, AVX-512 %s: SIMD (%a %a %a %a %a %a %a %a %" PRIu64 ") != scalar (%a %a %a %a %a %a %a %a %" PRIu64 ")",
                dtypeName(ta), dtypeName(tb), n, wide ? "on" : "off", mv.aa, mv.bb, mv.ab, mv.dd, mv.absA, mv.absB, mv.absD, mv.maxAbsDiff,
                mv.nonFinite, ms.aa, ms.bb, ms.ab, ms.dd, ms.absA, ms.absB, ms.absD, ms.maxAbsDiff, ms.nonFinite);
        }
      }
    }
  }
  std::printf("ops: %zu cases, SIMD path %s\n", cases, wm::simdPathName());
}

// ---- 3. the sparse methods: merge, |d| bits and rank cuts, SIMD vs scalar and a sort --------------------
static uint64_t keyOf(Rng& r, const std::vector<unsigned char>& base, const std::vector<unsigned char>& x, Dtype t, uint64_t count) {
  if (count == 0) return 0;
  const uint64_t i = r.next() % count;
  uint32_t a = 0;
  wm::absDeltaBits(base.data() + i * wm::dtypeSize(t), t, x.data() + i * wm::dtypeSize(t), t, 1, &a);
  return wm::sparseRankKey(a, wm::sparseIndexBits(count), count, i);
}

static void testSparse(uint64_t seed) {
  Rng r(seed ^ 0x5A5A);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  const size_t lengths[] = {0, 1, 3, 4, 5, 7, 8, 13, 17, 1000, 1025, 2100};  // 13: 8 lanes, then 4, then 1
  size_t cases = 0;
  for (size_t n : lengths) {
    for (Dtype t : all) {
      const uint64_t start = r.next() % 9, count = start + n + r.next() % 5;
      std::vector<std::vector<unsigned char>> src;
      constexpr int kSources = 6;  // the base and up to five models
      for (int s = 0; s < kSources; ++s) src.push_back(randomTensor(r, t, count));
      // Every other length, half the elements have base 1 and every model 1.5: runs of equal |d|, whose rank keys differ by
      // their index alone (a cut between neighbours of equal |d| catches a key's index part off by one).
      if (n % 2 == 1) {
        const size_t es = wm::dtypeSize(t);
        const auto put = [&](std::vector<unsigned char>& v, uint64_t i, float value) {
          const uint32_t f = num::f32Bits(value);
          const uint16_t h = t == Dtype::BF16 ? num::f32ToBF16(value) : num::f32ToF16(value);
          std::memcpy(v.data() + i * es, es == 4 ? static_cast<const void*>(&f) : static_cast<const void*>(&h), es);
        };
        for (uint64_t i = 0; i < count; ++i) {
          if (r.next() % 2 != 0) continue;
          put(src[0], i, 1.0f);
          for (int s = 1; s < kSources; ++s) put(src[s], i, 1.5f);
        }
      }
      // |d| bits, both paths (the base second as in the merge: d = x - base).
      std::vector<uint32_t> bs(count), bv(count);
      wm::setSimdEnabled(false);
      wm::absDeltaBits(src[0].data(), t, src[1].data(), t, count, bs.data());
      wm::setSimdEnabled(true);
      wm::absDeltaBits(src[0].data(), t, src[1].data(), t, count, bv.data());
      CHECK(bs == bv, "absDeltaBits %s n=%zu: SIMD != scalar", dtypeName(t), (size_t)count);
#if defined(WM_HAVE_AVX2_BACKEND)
      {
        withAvx512(false, [&] { wm::absDeltaBits(src[0].data(), t, src[1].data(), t, count, bv.data()); });
        CHECK(bs == bv, "absDeltaBits %s n=%zu: SIMD without AVX-512 != scalar", dtypeName(t), (size_t)count);
      }
#endif
      // Rank cuts keep exactly `rank` elements, the largest keys.
      std::vector<uint64_t> keys(count);
      for (uint64_t i = 0; i < count; ++i) keys[i] = wm::sparseRankKey(bs[i], wm::sparseIndexBits(count), count, i);
      std::vector<uint64_t> sorted = keys;
      std::sort(sorted.begin(), sorted.end(), [](uint64_t a, uint64_t b) { return a > b; });
      for (uint64_t rank : {uint64_t{0}, uint64_t{1}, count / 3, count / 2, count > 0 ? count - 1 : 0, count, count + 4}) {
        const uint64_t cut = wm::rankCut(src[0].data(), t, src[1].data(), t, count, rank);
        const uint64_t kept = (uint64_t)std::count_if(keys.begin(), keys.end(), [&](uint64_t k) { return k >= cut; });
        CHECK(kept == std::min(rank, count), "rankCut %s count=%zu rank=%zu keeps %zu", dtypeName(t), (size_t)count, (size_t)rank, (size_t)kept);
        if (rank > 0 && rank <= count) CHECK(cut <= sorted[rank - 1], "rankCut %s: cut above the rank-th key", dtypeName(t));
        ++cases;
      }
      // Several cuts in one go equal the single ones.
      const uint64_t ranks[3] = {count / 5, count / 2, count > 0 ? count - 1 : 0};
      uint64_t many[3];
      wm::rankCuts(src[0].data(), t, src[1].data(), t, count, ranks, 3, many);
      for (int q = 0; q < 3; ++q) {
        CHECK(many[q] == wm::rankCut(src[0].data(), t, src[1].data(), t, count, ranks[q]), "rankCuts %s count=%zu rank=%zu", dtypeName(t),
              (size_t)count, (size_t)ranks[q]);
      }
      // Keep masks (cuts and DARE's Bernoulli mask), both paths; L1 sums from memory against the streaming buckets.
      // Density 1: a window between two cuts; 0.5: a low cut alone (as TIES's top-k) with the mask; else the mask alone (DARE's).
      for (double density : {1.0, 0.4, 1e-3, 0.5}) {
        wm::SparseModel m;
        const uint64_t k1 = keyOf(r, src[0], src[1], t, count), k2 = keyOf(r, src[0], src[1], t, count);
        m.lowKey = density == 1.0 || density == 0.5 ? std::min(k1, k2) : 0;
        m.highKey = density == 1.0 ? std::max(k1, k2) : wm::kRankKeyNone;
        m.density = density;
        m.seedKey = r.next();
        std::vector<uint8_t> ks(n), kv(n);
        wm::setSimdEnabled(false);
        wm::sparseKeep(bs.data() + start, m, wm::sparseIndexBits(count), count, start, n, ks.data());
        wm::setSimdEnabled(true);
        wm::sparseKeep(bs.data() + start, m, wm::sparseIndexBits(count), count, start, n, kv.data());
        CHECK(ks == kv, "sparseKeep %s n=%zu density %g: SIMD != scalar", dtypeName(t), n, density);
#if defined(WM_HAVE_AVX2_BACKEND)
        // The mask hash with and without VPMULLQ (the CPU may lack it: then both runs take AVX2's multiply).
        withAvx512(false, [&] { wm::sparseKeep(bs.data() + start, m, wm::sparseIndexBits(count), count, start, n, kv.data()); });
        CHECK(ks == kv, "sparseKeep %s n=%zu density %g: SIMD without VPMULLQ != scalar", dtypeName(t), n, density);
#endif
        std::vector<uint64_t> buckets(2 * wm::kL1Buckets, 0);
        wm::l1Buckets(src[0].data(), t, src[1].data(), t, m, wm::sparseIndexBits(count), count, 0, count, buckets.data(),
                      buckets.data() + wm::kL1Buckets);
        // The keep bits l1Sums leaves are the scalar keep rule, element by element.
        std::vector<uint8_t> all(count);
        wm::setSimdEnabled(false);
        wm::sparseKeep(bs.data(), m, wm::sparseIndexBits(count), count, 0, count, all.data());
        wm::setSimdEnabled(true);
        // Every path of l1Slots: scalar, AVX2 (and its keep rule without VPMULLQ), AVX-512.
        onEachPath([&](int path) {
          std::vector<uint8_t> bits(wm::keepBitsBytes(count), 0xA5);
          const wm::L1Sums sums = wm::l1Sums(src[0].data(), t, src[1].data(), t, m, count, bits.data());
          CHECK(sums.before == wm::l1Total(buckets.data()) && sums.after == wm::l1Total(buckets.data() + wm::kL1Buckets),
                "l1Sums path %d %s count=%zu: %a %a, streaming %a %a", path, dtypeName(t), (size_t)count, sums.before, sums.after,
                wm::l1Total(buckets.data()), wm::l1Total(buckets.data() + wm::kL1Buckets));
          size_t wrong = 0;
          for (uint64_t i = 0; i < count; ++i) wrong += wm::keptBit(bits.data(), i) != (all[i] != 0);
          CHECK(wrong == 0, "l1Sums path %d keep bits %s count=%zu density %g: %zu differ from sparseKeep", path, dtypeName(t), (size_t)count, density,
                wrong);
        });
        cases += 3;
      }
      for (Dtype to : all) {
        // Variants 0-5: three models; 6-11: one (its own AVX2 path under a consensus); 12-17: two, four and five (four and
        // five: the loops' model count read at run time); 18-21: one with a scale and a lambda whose product with a dropped
        // element's zero is -0 or NaN (the packed keep-bits loop's base + z).
        for (int variant = 0; variant < 22; ++variant) {
          wm::SparseParams p;
          p.consensus = static_cast<wm::Consensus>(variant % 3);
          p.normalize = variant % 2 == 0;
          const double oddLambdas[] = {-0.75, INFINITY, 2.5, -INFINITY};
          p.lambda = variant < 3 ? 1.0 : variant < 18 ? 0.8 : oddLambdas[variant - 18];
          p.indexBits = wm::sparseIndexBits(count);
          p.baseSource = 0;
          const double weights[] = {0.7, -0.5, 1.3, 0.0, 1e-9};
          const uint32_t modelCounts[] = {2, 4, 5};
          const uint32_t models = variant < 6 ? 3 : (variant < 12 || variant >= 18 ? 1 : modelCounts[variant % 3]);
          for (uint32_t k = 1; k <= models; ++k) {
            wm::SparseModel m;
            m.source = k;
            m.weight = weights[(k + variant) % 5];
            const uint64_t a = keyOf(r, src[0], src[k], t, count), b = keyOf(r, src[0], src[k], t, count);
            m.lowKey = (k + variant) % 3 == 0 ? 0 : std::min(a, b);
            m.highKey = (k + variant) % 2 == 0 ? wm::kRankKeyNone : (k % 2 ? ~uint64_t{0} : std::max(a, b) + 1);
            const double densities[] = {1, 0.4, 0.7, 0, 1e-3};
            m.density = densities[(k * 2 + variant) % 5];
            m.seedKey = r.next();
            m.scale = k == 2 ? 1.3f : variant >= 18 ? 0.37f : 1.0f;
            p.models.push_back(m);
          }
          const void* srcs[kSources];
          Dtype types[kSources];
          for (int k = 0; k < kSources; ++k) {
            srcs[k] = src[k].data() + start * wm::dtypeSize(t);
            types[k] = t;
          }
          // Mixed dtypes: the scalar path in both.
          const Dtype other = t == Dtype::F32 ? Dtype::BF16 : Dtype::F32;
          const std::vector<unsigned char> mixed = randomTensor(r, other, count);
          if (variant == 5) {
            types[3] = other;
            srcs[3] = mixed.data() + start * wm::dtypeSize(other);
          }
          std::vector<unsigned char> outS(n * wm::dtypeSize(to) + 3, 0xA5), outV = outS;
          wm::setSimdEnabled(false);
          wm::sparseMerge(srcs, types, p, count, start, n, outS.data() + 1, to);
          wm::setSimdEnabled(true);
          wm::sparseMerge(srcs, types, p, count, start, n, outV.data() + 1, to);
          digestBytes(outV.data(), outV.size());
          ++cases;
          CHECK(outS == outV, "sparseMerge %s->%s n=%zu start=%zu variant %d: SIMD != scalar", dtypeName(t), dtypeName(to), n, (size_t)start, variant);
#if defined(WM_HAVE_AVX2_BACKEND)
          // The 4-lane AVX2 loop alone (the CPU may lack AVX-512: then both runs took it).
          std::vector<unsigned char> out4(outS.size(), 0xA5);
          withAvx512(false, [&] { wm::sparseMerge(srcs, types, p, count, start, n, out4.data() + 1, to); });
          CHECK(out4 == outS, "sparseMerge %s->%s n=%zu start=%zu variant %d: SIMD without AVX-512 != scalar", dtypeName(t), dtypeName(to), n,
                (size_t)start, variant);
          ++cases;
#endif
          // The same merge reading each model's keep rule from bits (a tensor-local job's DARE maps), both paths.
          std::vector<std::vector<uint8_t>> maps(p.models.size());
          for (size_t k = 0; k < p.models.size(); ++k) {
            wm::SparseModel& m = p.models[k];
            std::vector<uint32_t> a(count);
            std::vector<uint8_t> keep(count);
            wm::setSimdEnabled(false);
            const void* whole = variant == 5 && m.source == 3 ? mixed.data() : src[m.source].data();  // element 0 of the model's tensor
            wm::absDeltaBits(src[0].data(), t, whole, types[m.source], count, a.data());
            wm::sparseKeep(a.data(), m, p.indexBits, count, 0, count, keep.data());
            maps[k].assign(wm::keepBitsBytes(count), 0);
            for (uint64_t i = 0; i < count; ++i) maps[k][i / 8] |= static_cast<uint8_t>(keep[i] << (i % 8));
            m.keepBits = maps[k].data();
          }
          std::vector<unsigned char> bitsS(outS.size(), 0xA5), bitsV = bitsS;
          wm::setSimdEnabled(false);
          wm::sparseMerge(srcs, types, p, count, start, n, bitsS.data() + 1, to);
          wm::setSimdEnabled(true);
          wm::sparseMerge(srcs, types, p, count, start, n, bitsV.data() + 1, to);
          CHECK(bitsS == outS && bitsV == outS, "sparseMerge %s->%s n=%zu start=%zu variant %d: with keep bits != without (scalar %d, SIMD %d)",
                dtypeName(t), dtypeName(to), n, (size_t)start, variant, bitsS == outS, bitsV == outS);
          cases += 2;
#if defined(WM_HAVE_AVX2_BACKEND)
          std::vector<unsigned char> bits4(outS.size(), 0xA5);
          withAvx512(false, [&] { wm::sparseMerge(srcs, types, p, count, start, n, bits4.data() + 1, to); });
          CHECK(bits4 == outS, "sparseMerge %s->%s n=%zu start=%zu variant %d: with keep bits, SIMD without AVX-512 != scalar", dtypeName(t),
                dtypeName(to), n, (size_t)start, variant);
          ++cases;
#endif
        }
      }
    }
  }
  std::printf("sparse: %zu cases\n", cases);
}

// The one-pass windowed rank cuts equal the histogram passes' wherever they answer, and answer on smooth data and on ties.
static void testRankWindow(uint64_t seed) {
  Rng r(seed ^ 0xC0FFEE);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  size_t cases = 0, answered = 0;
  for (uint64_t count : {uint64_t{1}, uint64_t{2}, uint64_t{7}, uint64_t{300}, uint64_t{4099}, uint64_t{70001}, uint64_t{300007}}) {
    for (Dtype t : all) {
      for (int kind = 0; kind < 3; ++kind) {  // 0: salted with special values, 1: smooth weights, 2: few distinct |d| (ties)
        std::vector<unsigned char> base = randomTensor(r, t, count), x = randomTensor(r, t, count);
        if (kind > 0) {
          std::normal_distribution<float> normal(0.0f, 0.02f);
          for (uint64_t i = 0; i < count; ++i) {
            const float b = normal(r.g), d = kind == 1 ? normal(r.g) * 0.05f : 0.001f * static_cast<float>(r.next() % 3);
            const uint32_t bb = num::f32Bits(b), xb = num::f32Bits(b + d);
            const uint16_t b16 = t == Dtype::BF16 ? num::f32ToBF16(b) : num::f32ToF16(b), x16 = t == Dtype::BF16 ? num::f32ToBF16(b + d) : num::f32ToF16(b + d);
            if (t == Dtype::F32) {
              std::memcpy(base.data() + 4 * i, &bb, 4);
              std::memcpy(x.data() + 4 * i, &xb, 4);
            } else {
              std::memcpy(base.data() + 2 * i, &b16, 2);
              std::memcpy(x.data() + 2 * i, &x16, 2);
            }
          }
        }
        const uint64_t ranks[] = {1, count / 100, count / 3, count / 2, count - count / 10, count > 1 ? count - 1 : 1, 1 + r.next() % count};
        for (size_t q = 0; q + 1 < sizeof ranks / sizeof ranks[0]; ++q) {
          uint64_t fast[2] = {7, 7}, slow[2];  // two at once, as breadcrumbs asks
          wm::rankCutsByHistogram(base.data(), t, x.data(), t, count, ranks + q, 2, slow);
          if (wm::rankCutsWindowed(base.data(), t, x.data(), t, count, ranks + q, 2, fast)) {
            ++answered;
            CHECK(fast[0] == slow[0] && fast[1] == slow[1], "rankCutsWindowed %s count=%zu kind %d ranks %zu %zu: %016" PRIx64 " %016" PRIx64
                  ", histogram %016" PRIx64 " %016" PRIx64, dtypeName(t), (size_t)count, kind, (size_t)ranks[q], (size_t)ranks[q + 1], fast[0], fast[1], slow[0], slow[1]);
          } else {
            // Smooth data fits the window's keys; ties overflow them and are counted per |d| value instead.
            CHECK(!(kind > 0 && count > 4099), "rankCutsWindowed %s count=%zu kind %d ranks %zu %zu: no answer", dtypeName(t), (size_t)count, kind,
                  (size_t)ranks[q], (size_t)ranks[q + 1]);
          }
          // The same passes fed in uneven chunks, as a tensor-local job read in chunks feeds them (local_job.cc).
          uint64_t chunked[2] = {7, 7};
          std::vector<uint64_t> counters;
          wm::HistogramCuts passes(count, ranks + q, 2, chunked, counters);
          for (int pass = 0; !passes.done(); ++pass) {
            CHECK(pass < 3, "HistogramCuts %s count=%zu: more than three passes", dtypeName(t), (size_t)count);
            const size_t es = dtypeSize(t);
            for (uint64_t at = 0, n = 0; at < count; at += n) {
              n = std::min<uint64_t>(count - at, 1 + r.next() % 9000);
              passes.add(base.data() + at * es, t, x.data() + at * es, t, at, n);
            }
            passes.endPass();
          }
          CHECK(chunked[0] == slow[0] && chunked[1] == slow[1], "HistogramCuts in chunks %s count=%zu: differs from the histogram passes", dtypeName(t),
                (size_t)count);
          uint64_t chosen[2];
          wm::rankCuts(base.data(), t, x.data(), t, count, ranks + q, 2, chosen);
          CHECK(chosen[0] == slow[0] && chosen[1] == slow[1], "rankCuts %s count=%zu: differs from the histogram passes", dtypeName(t), (size_t)count);
          ++cases;
        }
      }
    }
  }
  CHECK(answered * 2 > cases, "rankCutsWindowed answered only %zu of %zu cases", answered, cases);
  // The window pass itself, SIMD against scalar: the same keys in the same order, the same count above.
  for (size_t n : {0, 1, 3, 4, 5, 9, 13, 17, 64, 1001}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<uint32_t> a(n);
      const uint32_t pick[] = {0, 1, 0x7F800000u, 0x7FC00000u, 0x7FFFFFFFu, 0x3F800000u, 0x3F800001u};
      for (uint32_t& v : a) v = r.next() % 3 == 0 ? pick[r.next() % 7] : static_cast<uint32_t>(r.next() & 0x7FFFFFFFu);
      uint32_t lo = n > 0 ? a[r.next() % n] : 0, hi = n > 0 ? a[r.next() % n] : 0;
      if (lo > hi) std::swap(lo, hi);
      if (trial == 0) lo = 0, hi = 0xFFFFFFFFu;
      const uint64_t start = r.next() % 1000, count = start + n + r.next() % 50;
      std::vector<uint64_t> ks(n + 4), kv(n + 4);
      uint64_t as = 3, av = 3;
      wm::setSimdEnabled(false);
      const size_t ms = wm::windowKeys(a.data(), n, lo, hi, wm::sparseIndexBits(count), count, start, ks.data(), &as);
      wm::setSimdEnabled(true);
      const size_t mv = wm::windowKeys(a.data(), n, lo, hi, wm::sparseIndexBits(count), count, start, kv.data(), &av);
      size_t inside = 0, over = 3;
      for (uint32_t v : a) inside += v >= lo && v <= hi, over += v > hi;
      CHECK(ms == inside && as == over, "windowKeys scalar n=%zu: %zu inside, %zu above; expected %zu, %zu", n, ms, (size_t)as, inside, over);
      CHECK(mv == ms && av == as && std::equal(ks.begin(), ks.begin() + ms, kv.begin()), "windowKeys n=%zu: SIMD != scalar", n);
#if defined(WM_HAVE_AVX2_BACKEND)
      uint64_t a4 = 3;
      size_t m4 = 0;
      withAvx512(false, [&] { m4 = wm::windowKeys(a.data(), n, lo, hi, wm::sparseIndexBits(count), count, start, kv.data(), &a4); });
      CHECK(m4 == ms && a4 == as && std::equal(ks.begin(), ks.begin() + ms, kv.begin()), "windowKeys n=%zu: SIMD without AVX-512 != scalar", n);
#endif
      ++cases;
    }
  }
  std::printf("rank windows: %zu cases, %zu answered in one pass\n", cases, answered);
}

// ---- known answers, worked by hand ------------------------------------------------------------------
static void testKnownAnswers() {
  // bf16 1.0 (0x3F80) and 1.0078125 (0x3F81) at w = 0.5: exact midpoint 1.00390625 ties to even 0x3F80.
  uint16_t a = 0x3F80, b = 0x3F81, o = 0;
  wm::lerpExact(&a, Dtype::BF16, &b, Dtype::BF16, &o, Dtype::BF16, 1, 0.5f);
  CHECK(o == 0x3F80, "tie to even: got %04x", o);
  // λ = 0 and 1 copy the inputs bit for bit, even -0 and NaN payloads.
  uint16_t na[2] = {0x8000, 0x7FA5}, nb[2] = {0x3F80, 0x3F80}, no[2] = {0, 0};
  wm::lerpExact(na, Dtype::BF16, nb, Dtype::BF16, no, Dtype::BF16, 2, 0.0f);
  CHECK(no[0] == 0x8000 && no[1] == 0x7FA5, "λ=0 copy: got %04x %04x", no[0], no[1]);
  // Inf - Inf inside the formula is NaN; the output NaN is canonical.
  uint32_t ia = 0x7F800000, ib = 0x7F800000, io = 0;
  wm::lerpExact(&ia, Dtype::F32, &ib, Dtype::F32, &io, Dtype::F32, 1, 0.3f);
  CHECK(io == 0x7FC00000, "inf-inf: got %08x", io);
  // mi in bf16: a = 1, b = 1.0078125 (d = 2^-7), w = 0.3: p = R(0.3 * 2^-7) = 0x3B1A (0.00234985...),
  // a + p = 1.00234985 rounds to 1.0 (half ulp is 0.00390625): the script returns a.
  uint16_t mo = 0;
  wm::lerpMi(&a, &b, Dtype::BF16, &mo, Dtype::BF16, 1, 0.3f);
  CHECK(mo == 0x3F80, "mi bf16: got %04x", mo);
  // linear keeps -0 for a single source with weight 1.
  uint32_t z = 0x80000000, zo = 0;
  const void* zs[1] = {&z};
  const Dtype zt[1] = {Dtype::F32};
  const float zw[1] = {1.0f};
  wm::linear(zs, zt, zw, 1, &zo, Dtype::F32, 1);
  CHECK(zo == 0x80000000, "linear -0: got %08x", zo);
}

int main(int argc, char** argv) {
  uint64_t seed = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 12345;
  std::printf("seed %" PRIu64 "\n", seed);
  testKnownAnswers();
  testOps(seed);
  testSparse(seed);
  testRankWindow(seed);
  testRam(seed);
  testNearswap(seed);
  testSce(seed);
  testDella(seed);
  testDellaMixedRows(seed);
  testArcee(seed);
  testArceeKl(seed);
  testKeySelection(seed);
  testExactExpLog(seed);
  testHugePageBuffers(seed);
  testBlockQueue(seed);
  testOutputFlush(seed);
  testReadHint(seed);
  testStoreResult(seed);
  if (!(argc > 2 && std::string(argv[2]) == "--quick")) testConversionsExhaustive();
  std::printf("digest %016" PRIx64 "\n", digest);
  if (failures) {
    std::printf("%d FAILURES\n", failures);
    return 1;
  }
  std::printf("all passed\n");
  return 0;
}
