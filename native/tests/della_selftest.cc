// The self-test of DELLA's keep rule (kernels/della.h): the counting ranks (della_rank.h) against the definition
// (a sort by key, then descending position) on rows with heavy ties and special values, dellaKeep against
// bernoulliKeep at the defined rank's probability, the fused by-bucket draws and L1 sums of
// uniform rows through dellaKeep and dellaL1Buckets, and the AVX2 uniform draws, keys (dellaKeys) and split draws
// (dellaDrawSplit) against the scalar ones bit for bit (run by kernels_selftest.cc's main).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <vector>

#include "kernels/cpu_backends.h"
#include "kernels/della.h"
#include "kernels/della_rank.h"
#include "kernels/element_io.h"
#include "kernels/kernels.h"
#include "kernels/sparsify.h"
#include "tests/della_definition.h"
#include "tests/selftest_support.h"

namespace {

// A key as della.h defines it: |d| bits, every NaN one value above Inf.
uint32_t canonicalKey(uint32_t bits) {
  const uint32_t a = bits & 0x7FFFFFFFu;
  return a > 0x7F800000u ? 0x7FC00000u : a;
}

// Values drawn from a palette of `distinct` salted random values (0: every value fresh), so that rows tie heavily.
std::vector<unsigned char> paletteTensor(Rng& r, Dtype t, size_t n, size_t distinct) {
  if (distinct == 0) return randomTensor(r, t, n);
  const std::vector<unsigned char> palette = randomTensor(r, t, distinct);
  const size_t es = wm::dtypeSize(t);
  std::vector<unsigned char> v(n * es + 1);
  for (size_t i = 0; i < n; ++i) std::memcpy(v.data() + i * es, palette.data() + (r.next() % distinct) * es, es);
  return v;
}

// testKeep's palette size for x a few units in the last place from the base (as a fine-tuned bf16 model is): rows
// whose bf16 |d| all have their low 16 bits zero (the ranker's uniform rows, della_rank.h's draw()), ties by the hundred.
// kMostlyEqual: x the base but for one element in 16 (|d| = 0 in big buckets of the uniform rows). kSomeFlips, kManyFlips:
// one element in 24, in 3, of the opposite sign (|d| about twice the base, often odd: low 16 bits not zero, as where a
// fine-tuned weight changed sign): the ranker's mixed rows, with few odd keys and with many.
constexpr size_t kNear = ~size_t{0}, kMostlyEqual = kNear - 1, kSomeFlips = kNear - 2, kManyFlips = kNear - 3;
std::vector<unsigned char> nearTensor(Rng& r, const std::vector<unsigned char>& base, Dtype tb, Dtype tx, size_t n, size_t kind) {
  if (tb != tx || wm::dtypeSize(tx) != 2) return paletteTensor(r, tx, n, 40);
  const uint64_t flipEvery = kind == kSomeFlips ? 24 : kind == kManyFlips ? 3 : 0;
  std::vector<unsigned char> x = base;
  for (size_t i = 0; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, x.data() + 2 * i, 2);
    const uint64_t k = r.next();
    v = static_cast<uint16_t>(kind == kMostlyEqual && k % 16 != 0 ? v : v + ((k >> 8) % 7) - 3);
    if (flipEvery != 0 && (k >> 16) % flipEvery == 0) v ^= 0x8000;  // the sign bit of bf16 and f16
    std::memcpy(x.data() + 2 * i, &v, 2);
  }
  return x;
}

void testRanks(Rng& r) {
  wm::DellaRowRanker ranker;
  size_t cases = 0;
  for (uint32_t L : {1u, 2u, 3u, 33u, 64u, 320u, 1000u}) {
    for (size_t stride : {size_t{1}, size_t{3}}) {
      for (int kind = 0; kind < 5; ++kind) {
        std::vector<uint32_t> keys(L * stride, 0xDEADBEEF), rank(L * stride, 0xFFFFFFFF), row(L);
        for (uint32_t t = 0; t < L; ++t) {
          const uint64_t x = r.next();
          uint32_t k;
          switch (kind) {
            case 0: k = canonicalKey(randomBits(r, Dtype::F32)); break;                       // salted f32 |d|, NaN, Inf, +-0, subnormals
            case 1: k = canonicalKey(randomBits(r, Dtype::BF16) << 16); break;                // bf16-exact: low 16 bits zero
            case 2: k = static_cast<uint32_t>(((x % 3) + 0x3F00) << 16 | ((x >> 8) % 4)); break;  // few buckets, each mixed: the stable sort
            case 3: k = static_cast<uint32_t>((0x3C00 + (x % 7)) << 16 | ((x >> 8) % 3 == 0 ? (x >> 16) & 0xFFFF : 0)); break;
            default: k = x % 4 == 0 ? 0x7FC00000u : x % 4 == 1 ? 0x7F800000u : x % 4 == 2 ? 0u : 1u; break;
          }
          keys[t * stride] = k;
          row[t] = k;
        }
        ranker.rank(keys.data(), stride, L, rank.data());
        const std::vector<uint32_t> want = definedRanks(row);
        bool ok = true;
        for (uint32_t t = 0; t < L; ++t) ok = ok && rank[t * stride] == want[t];
        CHECK(ok, "DellaRowRanker L=%u stride=%zu kind %d: ranks differ from the definition", L, stride, kind);
        digestBytes(rank.data(), rank.size() * 4);
        ++cases;
      }
    }
  }
  std::printf("della ranks: %zu cases\n", cases);
}

// The ranker's draw() on uniform rows against the definition (u < limit[defined rank]) and each bucket's kept count: one
// big bucket (all keys equal, zeros), a few, many, Inf and NaN keys; limits from della's p (epsilon 0, < 0, > density) and
// random monotone steps either way; draws at, beside and between the limits, so that many need their exact rank.
void testDraw(Rng& r) {
  wm::DellaRowRanker ranker;
  size_t cases = 0;
  const double dens[][2] = {{0.5, 0.1}, {0.5, 0.0}, {0.3, -0.2}, {0.05, 0.1}, {0.4, 0.6}, {0.7, -0.9}, {0.5, 0.5}};
  for (uint32_t L : {1u, 2u, 3u, 7u, 64u, 333u, 2560u}) {
    for (size_t S : {size_t{1}, size_t{3}}) {
      for (int kind = 0; kind < 5; ++kind) {
        for (size_t li = 0; li < std::size(dens) + 2; ++li) {
          std::vector<uint32_t> keys(L * S, 0xFFFFFFFFu), row(L);
          const uint32_t palette = kind == 0 ? 1 : kind == 1 ? 3 : kind == 2 ? 40 : kind == 3 ? 1000 : 4;
          for (uint32_t t = 0; t < L; ++t) {
            const uint64_t x = r.next();
            uint32_t h = kind == 0 ? 0 : kind == 4 ? (x % 4 == 0 ? 0x7FC0u : x % 4 == 1 ? 0x7F80u : x % 4 == 2 ? 0u : 0x3C00u)
                                                   : 0x3000u + static_cast<uint32_t>(x % palette) * 3;
            row[t] = h << 16;
            keys[t * S] = row[t];
          }
          // The limits: della's p at each rank, or random monotone steps (non-decreasing or non-increasing).
          std::vector<uint64_t> limit(L);
          if (li < std::size(dens)) {
            const double d = dens[li][0], e = dens[li][1];
            for (uint32_t k = 0; k < L; ++k) limit[k] = definedLimit(L == 1 ? d : (d - e) + ((static_cast<double>(k) / static_cast<double>(L - 1)) * 2) * e);
          } else {
            for (auto& v : limit) v = r.next() % 5 == 0 ? limit[0] : r.next() >> 11;
            std::sort(limit.begin(), limit.end());
            if (li == std::size(dens) + 1) std::reverse(limit.begin(), limit.end());
          }
          wm::DellaLimits lim;
          lim.limit = limit.data();
          lim.low = std::min(limit[0], limit[L - 1]);
          lim.high = std::max(limit[0], limit[L - 1]);
          std::vector<uint64_t> u(L * S, 0);
          for (uint32_t t = 0; t < L; ++t) {
            const uint64_t x = r.next(), at = limit[x % L];
            u[t * S] = x % 3 == 0 ? r.next() >> 11 : x % 3 == 1 ? at : at - (at > 0);
          }
          const std::vector<uint32_t> rank = definedRanks(row);
          std::vector<uint8_t> want(L * S, 9);
          for (uint32_t t = 0; t < L; ++t) want[t * S] = u[t * S] < limit[rank[t]];
          for (bool simd : {false, true}) {
            wm::setSimdEnabled(simd);
            std::vector<uint8_t> got(L * S, 9);
            ranker.count(keys.data(), S, L, u.data(), lim, got.data());
            CHECK(ranker.uniform() && ranker.drawing(), "DellaRowRanker draw L=%u: a uniform row not uniform", L);
            CHECK(ranker.draw(keys.data(), S, L, u.data(), lim, got.data()), "DellaRowRanker draw L=%u: a uniform row given back", L);
            CHECK(got == want, "DellaRowRanker draw L=%u S=%zu kind %d limits %zu simd %d: keep differs from the definition", L, S, kind, li, simd);
            // Each bucket's elements and kept ones, as the definition counts them.
            bool countsOk = ranker.first(ranker.buckets()) == L;
            for (uint32_t i = 0; i < ranker.buckets(); ++i) {
              uint32_t n = 0, kept = 0, below = 0;
              for (uint32_t t = 0; t < L; ++t) {
                n += row[t] == ranker.bucket(i) << 16;
                kept += row[t] == ranker.bucket(i) << 16 && want[t * S] != 0;
                below += row[t] < ranker.bucket(i) << 16;
              }
              countsOk = countsOk && ranker.first(i) == below && ranker.first(i + 1) - ranker.first(i) == n && ranker.kept(i) == kept;
            }
            CHECK(countsOk, "DellaRowRanker draw L=%u S=%zu kind %d limits %zu simd %d: bucket counts differ from the definition", L, S, kind, li, simd);
            digestBytes(got.data(), got.size());
            ++cases;
          }
        }
      }
    }
  }
  wm::setSimdEnabled(true);
  std::printf("della draws: %zu cases, SIMD == scalar == the definition\n", cases);
}

void testKeep(Rng& r) {
  size_t cases = 0, uniformRows = 0, mixedRows = 0;
  const Dtype pairs[][2] = {{Dtype::BF16, Dtype::BF16}, {Dtype::F32, Dtype::F32}, {Dtype::BF16, Dtype::F32}, {Dtype::F16, Dtype::F16}};
  const double dens[][2] = {{0.5, 0.1}, {0.9, 0.2}, {0.05, 0.1}, {0.5, 0.0}, {0.3, -0.2}, {0.0, 0.1}, {1.0, 0.1}, {0.4, 0.6}};
  for (uint64_t L : {1, 2, 7, 13, 64, 320, 333, 2560}) {  // 13, 333: the AVX-512 draws with a scalar tail
    for (uint64_t S : {1, 3}) {
      for (const auto& pair : pairs) {
        for (size_t distinct : {size_t{1}, size_t{4}, size_t{40}, size_t{0}, kNear, kMostlyEqual, kSomeFlips, kManyFlips}) {
          const uint64_t block = L * S, n = 3 * block, start = 2 * block;
          const bool near = distinct >= kManyFlips;
          const std::vector<unsigned char> base = paletteTensor(r, pair[0], n, near ? 40 : distinct);
          const std::vector<unsigned char> x = near ? nearTensor(r, base, pair[0], pair[1], n, distinct) : paletteTensor(r, pair[1], n, distinct);
          for (const auto& de : dens) {
            wm::DellaRows rows;
            rows.length = L;
            rows.stride = S;
            wm::DellaModel m;
            m.density = de[0];
            m.epsilon = de[1];
            m.seedKey = r.next();
            // The definition, element by element: rank within the row, its probability, bernoulliKeep.
            std::vector<uint8_t> want(n);
            std::vector<uint32_t> keyOf(n);
            for (uint64_t b0 = 0; b0 < n; b0 += block) {
              for (uint64_t s = 0; s < S; ++s) {
                std::vector<uint32_t> key(L);
                for (uint64_t t = 0; t < L; ++t) {
                  const uint64_t j = b0 + t * S + s;
                  const float d = wm::loadElementF32(x.data(), pair[1], j) - wm::loadElementF32(base.data(), pair[0], j);
                  uint32_t bits;
                  std::memcpy(&bits, &d, 4);
                  key[t] = canonicalKey(bits);
                  keyOf[j] = key[t];
                }
                const uint64_t odd = static_cast<uint64_t>(std::count_if(key.begin(), key.end(), [](uint32_t k) { return (k & 0xFFFFu) != 0; }));
                uniformRows += odd == 0 && L > 1;
                mixedRows += odd != 0 && S == 1 && de[0] > 0 && de[0] < 1;
                const std::vector<uint32_t> rank = definedRanks(key);
                for (uint64_t t = 0; t < L; ++t) {
                  const double p = L == 1 ? m.density : (m.density - m.epsilon) + ((static_cast<double>(rank[t]) / static_cast<double>(L - 1)) * 2) * m.epsilon;
                  // density >= 1 keeps every element and density <= 0 none (mergekit's early returns), whatever epsilon.
                  want[b0 + t * S + s] = m.density >= 1 || (m.density > 0 && wm::bernoulliKeep(m.seedKey, start + b0 + t * S + s, p));
                }
              }
            }
            for (bool simd : {false, true}) {
              wm::setSimdEnabled(simd);
              std::vector<uint8_t> got(n, 7);
              wm::dellaKeep(base.data(), pair[0], x.data(), pair[1], rows, m, start, n, got.data());
              CHECK(got == want, "dellaKeep %s-%s L=%llu S=%llu distinct %zu density %g epsilon %g simd %d: differs from the definition",
                    dtypeName(pair[0]), dtypeName(pair[1]), static_cast<unsigned long long>(L), static_cast<unsigned long long>(S), distinct,
                    de[0], de[1], simd);
              digestBytes(got.data(), got.size());
              // The L1 sums (every |d|, the kept ones) and the keep bits, as the della_l1 pass and a tensor-local job take them.
              std::vector<uint64_t> sums(2 * wm::kL1Buckets, 3), wantSums = sums;
              for (uint64_t j = 0; j < n; ++j) wm::addToL1Buckets(keyOf[j], want[j] != 0, wantSums.data(), wantSums.data() + wm::kL1Buckets);
              std::vector<uint8_t> bits(wm::keepBitsBytes(start + n), 0);
              wm::dellaL1Buckets(base.data(), pair[0], x.data(), pair[1], rows, m, start, n, sums.data(), sums.data() + wm::kL1Buckets, start % 8 == 0 ? bits.data() : nullptr);
              CHECK(sums == wantSums, "dellaL1Buckets %s-%s L=%llu S=%llu distinct %zu density %g epsilon %g simd %d: sums differ", dtypeName(pair[0]),
                    dtypeName(pair[1]), static_cast<unsigned long long>(L), static_cast<unsigned long long>(S), distinct, de[0], de[1], simd);
              bool bitsOk = true;
              for (uint64_t j = 0; j < n && start % 8 == 0; ++j) bitsOk = bitsOk && wm::keptBit(bits.data(), start + j) == (want[j] != 0);
              CHECK(bitsOk, "dellaL1Buckets L=%llu S=%llu: keep bits differ", static_cast<unsigned long long>(L), static_cast<unsigned long long>(S));
              ++cases;
            }
          }
        }
      }
    }
  }
  wm::setSimdEnabled(true);
  CHECK(uniformRows > 500, "della keep: only %zu uniform rows (the ranker's draw() path)", uniformRows);
  CHECK(mixedRows > 500, "della keep: only %zu mixed rows (draw() with odd keys)", mixedRows);
  std::printf("della keep: %zu cases, %zu uniform rows, %zu mixed rows\n", cases, uniformRows, mixedRows);
}

void testUniforms(Rng& r) {
  size_t cases = 0;
  for (size_t n : {0, 1, 3, 4, 5, 8, 13, 1000}) {
    const uint64_t seedKey = r.next(), first = r.next() >> (r.next() % 64);
    std::vector<uint64_t> scalar(n + 1, 9);
    wm::scalar::dellaUniforms(seedKey, first, n, scalar.data());
    // With and without VPMULLQ (the CPU may lack it: then both runs take AVX2's multiply).
    for (bool avx512 : {false, true}) {
      wm::setSimdEnabled(true);
      std::vector<uint64_t> simd(n + 1, 9);
      withAvx512(avx512, [&] { wm::dellaUniforms(seedKey, first, n, simd.data()); });
      CHECK(scalar == simd, "dellaUniforms n=%zu avx512 %d: SIMD != scalar", n, avx512);
    }
    // u < limit is bernoulliKeep at the limit's probability, for limits 0, 2^53 and between.
    bool defined = true;
    for (size_t j = 0; j < n; ++j) {
      const uint64_t k = r.next() % 4, limit = k == 0 ? 0 : k == 1 ? uint64_t{1} << 53 : k == 2 ? scalar[j] + (r.next() % 2) : (r.next() >> 11);
      const double p = static_cast<double>(limit) * 0x1.0p-53;  // exact: a limit < 2^54
      defined = defined && (scalar[j] < limit) == wm::bernoulliKeep(seedKey, first + j, p);
    }
    CHECK(defined, "dellaUniforms n=%zu: u < limit differs from bernoulliKeep", n);
    digestBytes(scalar.data(), n * 8);
    ++cases;
  }
  std::printf("della uniforms: %zu cases\n", cases);
}

// dellaKeys (AVX2, with AVX-512 on and off) against the scalar one and the definition (canonicalKey of x - base in f32), and its
// DellaKeyFacts against theirs (definedKeyFacts), on every dtype pair with special values (NaN payloads, +-Inf, +-0,
// subnormals) and every tail length; models equal to their base (every key 0, the least nonzero none) and equal but for a few
// elements (one nonzero key among zeros) where the dtypes match.
void testKeys(Rng& r) {
  size_t cases = 0;
  const Dtype types[] = {Dtype::BF16, Dtype::F16, Dtype::F32};
  for (Dtype tb : types) {
    for (Dtype tx : types) {
      for (size_t n : {0, 1, 7, 8, 9, 15, 16, 17, 31, 1000, 1283}) {
        std::vector<unsigned char> base = randomTensor(r, tb, n);
        const uint64_t kind = tb == tx ? r.next() % 4 : r.next() % 2;  // random, a palette, the base, the base but a few
        if (kind >= 2) {  // a finite base, so that x - base is 0 where x is the base's
          for (size_t j = 0; j < n; ++j) {
            if (!std::isfinite(wm::loadElementF32(base.data(), tb, j))) std::memset(base.data() + j * wm::dtypeSize(tb), 0, wm::dtypeSize(tb));
          }
        }
        std::vector<unsigned char> x = kind == 0 ? randomTensor(r, tx, n) : kind == 1 ? paletteTensor(r, tx, n, 5) : base;
        if (kind == 3 && n > 0) {
          const std::vector<unsigned char> other = randomTensor(r, tx, n);
          const size_t es = wm::dtypeSize(tx);
          for (uint64_t k = r.next() % 3; k-- > 0;) {
            const size_t j = r.next() % n;
            std::memcpy(x.data() + j * es, other.data() + j * es, es);
          }
        }
        std::vector<uint32_t> want(n + 1, 7), scalar(n + 1, 7);
        for (size_t j = 0; j < n; ++j) {
          const float d = wm::loadElementF32(x.data(), tx, j) - wm::loadElementF32(base.data(), tb, j);
          uint32_t bits;
          std::memcpy(&bits, &d, 4);
          want[j] = canonicalKey(bits);
        }
        const wm::DellaKeyFacts wantFacts = definedKeyFacts(std::vector<uint32_t>(want.begin(), want.begin() + n));
        const wm::DellaKeyFacts scalarFacts = wm::scalar::dellaKeys(base.data(), tb, x.data(), tx, n, scalar.data());
        CHECK(scalar == want && sameKeyFacts(scalarFacts, wantFacts), "dellaKeys %s-%s n=%zu kind %d: scalar differs from the definition",
              dtypeName(tb), dtypeName(tx), n, static_cast<int>(kind));
        for (bool avx512 : {false, true}) {
          wm::setSimdEnabled(true);
          std::vector<uint32_t> simd(n + 1, 7);
          wm::DellaKeyFacts simdFacts;
          withAvx512(avx512, [&] { simdFacts = wm::dellaKeys(base.data(), tb, x.data(), tx, n, simd.data()); });
          CHECK(simd == want && sameKeyFacts(simdFacts, wantFacts), "dellaKeys %s-%s n=%zu kind %d avx512 %d: SIMD differs from the definition",
                dtypeName(tb), dtypeName(tx), n, static_cast<int>(kind), avx512);
        }
        digestBytes(want.data(), n * 4);
        ++cases;
      }
    }
  }
  std::printf("della keys: %zu cases, SIMD == scalar == the definition\n", cases);
}

// dellaDrawSplit (AVX2, with AVX-512 on and off) against its definition: dellaUniforms then dellaSplitDraws, scalar; keep and
// middle equal, and u equal at every middle position; limits at 0, 2^53, equal, and at drawn values (ties with low and high).
void testDrawSplit(Rng& r) {
  size_t cases = 0;
  for (uint32_t L : {0u, 1u, 3u, 4u, 5u, 8u, 13u, 1000u, 1283u}) {
    for (int kind = 0; kind < 5; ++kind) {
      const uint64_t seedKey = r.next(), first = r.next() >> (r.next() % 64);
      std::vector<uint64_t> u(L + 1, 9);
      wm::scalar::dellaUniforms(seedKey, first, L, u.data());
      uint64_t a = r.next() >> 11, b = r.next() >> 11;
      if (kind == 1) a = 0, b = uint64_t{1} << 53;
      if (kind == 2) a = b;
      if (kind == 3 && L > 1) a = u[r.next() % L], b = u[r.next() % L];
      if (kind == 4) a = 0, b = 0;
      const uint64_t low = std::min(a, b), high = std::max(a, b);
      std::vector<uint8_t> want(L + 1, 5);
      std::vector<uint32_t> wantMiddle(L + 4, 0);
      const uint32_t wantCount = wm::scalar::dellaSplitDraws(u.data(), 1, L, low, high, want.data(), wantMiddle.data());
      for (bool simd : {false, true}) {
        for (bool avx512 : {false, true}) {
          wm::setSimdEnabled(simd);
          std::vector<uint8_t> keep(L + 1, 5);
          std::vector<uint32_t> middle(L + 4, 0);
          std::vector<uint64_t> got(L + 1, 3);
          uint32_t count = 0;
          withAvx512(avx512, [&] { count = wm::dellaDrawSplit(seedKey, first, L, low, high, keep.data(), middle.data(), got.data()); });
          bool same = count == wantCount && keep == want && got[L] == 3 && std::equal(middle.begin(), middle.begin() + count, wantMiddle.begin());
          for (uint32_t k = 0; same && k < count; ++k) same = got[middle[k]] == u[middle[k]];
          CHECK(same, "dellaDrawSplit L=%u kind %d simd %d avx512 %d: differs from dellaUniforms + dellaSplitDraws", L, kind, simd, avx512);
        }
      }
      wm::setSimdEnabled(true);
      digestBytes(want.data(), L);
      ++cases;
    }
  }
  std::printf("della split draws: %zu cases, SIMD == scalar == uniforms + split\n", cases);
}

// dellaMerge reading each model's keepBits map (a tensor-local job; della.cc's mergeByKeepBits where the base and scales are
// finite) against dellaMerge drawing the masks itself (the kept copies): the same bytes, with finite and special bases,
// finite and infinite scales, one and two models, each consensus, SIMD on and off.
void testMergeByBits(Rng& r) {
  size_t cases = 0;
  for (Dtype t : {Dtype::BF16, Dtype::F16, Dtype::F32}) {
    for (size_t m : {size_t{1}, size_t{2}}) {
      for (int variant = 0; variant < 8; ++variant) {
        const bool finiteBase = (variant & 1) != 0, infScale = (variant & 2) != 0;
        const wm::Consensus consensus = (variant & 4) != 0 ? wm::Consensus::Sum : wm::Consensus::None;
        const uint64_t L = 64, n = 5 * L, start = 2 * L, count = start + n + L;
        const size_t es = wm::dtypeSize(t);
        std::vector<unsigned char> base = randomTensor(r, t, count);
        if (finiteBase) {
          // Special values out of the base (x keeps them): an exponent of all ones becomes zero.
          for (uint64_t i = 0; i < count; ++i) {
            uint32_t bits = 0;
            std::memcpy(&bits, base.data() + i * es, es);
            const uint32_t e = t == Dtype::F32 ? 0x7F800000u : t == Dtype::F16 ? 0x7C00u : 0x7F80u;
            if ((bits & e) == e) bits &= ~e;
            std::memcpy(base.data() + i * es, &bits, es);
          }
        }
        std::vector<std::vector<unsigned char>> xs;
        std::vector<std::vector<uint8_t>> maps(m, std::vector<uint8_t>(wm::keepBitsBytes(count), 0));
        wm::DellaParams p;
        p.consensus = consensus;
        p.normalize = variant % 3 == 0;
        p.lambda = 0.75;
        p.baseSource = 0;
        p.rows.length = L;
        for (size_t k = 0; k < m; ++k) {
          xs.push_back(variant % 2 == 0 ? randomTensor(r, t, count) : nearTensor(r, base, t, t, count, kNear));
          wm::DellaModel dm;
          dm.source = static_cast<uint32_t>(k + 1);
          dm.weight = k == 0 ? 0.8 : -0.3;
          dm.density = 0.5;
          dm.epsilon = 0.1;
          dm.seedKey = r.next();
          dm.scale = infScale && k == m - 1 ? INFINITY : 1.75f;
          std::vector<uint64_t> sums(2 * wm::kL1Buckets, 0);
          wm::dellaL1Buckets(base.data() + start * es, t, xs[k].data() + start * es, t, p.rows, dm, start, n, sums.data(),
                             sums.data() + wm::kL1Buckets, maps[k].data());
          p.models.push_back(dm);
        }
        std::vector<const void*> srcs{base.data() + start * es};
        for (const auto& x : xs) srcs.push_back(x.data() + start * es);
        const std::vector<Dtype> types(m + 1, t);
        for (bool simd : {false, true}) {
          wm::setSimdEnabled(simd);
          std::vector<unsigned char> drawn(n * es + 1, 0xA5), read(n * es + 1, 0x5A);
          wm::dellaMerge(srcs.data(), types.data(), p, count, start, n, drawn.data(), t);
          wm::DellaParams withBits = p;
          for (size_t k = 0; k < m; ++k) withBits.models[k].keepBits = maps[k].data();
          wm::dellaMerge(srcs.data(), types.data(), withBits, count, start, n, read.data(), t);
          CHECK(std::memcmp(drawn.data(), read.data(), n * es) == 0, "dellaMerge %s m=%zu variant %d simd %d: keepBits maps != drawn masks",
                dtypeName(t), m, variant, simd);
          digestBytes(read.data(), n * es);
          ++cases;
        }
      }
    }
  }
  wm::setSimdEnabled(true);
  std::printf("della merge by keep bits: %zu cases\n", cases);
}

// dellaKeysIn (scalar, AVX2, AVX-512) against its definition: keys of a few values near lo (so that ranges hold some of them),
// ranges [from, to) of every length up to 70 at random offsets and whole rows, spans 0, 1, a few and wrapping past 2^32 (lo
// above the keys), strides 1 and 3.
void testKeysIn(Rng& r) {
  size_t cases = 0;
  for (int round = 0; round < 400; ++round) {
    const uint32_t L = round < 200 ? static_cast<uint32_t>(round % 71) : 1 + static_cast<uint32_t>(r.next() % 1300);
    const size_t stride = r.next() % 4 == 0 ? 3 : 1;
    const uint32_t lo = r.next() % 8 == 0 ? 0xFFFFFFF0u : static_cast<uint32_t>(r.next() % 0x7F800000u);
    std::vector<uint32_t> keys(L * stride + 1);
    for (auto& k : keys) k = r.next() % 5 == 0 ? static_cast<uint32_t>(r.next()) : lo + static_cast<uint32_t>(r.next() % 7) - 2;
    const uint32_t span = r.next() % 4 == 0 ? static_cast<uint32_t>(r.next() % 3) : r.next() % 8 == 0 ? 0x80000010u : static_cast<uint32_t>(r.next() % 6);
    const uint32_t from = L == 0 ? 0 : static_cast<uint32_t>(r.next() % (L + 1)), to = from + static_cast<uint32_t>(r.next() % (L - from + 1));
    uint32_t want = 0;
    for (uint32_t t = from; t < to; ++t) want += keys[t * stride] - lo < span;
    onEachPath([&](int path) {
      const uint32_t got = wm::dellaKeysIn(keys.data(), stride, from, to, lo, span);
      CHECK(got == want, "dellaKeysIn [%u, %u) stride %zu lo %08x span %u path %d: %u, not %u", from, to, stride, lo, span, path, got, want);
    });
    digestBytes(&want, sizeof want);
    ++cases;
  }
  std::printf("della keys in a range: %zu cases, SIMD == scalar == the definition\n", cases);
}

// packBits (the keep maps' bits; 16 a step by PMOVMSKB on x86-64, then 8 by a multiply, then one at a time) against its layout:
// element j at bit j % 8 of bits[j / 8], every length up to 70 and longer, the byte past the last untouched.
void testPackBits(Rng& r) {
  size_t cases = 0;
  for (size_t n = 0; n < 90; ++n) {
    const size_t len = n < 71 ? n : 1000 + r.next() % 300;
    std::vector<uint8_t> keep(len), bits(len / 8 + 2, 0xA5);
    for (auto& k : keep) k = static_cast<uint8_t>(r.next() % (n % 3 == 0 ? 2 : 7) == 0);
    wm::packBits(keep.data(), len, bits.data());
    bool ok = bits[(len + 7) / 8] == 0xA5;
    for (size_t j = 0; ok && j < len; ++j) ok = ((bits[j / 8] >> (j % 8)) & 1) == keep[j];
    CHECK(ok, "packBits n=%zu: differs from the layout", len);
    digestBytes(bits.data(), (len + 7) / 8);
    ++cases;
  }
  std::printf("keep bits: %zu cases, == the layout\n", cases);
}

// dellaTakeMarks (countPacked's pass; scalar, AVX2 and AVX-512) against its definition: marks sparse and dense over random ranges
// (random alignments and tails), cleared inside the range only. (The key span it scans is dellaKeys', checked in testKeys.)
void testTakeMarks(Rng& r) {
  size_t cases = 0;
  for (int round = 0; round < 40; ++round) {
    const uint32_t size = 1 + static_cast<uint32_t>(r.next() % 700), from = static_cast<uint32_t>(r.next() % size);
    const uint32_t to = from + static_cast<uint32_t>(r.next() % (size - from + 1));
    const uint64_t density = r.next() % 4;  // none, sparse, half, all
    std::vector<uint8_t> marks(size);
    for (auto& m : marks) m = density == 0 ? 0 : density == 3 ? 1 + r.next() % 255 : r.next() % (density == 1 ? 40 : 2) == 0;
    std::vector<uint32_t> want;
    std::vector<uint8_t> wantMarks = marks;
    for (uint32_t h = from; h < to; ++h) {
      if (marks[h] != 0) want.push_back(h);
      wantMarks[h] = 0;
    }
    onEachPath([&](int path) {
      std::vector<uint8_t> got = marks;
      std::vector<uint32_t> buckets(size + 16, 0xFFFFFFFFu);
      buckets.resize(wm::dellaTakeMarks(got.data(), from, to, buckets.data()));
      CHECK(buckets == want && got == wantMarks, "dellaTakeMarks [%u, %u) of %u path %d: differs from the definition", from, to, size, path);
    });
    ++cases;
  }
  std::printf("della marks: %zu cases, SIMD == scalar == the definition\n", cases);
}

// countDrawing (countPacked below 2^16 elements where the key span is at most 16 L buckets, countKeys elsewhere) against
// count() with the same draws, then draw(): the same keep bytes, buckets, first ranks and kept counts, and the keep bytes the
// definition's; uniform rows of one bucket, zeros among few buckets, a span from the least bucket to NaN (wide for the
// shorter rows), many buckets, all zero; limits rising, constant and falling.
void testPackedCounts(Rng& r) {
  wm::DellaRowRanker packed, counted;
  size_t cases = 0;
  for (uint32_t L : {1u, 2u, 5u, 64u, 1283u, 5000u, 65535u, 65536u}) {
    for (int kind = 0; kind < 5; ++kind) {
      for (double e : {0.1, 0.0, -0.2}) {
        std::vector<uint32_t> keys(L);
        for (auto& k : keys) {
          const uint64_t x = r.next();
          const uint32_t h = kind == 0 ? 0x3C00u : kind == 1 ? (x % 3 == 0 ? 0 : 0x3000u + static_cast<uint32_t>(x % 5))
                                       : kind == 2 ? (x % 4 == 0 ? 1u : x % 4 == 1 ? 0x7FC0u : x % 4 == 2 ? 0x7F80u : static_cast<uint32_t>(x >> 20) % 0x7F80u)
                                       : kind == 3 ? 0x2000u + static_cast<uint32_t>(x % 3000)
                                                   : 0;
          k = h << 16;
        }
        const uint64_t seedKey = r.next(), first = r.next() >> 20;
        const DefinedRowDraws defined = definedRowDraws(keys, 0.5, e, seedKey, first);
        const wm::DellaLimits lim = defined.limits();
        const std::vector<uint64_t>& u = defined.u;
        const std::vector<uint8_t>& want = defined.want;
        for (bool simd : {false, true}) {
          wm::setSimdEnabled(simd);
          std::vector<uint8_t> a(L, 9), b(L, 9);
          std::vector<uint64_t> ua(L, 0);
          packed.countDrawing(keys.data(), L, seedKey, first, lim, a.data(), ua.data(), definedKeyFacts(keys));
          const bool tookA = packed.draw(keys.data(), 1, L, ua.data(), lim, a.data());
          counted.count(keys.data(), 1, L, u.data(), lim, b.data(), true);
          const bool tookB = counted.draw(keys.data(), 1, L, u.data(), lim, b.data());
          bool same = tookA && tookB && a == want && b == want && packed.buckets() == counted.buckets() && packed.first(packed.buckets()) == L;
          for (uint32_t i = 0; same && i < packed.buckets(); ++i) {
            same = packed.bucket(i) == counted.bucket(i) && packed.first(i) == counted.first(i) && packed.kept(i) == counted.kept(i);
          }
          CHECK(same, "countDrawing L=%u kind %d epsilon %g simd %d: differs from count() with the same draws or from the definition", L, kind, e,
                simd);
          digestBytes(a.data(), L);
          ++cases;
        }
      }
    }
  }
  wm::setSimdEnabled(true);
  std::printf("della packed counts: %zu cases, countDrawing == count() == the definition\n", cases);
}

}  // namespace

void testDella(uint64_t seed) {
  Rng r(seed ^ 0xDE11A);
  testRanks(r);
  testDraw(r);
  testKeep(r);
  testUniforms(r);
  testKeys(r);
  testDrawSplit(r);
  testKeysIn(r);
  testTakeMarks(r);
  testPackBits(r);
  testPackedCounts(r);
  testMergeByBits(r);
}
