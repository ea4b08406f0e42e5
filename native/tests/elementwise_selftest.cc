// The self-test of the per-element merges (kernels/elementwise.h): RAM and nearswap, SIMD == scalar bit
// for bit on random inputs salted with special values (run by kernels_selftest.cc's main).
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/cpu_backends.h"
#include "kernels/elementwise.h"
#include "kernels/kernels.h"
#include "tests/selftest_support.h"

// `run` (which writes `bytes` bytes of output) three ways: the scalar truth, AVX2 alone, and with AVX-512 where the CPU has
// it (8 lanes, then 4, then scalar). The SIMD outputs go into the digest.
template <typename F>
std::array<std::vector<unsigned char>, 3> threeWays(size_t bytes, F run) {
  std::array<std::vector<unsigned char>, 3> out;
  for (auto& o : out) o.assign(bytes, 0xA5);
  wm::setSimdEnabled(false);
  run(out[0].data());
  wm::setSimdEnabled(true);
  withAvx512(false, [&] { run(out[1].data()); });
  run(out[2].data());
  digestBytes(out[1].data(), out[1].size());
  digestBytes(out[2].data(), out[2].size());
  return out;
}

// RAM's merge and counts (elementwise.h): SIMD == scalar on salted random inputs, 1-9 models (above kMaxRamModels = 8: the
// scalar path), every dtype pair.
void testRam(uint64_t seed) {
  Rng r(seed ^ 0xBEEF);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  size_t cases = 0;
  for (size_t n : {0, 1, 3, 4, 7, 8, 9, 13, 17, 1000, 1004, 1027}) {
    for (Dtype t : all) {
      std::vector<std::vector<unsigned char>> src;
      constexpr int kSources = 10;  // the base and up to nine models
      for (int s = 0; s < kSources; ++s) src.push_back(randomTensor(r, t, n));
      const std::vector<unsigned char> mixed = randomTensor(r, t == Dtype::F32 ? Dtype::BF16 : Dtype::F32, n);
      // Models equal to the base at 3 in 4 elements: steps where no lane is shared (the SIMD path skips the
      // division there), steps with some shared lanes, and steps with all.
      std::vector<std::vector<unsigned char>> nearBase(kSources, src[0]);
      for (int s = 1; s < kSources; ++s) {
        for (size_t i = 0; i < n; ++i) {
          if (r.next() % 4 == 0) std::memcpy(nearBase[s].data() + i * wm::dtypeSize(t), src[s].data() + i * wm::dtypeSize(t), wm::dtypeSize(t));
        }
      }
      for (int variant = 0; variant < 21; ++variant) {
        wm::RamParams p;
        p.base = 0;
        const float eps[] = {0.0f, 0.01f, 1e-3f};
        // Variants 15-20 (one model, the AVX2 path's own loop): the epsilons the others give one model no other way, a negative
        // one (every lane kept) included, and lambdas of 0 and below.
        const float oneModelEps[] = {0.01f, 1e-3f, -1.0f};
        const double oneModelLambda[] = {0.0, -0.7, 2.5};
        p.epsilon = variant < 15 ? eps[variant % 3] : oneModelEps[variant % 3];
        // Variants 0-8: 1-3 models; 9-14: 4-9 models (odd ones near the base); 15-20: one model (odd ones near the base).
        const uint32_t models = variant < 9 ? 1 + static_cast<uint32_t>(variant) % 3 : variant < 15 ? static_cast<uint32_t>(variant) - 5 : 1;
        for (uint32_t k = 1; k <= models; ++k) {
          p.sources.push_back(k);
          p.lambda.push_back(variant >= 15 ? oneModelLambda[(variant / 2) % 3] : variant < 3 ? 1.0 : 1.0 + 0.37 * k);
        }
        const auto& from = (variant >= 6 && variant < 9) || (variant >= 9 && variant % 2 == 1) ? nearBase : src;
        const void* srcs[kSources];
        Dtype types[kSources];
        for (int s = 0; s < kSources; ++s) {
          srcs[s] = s == 0 ? src[0].data() : from[s].data();
          types[s] = t;
        }
        if (variant == 5) {  // a source of another dtype: the scalar path in both
          types[3] = t == Dtype::F32 ? Dtype::BF16 : Dtype::F32;
          srcs[3] = mixed.data();
        }
        for (Dtype to : all) {
          const auto o = threeWays(n * wm::dtypeSize(to) + 3, [&](unsigned char* out) { wm::ramMerge(srcs, types, p, n, out + 1, to); });
          CHECK(o[0] == o[1], "ramMerge %s->%s n=%zu variant %d: AVX2 != scalar", dtypeName(t), dtypeName(to), n, variant);
          CHECK(o[0] == o[2], "ramMerge %s->%s n=%zu variant %d: AVX-512 != scalar", dtypeName(t), dtypeName(to), n, variant);
          ++cases;
        }
        std::vector<uint64_t> cs(2 * p.sources.size(), 5), cv = cs;
        wm::setSimdEnabled(false);
        wm::ramCounts(srcs, types, p, n, cs.data(), cs.data() + p.sources.size());
        wm::setSimdEnabled(true);
        wm::ramCounts(srcs, types, p, n, cv.data(), cv.data() + p.sources.size());
        CHECK(cs == cv, "ramCounts %s n=%zu variant %d: SIMD != scalar", dtypeName(t), n, variant);
        ++cases;
      }
    }
  }
  std::printf("ram: %zu cases\n", cases);
}

// nearswap's merge (elementwise.h): SIMD == scalar on salted random inputs, every dtype pair, t small,
// zero, negative and large (w clamped at both ends), and a source of another dtype (the scalar path in both).
void testNearswap(uint64_t seed) {
  Rng r(seed ^ 0x5EA);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  size_t cases = 0;
  for (size_t n : {0, 1, 3, 4, 7, 8, 9, 13, 17, 1000, 1004, 1027}) {
    for (Dtype t : all) {
      const std::vector<unsigned char> a = randomTensor(r, t, n), b = randomTensor(r, t, n);
      const Dtype other = t == Dtype::F32 ? Dtype::BF16 : Dtype::F32;
      const std::vector<unsigned char> mixed = randomTensor(r, other, n);
      for (double tv : {0.01, 0.0, -0.5, 1e-9, 3.0, 1e300}) {
        for (int variant = 0; variant < 3; ++variant) {
          // 0: base 0, model 1; 1: the sources swapped; 2: the model of another dtype.
          const void* srcs[3] = {a.data(), b.data(), mixed.data()};
          const Dtype types[3] = {t, t, other};
          wm::NearswapParams p;
          p.base = variant == 1 ? 1 : 0;
          p.model = variant == 0 ? 1 : (variant == 1 ? 0 : 2);
          p.t = tv;
          for (Dtype to : all) {
            const auto o = threeWays(n * wm::dtypeSize(to) + 3, [&](unsigned char* out) { wm::nearswapMerge(srcs, types, p, n, out + 1, to); });
            CHECK(o[0] == o[1], "nearswapMerge %s->%s n=%zu t=%g variant %d: AVX2 != scalar", dtypeName(t), dtypeName(to), n, tv, variant);
            CHECK(o[0] == o[2], "nearswapMerge %s->%s n=%zu t=%g variant %d: AVX-512 != scalar", dtypeName(t), dtypeName(to), n, tv, variant);
            ++cases;
          }
        }
      }
    }
  }
  std::printf("nearswap: %zu cases\n", cases);
}
