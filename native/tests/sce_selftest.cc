// The self-test of SCE's merge (kernels/sce.h): SIMD == scalar bit for bit on random inputs salted with
// special values (run by kernels_selftest.cc's main).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu_backends.h"
#include "kernels/element_io.h"
#include "kernels/numerics.h"
#include "kernels/sce.h"
#include "kernels/sparse_select.h"
#include "kernels/sparsify.h"
#include "local_sce.h"
#include "tests/selftest_support.h"

namespace {

namespace num = wm::num;

// A tensor of few distinct values (small multiples of a power of two, ±0, with specials now and then): many
// equal variances, so cuts that fall between equal keys.
std::vector<unsigned char> palette(Rng& r, Dtype t, size_t n) {
  std::vector<unsigned char> v = randomTensor(r, t, n);
  for (size_t i = 0; i < n; ++i) {
    if (r.next() % 8 == 0) continue;  // the random pattern stays: specials and ties
    const float x = static_cast<float>(static_cast<int>(r.next() % 7) - 3) * 0.125f;
    uint32_t b = t == Dtype::F32 ? num::f32Bits(x) : t == Dtype::BF16 ? num::f32ToBF16(x) : num::f32ToF16(x);  // exact in each
    std::memcpy(v.data() + i * wm::dtypeSize(t), &b, wm::dtypeSize(t));
  }
  return v;
}

// A product rounded on its own, never fused with the add that follows (the fast-contraction build would).
double product(double a, double b) {
  volatile double x = a * b;
  return x;
}

// sce.h's sums of squares by their definition, element by element: each model's t^2 over the elements whose
// variance key reaches the cut and whose t is finite, in element order.
std::vector<double> sumSquaresByDefinition(const void* const* srcs, const Dtype* types, const wm::SceParams& p, uint64_t count, uint64_t start,
                                           size_t n) {
  const size_t m = p.sources.size();
  std::vector<double> sums(m, 0.0), t(m);
  for (size_t j = 0; j < n; ++j) {
    const double base = wm::loadElement(srcs[p.base], types[p.base], j);
    double mean = 0, v = 0;
    for (size_t k = 0; k < m; ++k) mean += t[k] = wm::loadElement(srcs[p.sources[k]], types[p.sources[k]], j) - base;
    mean /= static_cast<double>(m);
    for (size_t k = 0; k < m; ++k) v += product(t[k] - mean, t[k] - mean);
    uint32_t bits = num::f32Bits(static_cast<float>(v / static_cast<double>(m))) & 0x7FFFFFFFu;
    if (bits > 0x7F800000u) bits = 0x7FC00000u;
    const bool kept = p.cut < wm::kRankKeyNone && wm::sparseRankKey(bits, p.indexBits, count, start + j) >= p.cut;
    for (size_t k = 0; k < m; ++k) {
      if (kept && std::isfinite(t[k])) sums[k] += product(t[k], t[k]);
    }
  }
  return sums;
}

// The chunk kernels under sceMerge and the statistics (sceTasks' loads and variance bits, sceKeep) and the
// statistics themselves (sceHistogram, sceSumSquares): SIMD == scalar bit for bit, with cuts at real keys.
void testSceChunks(uint64_t seed) {
  Rng r(seed ^ 0x5CEC);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  size_t cases = 0;
  for (size_t n : {1, 3, 4, 7, 64, 511, 512, 513, 1027}) {
    for (Dtype t : all) {
      for (int variant = 0; variant < 8; ++variant) {
        std::vector<std::vector<unsigned char>> src;
        Dtype types[5];
        for (int s = 0; s < 5; ++s) {
          types[s] = s == 4 ? (t == Dtype::F32 ? Dtype::BF16 : Dtype::F32) : t;
          src.push_back(variant % 2 == 0 ? randomTensor(r, types[s], n) : palette(r, types[s], n));
        }
        const void* srcs[5] = {src[0].data(), src[1].data(), src[2].data(), src[3].data(), src[4].data()};
        wm::SceParams p;
        const uint64_t start = variant % 4 < 2 ? 0 : 5, count = n + start;
        p.indexBits = wm::sparseIndexBits(count);
        const size_t m = 1 + static_cast<size_t>(variant) % 4;
        for (size_t k = 0; k < m; ++k) p.sources.push_back(static_cast<uint32_t>(variant >= 4 && k == m - 1 ? 4 : k + 1));
        // sceTasks on the chunks of 512 that the kernels use, from an odd first element too
        const size_t len = std::min<size_t>(n, 512), j0 = n - len;
        std::vector<double> baseS(len), baseV(len), tS(m * 512), tV(m * 512);
        std::vector<uint32_t> bitsS(len), bitsV(len);
        wm::setSimdEnabled(false);
        wm::sceTasks(srcs, types, p, j0, len, baseS.data(), tS.data(), 512, bitsS.data());
        wm::setSimdEnabled(true);
        for (bool wide : {false, true}) {  // the 4-lane loops alone, then with the 8-lane ones where the CPU has AVX-512
          withAvx512(wide, [&] { wm::sceTasks(srcs, types, p, j0, len, baseV.data(), tV.data(), 512, bitsV.data()); });
          bool same = std::memcmp(baseS.data(), baseV.data(), len * 8) == 0 && bitsS == bitsV;
          for (size_t k = 0; k < m; ++k) same = same && std::memcmp(&tS[k * 512], &tV[k * 512], len * 8) == 0;
          CHECK(same, "sceTasks %s n=%zu m=%zu variant %d AVX-512 %d: SIMD != scalar", dtypeName(t), n, m, variant, wide);
        }
        digestBytes(bitsV.data(), len * 4);
        // cuts: all, none, one, the keys of random elements (an exact boundary), their variances' lowest keys
        std::vector<uint64_t> cuts = {0, 1, wm::kRankKeyNone};
        for (int c = 0; c < 4; ++c) {
          const size_t i = static_cast<size_t>(r.next() % len);
          cuts.push_back(wm::sparseRankKey(bitsS[i], p.indexBits, count, start + j0 + i));
          cuts.push_back(static_cast<uint64_t>(bitsS[i]) << p.indexBits);
        }
        for (uint64_t cut : cuts) {
          std::vector<double> keepS(len, -1), keepV(len, -1);
          wm::setSimdEnabled(false);
          wm::sceKeep(bitsS.data(), p.indexBits, count, start + j0, cut, len, keepS.data());
          wm::setSimdEnabled(true);
          for (bool wide : {false, true}) {
            withAvx512(wide, [&] { wm::sceKeep(bitsS.data(), p.indexBits, count, start + j0, cut, len, keepV.data()); });
            CHECK(std::memcmp(keepS.data(), keepV.data(), len * 8) == 0, "sceKeep n=%zu cut %016llx AVX-512 %d: SIMD != scalar", n,
                  static_cast<unsigned long long>(cut), wide);
          }
          // the keep mask against its definition
          for (size_t j = 0; j < len; ++j) {
            const bool kept = cut < wm::kRankKeyNone && wm::sparseRankKey(bitsS[j], p.indexBits, count, start + j0 + j) >= cut;
            CHECK(keepV[j] == (kept ? 1.0 : 0.0), "sceKeep element %zu of %zu cut %016llx: %g", j, n, static_cast<unsigned long long>(cut), keepV[j]);
          }
          // the sums of squares over the piece [start, start + n) of the tensor, with the variances computed or given
          p.cut = cut;
          for (bool given : {false, true}) {
            std::vector<uint32_t> all(count, 0);
            std::vector<const void*> at(srcs, srcs + 5);
            if (given) {
              wm::setSimdEnabled(false);
              wm::sceVarianceBits(srcs, types, p, n, all.data() + start);
              p.varianceBits = all.data();
            }
            double sumS[4] = {0, 0, 0, 0}, sumV[4] = {0, 0, 0, 0};
            wm::setSimdEnabled(false);
            wm::sceSumSquares(srcs, types, p, count, start, n, sumS);
            wm::setSimdEnabled(true);
            wm::sceSumSquares(srcs, types, p, count, start, n, sumV);
            p.varianceBits = nullptr;
            CHECK(std::memcmp(sumS, sumV, sizeof sumS) == 0, "sceSumSquares n=%zu m=%zu cut %016llx given %d: SIMD != scalar", n, m,
                  static_cast<unsigned long long>(cut), given);
            const std::vector<double> want = sumSquaresByDefinition(srcs, types, p, count, start, n);
            CHECK(std::memcmp(sumS, want.data(), m * sizeof(double)) == 0, "sceSumSquares n=%zu m=%zu cut %016llx given %d: %g != %g by definition", n,
                  m, static_cast<unsigned long long>(cut), given, sumS[0], want[0]);
            digestBytes(sumV, sizeof sumV);
            ++cases;
          }
        }
        // keeping none: sceMerge's shortcut against the formula over every model with keep 0
        for (Dtype to : all) {
          p.cut = wm::kRankKeyNone;
          p.weights.assign(m, 0.0);
          for (size_t k = 0; k < m; ++k) p.weights[k] = k % 2 == 0 ? 0.5 : -0.25;
          std::vector<unsigned char> want(n * wm::dtypeSize(to) + 3, 0xA5), got = want;
          std::vector<double> b(512), tk(m * 512), zero(512, 0.0);
          wm::setSimdEnabled(false);
          for (size_t c0 = 0; c0 < n; c0 += 512) {
            const size_t cl = std::min<size_t>(512, n - c0);
            wm::sceTasks(srcs, types, p, c0, cl, b.data(), tk.data(), 512, nullptr);
            wm::sceCombine(b.data(), tk.data(), 512, zero.data(), p.weights.data(), m, cl, want.data() + 1, c0, to);
          }
          for (int path = 0; path < 3; ++path) {  // scalar, AVX2, AVX-512 (on the values' bits where the dtypes agree)
            wm::setSimdEnabled(path > 0);
            withAvx512(path == 2, [&] { wm::sceMerge(srcs, types, p, count, start, n, got.data() + 1, to); });
            CHECK(got == want, "sceMerge keeping none %s->%s n=%zu m=%zu path %d: != the formula with keep 0", dtypeName(t), dtypeName(to), n, m, path);
          }
          wm::setSimdEnabled(true);
          digestBytes(got.data(), got.size());
          ++cases;
        }
        // the selection histogram's digits at the top and at the index bits
        for (uint32_t shift : {p.indexBits + 19, p.indexBits > 3 ? p.indexBits - 3 : 0u}) {
          wm::SceStat st;
          st.select = p;
          st.digit.indexBits = p.indexBits;
          st.digit.shift = shift;
          st.digit.bits = 12;
          st.digit.prefix = (wm::sparseRankKey(bitsS[0], p.indexBits, count, start + j0)) >> (shift + 12);
          std::vector<uint64_t> hS((1u << 12) + 1, 0), hV = hS;
          wm::setSimdEnabled(false);
          wm::sceHistogram(srcs, types, st, count, start, n, hS.data());
          wm::setSimdEnabled(true);
          wm::sceHistogram(srcs, types, st, count, start, n, hV.data());
          CHECK(hS == hV, "sceHistogram n=%zu m=%zu shift %u: SIMD != scalar", n, m, shift);
          digestBytes(hV.data(), hV.size() * 8);
          ++cases;
        }
      }
    }
  }
  std::printf("sce chunks: %zu cases\n", cases);
}

// A tensor's sums of squares in pieces (sceSumSquaresPieces: AVX-512 a piece at a time, its models side by side, in registers) against
// the scalar loop of pieces and against the definition piece by piece: 1-9 models (more than the 8 held in registers), pieces
// shorter and longer than the tensor and than the kernel's 256-element rounds, variances given or computed, sources of one
// dtype and of two, cuts that keep all, none, or part.
void testSceSumPieces(uint64_t seed) {
  Rng r(seed ^ 0x5CE5);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  size_t cases = 0;
  for (size_t count : {1, 8, 13, 256, 257, 1000, 3001}) {
    for (Dtype t : all) {
      for (int variant = 0; variant < 6; ++variant) {
        const size_t m = std::vector<size_t>{1, 2, 3, 5, 8, 9}[static_cast<size_t>(variant)];
        const bool mixed = r.next() % 4 == 0;  // the last model of another dtype
        std::vector<std::vector<unsigned char>> src;
        std::vector<Dtype> types(m + 1, t);
        if (mixed) types[m - 1] = t == Dtype::F32 ? Dtype::BF16 : Dtype::F32;
        std::vector<const void*> srcs;
        for (size_t s = 0; s <= m; ++s) src.push_back(r.next() % 2 == 0 ? randomTensor(r, types[s], count) : palette(r, types[s], count));
        for (auto& v : src) srcs.push_back(v.data());
        wm::SceParams p;
        p.base = static_cast<uint32_t>(m);  // the base last, the models before it
        for (size_t k = 0; k < m; ++k) p.sources.push_back(static_cast<uint32_t>(k));
        p.indexBits = wm::sparseIndexBits(count);
        std::vector<uint32_t> bits(count);
        wm::setSimdEnabled(false);
        wm::sceVarianceBits(srcs.data(), types.data(), p, count, bits.data());
        wm::setSimdEnabled(true);
        for (bool wide : {false, true}) {  // the variance bits with the task vectors in registers (AVX-512) or in chunks
          std::vector<uint32_t> bitsV(count + 1, 0xA5A5A5A5u), want = bits;
          want.push_back(0xA5A5A5A5u);
          withAvx512(wide, [&] { wm::sceVarianceBits(srcs.data(), types.data(), p, count, bitsV.data()); });
          CHECK(bitsV == want, "sceVarianceBits %s count %zu m %zu mixed %d AVX-512 %d: SIMD != scalar", dtypeName(t), count, m, mixed, wide);
          digestBytes(bitsV.data(), count * 4);
        }
        std::vector<uint64_t> cuts = {0, 1, wm::kRankKeyNone};
        for (int c = 0; c < 3; ++c) {
          const size_t i = static_cast<size_t>(r.next() % count);
          cuts.push_back(wm::sparseRankKey(bits[i], p.indexBits, count, i));
          cuts.push_back(static_cast<uint64_t>(bits[i]) << p.indexBits);
        }
        for (uint64_t cut : cuts) {
          p.cut = cut;
          for (uint64_t piece : {uint64_t{1}, uint64_t{7}, uint64_t{256}, uint64_t{300}, uint64_t{1024}, uint64_t{1} << 20}) {
            p.sumPiece = piece;
            for (bool given : {false, true}) {
              // given: the variance bits in memory, which each call overwrites with the keep map (a copy each)
              std::vector<uint32_t> mapS = bits, mapV[2] = {bits, bits};
              p.varianceBits = given ? bits.data() : nullptr;
              std::vector<double> want(m, 0.5), scalarSums = want;
              for (uint64_t start = 0; start < count; start += piece) {  // the definition, piece by piece
                std::vector<const void*> at;
                for (size_t s = 0; s <= m; ++s) at.push_back(static_cast<const uint8_t*>(srcs[s]) + start * wm::dtypeSize(types[s]));
                const std::vector<double> sums = sumSquaresByDefinition(at.data(), types.data(), p, count, start, std::min<uint64_t>(piece, count - start));
                for (size_t k = 0; k < m; ++k) want[k] += sums[k];
              }
              wm::setSimdEnabled(false);
              if (given) p.varianceBits = mapS.data();
              wm::sceSumSquaresPieces(srcs.data(), types.data(), p, count, scalarSums.data(), given ? reinterpret_cast<uint8_t*>(mapS.data()) : nullptr);
              wm::setSimdEnabled(true);
              CHECK(std::memcmp(scalarSums.data(), want.data(), m * 8) == 0, "sceSumSquaresPieces scalar count %zu m %zu piece %llu: %g != %g by definition",
                    count, m, static_cast<unsigned long long>(piece), scalarSums[0], want[0]);
              for (bool wide : {false, true}) {
                std::vector<double> got(m, 0.5);
                withAvx512(wide, [&] {
                  if (given) p.varianceBits = mapV[wide].data();
                  wm::sceSumSquaresPieces(srcs.data(), types.data(), p, count, got.data(), given ? reinterpret_cast<uint8_t*>(mapV[wide].data()) : nullptr);
                });
                CHECK(std::memcmp(got.data(), want.data(), m * 8) == 0,
                      "sceSumSquaresPieces %s count %zu m %zu piece %llu cut %016llx given %d mixed %d AVX-512 %d: %g != %g by definition", dtypeName(t),
                      count, m, static_cast<unsigned long long>(piece), static_cast<unsigned long long>(cut), given, mixed, wide, got[0], want[0]);
                CHECK(mapV[wide] == mapS, "sceSumSquaresPieces' keep map count %zu piece %llu cut %016llx AVX-512 %d: SIMD != scalar", count,
                      static_cast<unsigned long long>(piece), static_cast<unsigned long long>(cut), wide);
                digestBytes(got.data(), m * 8);
              }
              if (given && cut < wm::kRankKeyNone) {
                // the map against its definition, then the merge's keep mask from it over random runs
                const uint8_t* map = reinterpret_cast<const uint8_t*>(mapS.data());
                for (uint64_t i = 0; i < count; ++i) {
                  const uint64_t bit = wm::sceKeepMapBit(i, piece);
                  CHECK(((map[bit / 8] >> (bit % 8)) & 1) == (wm::sparseRankKey(bits[i], p.indexBits, count, i) >= cut ? 1 : 0),
                        "keep map element %llu of %zu piece %llu cut %016llx: wrong bit", static_cast<unsigned long long>(i), count,
                        static_cast<unsigned long long>(piece), static_cast<unsigned long long>(cut));
                }
                for (int run = 0; run < 4; ++run) {
                  const uint64_t first = run == 0 ? 0 : r.next() % count;
                  const size_t len = static_cast<size_t>(run == 0 ? count : r.next() % (count - first + 1));
                  std::vector<double> keepS(len, -1), keepV(len, -1);
                  wm::setSimdEnabled(false);
                  wm::sceKeepOfMap(map, piece, first, len, keepS.data());
                  wm::setSimdEnabled(true);
                  for (size_t j = 0; j < len; ++j) {
                    CHECK(keepS[j] == (wm::sparseRankKey(bits[first + j], p.indexBits, count, first + j) >= cut ? 1.0 : 0.0),
                          "sceKeepOfMap scalar element %llu piece %llu: %g", static_cast<unsigned long long>(first + j), static_cast<unsigned long long>(piece),
                          keepS[j]);
                  }
                  for (bool wide : {false, true}) {
                    withAvx512(wide, [&] { wm::sceKeepOfMap(map, piece, first, len, keepV.data()); });
                    CHECK(len == 0 || std::memcmp(keepS.data(), keepV.data(), len * 8) == 0, "sceKeepOfMap first %llu len %zu piece %llu AVX-512 %d: SIMD != scalar",
                          static_cast<unsigned long long>(first), len, static_cast<unsigned long long>(piece), wide);
                  }
                  // the merge of the run with the keep map == with the variance bits
                  wm::SceParams q = p;
                  q.weights.assign(m, 0.0);
                  for (size_t k = 0; k < m; ++k) q.weights[k] = k % 2 == 0 ? 0.5 : 0.25;
                  std::vector<const void*> at;
                  for (size_t s = 0; s <= m; ++s) at.push_back(static_cast<const uint8_t*>(srcs[s]) + first * wm::dtypeSize(types[s]));
                  std::vector<uint16_t> byBits(len + 1), byMap(len + 1);
                  q.varianceBits = bits.data();
                  wm::sceMerge(at.data(), types.data(), q, count, first, len, byBits.data(), Dtype::BF16);
                  q.varianceBits = nullptr;
                  q.keepMap = map;
                  wm::sceMerge(at.data(), types.data(), q, count, first, len, byMap.data(), Dtype::BF16);
                  CHECK(byBits == byMap, "sceMerge first %llu len %zu piece %llu: keep map != variance bits", static_cast<unsigned long long>(first), len,
                        static_cast<unsigned long long>(piece));
                  // the merge with the task vectors in registers (sceMergeInRegisters, AVX-512) == the scalar chunks, keep bits from the map or from
                  // variances computed with the loads (cuts at real keys), every output dtype, guard bytes around
                  for (bool byMap : {true, false}) {
                  q.keepMap = byMap ? map : nullptr;
                  for (Dtype to : all) {
                    std::vector<unsigned char> outS(len * wm::dtypeSize(to) + 3, 0xA5), outV = outS, outW = outS, outN = outS;
                    wm::setSimdEnabled(false);
                    wm::sceMerge(at.data(), types.data(), q, count, first, len, outS.data() + 1, to);
                    wm::setSimdEnabled(true);
                    for (bool wide : {false, true}) {
                      withAvx512(wide, [&] { wm::sceMerge(at.data(), types.data(), q, count, first, len, (wide ? outW : outV).data() + 1, to); });
                    }
                    withVbmi2(false, [&] { wm::sceMerge(at.data(), types.data(), q, count, first, len, outN.data() + 1, to); });  // 32-bit lanes
                    digestBytes(outW.data(), outW.size());
                    CHECK(outS == outV && outS == outW && outS == outN, "sceMerge in registers, keep map %d, %s->%s first %llu len %zu m %zu mixed %d piece %llu cut %016llx: SIMD != scalar",
                          byMap, dtypeName(t), dtypeName(to), static_cast<unsigned long long>(first), len, m, mixed, static_cast<unsigned long long>(piece),
                          static_cast<unsigned long long>(cut));
                  }
                  }
                }
              }
              ++cases;
            }
          }
        }
      }
    }
  }
  std::printf("sce sums in pieces: %zu cases\n", cases);
}

// Two bf16 task vectors' variance bits (sce_avx512.cc's f32 path where the f64 truth is exact) against the scalar truth, and the sums of
// squares and keep map of one and two under cuts at real keys: smooth weights and small deltas (nearly all in that path), and triples
// at its limits: exponent fields from 0 to 255 at most 17 apart (1 and 254 the path's ends, 16 its widest span), equal models
// (variance 0), results that underflow f32 or overflow to Inf.
void testScePairVariance(uint64_t seed) {
  Rng r(seed ^ 0x5CE2);
  std::normal_distribution<float> weight(0.0f, 0.02f), delta(0.0f, 0.002f);
  size_t inPath = 0, total = 0;
  for (int kind = 0; kind < 2; ++kind) {
    const size_t n = 1 << 16;
    std::vector<uint16_t> v[3];
    for (auto& x : v) x.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (kind == 0) {
        const float b = weight(r.g);
        v[0][i] = num::f32ToBF16(b);
        for (int k = 1; k < 3; ++k) v[k][i] = num::f32ToBF16(num::bf16ToF32(v[0][i]) + delta(r.g));
        continue;
      }
      // Every other 16 elements all inside the path's range (its steps take 16 at once), often at its ends; the others anywhere.
      const bool inside = (i / 16) % 2 == 0;
      const uint32_t pick = static_cast<uint32_t>(r.next() % 4);
      const uint32_t e0 = !inside ? static_cast<uint32_t>(r.next() % 256) : pick == 0 ? 1 : pick == 1 ? 238 : 1 + static_cast<uint32_t>(r.next() % 238);
      for (int k = 0; k < 3; ++k) {
        const uint32_t e = std::min<uint32_t>(255, e0 + static_cast<uint32_t>(r.next() % (inside ? 17 : 18)));  // outside: spans to 17
        v[k][i] = static_cast<uint16_t>((r.next() % 2) << 15 | e << 7 | (r.next() % 128));
      }
      if (r.next() % 8 == 0) v[2][i] = v[1][i];  // equal models: variance 0
    }
    for (size_t g = 0; g + 16 <= n; g += 16) {  // the 16s whose every element lies in the range
      bool all = true;
      for (size_t i = g; i < g + 16; ++i) {
        const auto field = [](uint16_t h) { return static_cast<uint32_t>(h >> 7) & 0xFF; };
        const uint32_t lo = std::min({field(v[0][i]), field(v[1][i]), field(v[2][i])}), hi = std::max({field(v[0][i]), field(v[1][i]), field(v[2][i])});
        all = all && lo >= 1 && hi <= 254 && hi - lo <= 16;
      }
      inPath += all ? 16 : 0;
      total += 16;
    }
    const void* srcs[3] = {v[0].data(), v[1].data(), v[2].data()};
    const Dtype types[3] = {Dtype::BF16, Dtype::BF16, Dtype::BF16};
    wm::SceParams p;
    p.base = 0;
    p.sources = {1, 2};
    std::vector<uint32_t> want(n), got(n);
    wm::setSimdEnabled(false);
    wm::sceVarianceBits(srcs, types, p, n, want.data());
    wm::setSimdEnabled(true);
    for (bool wide : {false, true}) {
      withAvx512(wide, [&] { wm::sceVarianceBits(srcs, types, p, n, got.data()); });
      for (size_t i = 0; i < n; ++i) {
        CHECK(got[i] == want[i], "sceVarianceBits of two bf16 models, kind %d AVX-512 %d, element %zu (%04x %04x %04x): %08x, scalar %08x", kind, wide, i,
              v[0][i], v[1][i], v[2][i], got[i], want[i]);
      }
      digestBytes(got.data(), n * 4);
    }
    p.indexBits = wm::sparseIndexBits(n);
    for (size_t m : {1, 2}) {
      p.sources.resize(m);
      std::vector<uint32_t> bits(n);
      wm::setSimdEnabled(false);
      wm::sceVarianceBits(srcs, types, p, n, bits.data());
      wm::setSimdEnabled(true);
      const size_t i = static_cast<size_t>(r.next() % n);
      for (uint64_t cut : {uint64_t{0}, uint64_t{1}, wm::sparseRankKey(bits[i], p.indexBits, n, i), uint64_t{bits[i]} << p.indexBits}) {
        p.cut = cut;
        for (uint64_t piece : {uint64_t{1000}, uint64_t{1} << 20}) {
          p.sumPiece = piece;
          std::vector<uint32_t> mapS = bits, mapV = bits;  // each call writes its keep map over its copy of the bits
          double sumS[2] = {0.5, 0.5}, sumV[2] = {0.5, 0.5};
          wm::setSimdEnabled(false);
          p.varianceBits = mapS.data();
          wm::sceSumSquaresPieces(srcs, types, p, n, sumS, reinterpret_cast<uint8_t*>(mapS.data()));
          wm::setSimdEnabled(true);
          p.varianceBits = mapV.data();
          wm::sceSumSquaresPieces(srcs, types, p, n, sumV, reinterpret_cast<uint8_t*>(mapV.data()));
          CHECK(std::memcmp(sumS, sumV, m * 8) == 0 && mapS == mapV, "sceSumSquaresPieces of bf16, kind %d m %zu cut %016llx piece %llu: SIMD %a %a != scalar %a %a",
                kind, m, static_cast<unsigned long long>(cut), static_cast<unsigned long long>(piece), sumV[0], sumV[1], sumS[0], sumS[1]);
          digestBytes(sumV, m * 8);
        }
      }
      p.varianceBits = nullptr;
      p.sources = {1, 2};
    }
  }
  std::printf("sce pair variance: %zu of %zu elements in 16s wholly in the f32 path's range\n", inPath, total);
}

// The windowed cut over variance bits held in memory (sparse_select.h's rankCutsWindowedOfBits, local_sce.h's first choice) against
// the definition: the keys sorted, the rank-th largest, or its variance's lowest key where every element of that variance is kept
// (0 where the rank is the count: all kept).
// Variances of 1-3 task vectors of random values (zeros, NaN one above Inf) and of few distinct values (ties at the cut), tensors
// larger than the sample (4,096) so that the window is placed from a part of them.
void testSceCutWindow(uint64_t seed) {
  Rng r(seed ^ 0x5CEC);
  size_t cases = 0, answered = 0;
  for (uint64_t count : {uint64_t{1}, uint64_t{5}, uint64_t{4099}, uint64_t{70001}, uint64_t{200003}}) {
    for (size_t m : {1, 2, 3}) {
      for (bool ties : {false, true}) {
        std::vector<std::vector<unsigned char>> src;
        std::vector<const void*> srcs;
        for (size_t s = 0; s <= m; ++s) src.push_back(ties ? palette(r, Dtype::BF16, count) : randomTensor(r, Dtype::BF16, count));
        for (auto& v : src) srcs.push_back(v.data());
        std::vector<Dtype> types(m + 1, Dtype::BF16);
        wm::SceParams p;
        p.base = 0;
        for (size_t k = 1; k <= m; ++k) p.sources.push_back(static_cast<uint32_t>(k));
        std::vector<uint32_t> bits(count);
        wm::sceVarianceBits(srcs.data(), types.data(), p, count, bits.data());
        const uint32_t indexBits = wm::sparseIndexBits(count);
        std::vector<uint64_t> keys(count);
        for (uint64_t i = 0; i < count; ++i) keys[i] = wm::sparseRankKey(bits[i], indexBits, count, i);
        std::sort(keys.begin(), keys.end(), [](uint64_t a, uint64_t b) { return a > b; });
        // The definition's cut of the top `rank` keys.
        const auto cutOfRank = [&](uint64_t rank) {
          if (rank == 0) return wm::kRankKeyNone;
          const uint64_t key = keys[rank - 1], value = key >> indexBits;
          // rank >= count keeps all: cut 0 (rankCut's contract; sce's k is below count, select_topk < 1)
          return rank >= count ? 0 : keys[rank] >> indexBits != value ? value << indexBits : key;
        };
        // local_sce.h's cuts from select_topk: the window's (the zeros given) and the histograms' (its fallback, counting them itself)
        const uint64_t zeros = static_cast<uint64_t>(std::count(bits.begin(), bits.end(), 0u));
        for (double topk : {0.1, 1.0 / 3, 0.5, 0.9}) {
          const uint64_t want = cutOfRank(static_cast<uint64_t>(std::trunc(static_cast<double>(count - zeros) * topk)));
          const uint64_t stored = wm::sceCutOfStoredBits(bits.data(), count, zeros, topk), counted = wm::sceCutOfBits(bits.data(), count, topk);
          CHECK(stored == want && counted == want, "sce cut of select_topk %g, count %llu m %zu ties %d: window %016llx, histograms %016llx, by definition %016llx",
                topk, static_cast<unsigned long long>(count), m, ties, static_cast<unsigned long long>(stored), static_cast<unsigned long long>(counted),
                static_cast<unsigned long long>(want));
        }
        for (uint64_t rank : {uint64_t{1}, count / 100, count / 3, count / 2, count - 1, 1 + r.next() % count}) {
          if (rank == 0) continue;
          const uint64_t want = cutOfRank(rank);
          uint64_t cut = 7;
          if (wm::rankCutsWindowedOfBits(bits.data(), count, &rank, 1, &cut)) {
            ++answered;
            CHECK(cut == want, "rankCutsWindowedOfBits count %llu m %zu ties %d rank %llu: %016llx, by definition %016llx", static_cast<unsigned long long>(count),
                  m, ties, static_cast<unsigned long long>(rank), static_cast<unsigned long long>(cut), static_cast<unsigned long long>(want));
          }
          ++cases;
        }
      }
    }
  }
  CHECK(answered * 2 > cases, "rankCutsWindowedOfBits answered only %zu of %zu cases", answered, cases);
  // The zeros the cut's k leaves out (sceZeroBits), SIMD of both widths against the scalar count, at every length to 40 and a longer one.
  std::vector<size_t> lengths(41);
  for (size_t n = 0; n <= 40; ++n) lengths[n] = n;
  lengths.push_back(4099);
  for (size_t n : lengths) {
    std::vector<uint32_t> bits(n);
    for (auto& b : bits) b = r.next() % 3 == 0 ? 0 : static_cast<uint32_t>(r.next()) >> (r.next() % 32);
    const uint64_t want = static_cast<uint64_t>(std::count(bits.begin(), bits.end(), 0u));
    wm::setSimdEnabled(false);
    CHECK(wm::sceZeroBits(bits.data(), n) == want, "sceZeroBits scalar n %zu", n);
    wm::setSimdEnabled(true);
    for (bool wide : {false, true}) {
      uint64_t got = 0;
      withAvx512(wide, [&] { got = wm::sceZeroBits(bits.data(), n); });
      CHECK(got == want, "sceZeroBits n %zu AVX-512 %d: %llu, counted %llu", n, wide, static_cast<unsigned long long>(got), static_cast<unsigned long long>(want));
    }
  }
  std::printf("sce cut window: %zu of %zu cases answered\n", answered, cases);
}

}  // namespace

// sceMerge: 1-4 task vectors, every output dtype, sources of mixed dtypes, weights of both signs and
// zero, cuts that keep all, none, or part, and a piece that starts inside the tensor.
void testSce(uint64_t seed) {
  Rng r(seed ^ 0x5CE);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  size_t cases = 0;
  for (size_t n : {0, 1, 3, 4, 5, 8, 511, 512, 513, 1027}) {
    for (Dtype t : all) {
      std::vector<std::vector<unsigned char>> src;
      Dtype types[5];
      for (int s = 0; s < 5; ++s) {
        types[s] = s == 4 ? (t == Dtype::F32 ? Dtype::BF16 : Dtype::F32) : t;  // the last source of another dtype
        src.push_back(randomTensor(r, types[s], n));
      }
      const void* srcs[5] = {src[0].data(), src[1].data(), src[2].data(), src[3].data(), src[4].data()};
      // Variants 4-7: the last model of another dtype (the chunk path); 8-11: one dtype (the registers' path) with NaN, Inf and -0
      // weights for every model count 1-4.
      for (int variant = 0; variant < 12; ++variant) {
        const uint64_t start = variant % 2 == 0 ? 0 : 7, count = n + start;
        wm::SceParams p;
        p.base = 0;
        p.indexBits = wm::sparseIndexBits(count);
        const size_t m = 1 + static_cast<size_t>(variant) % 4;
        for (size_t k = 0; k < m; ++k) {
          p.sources.push_back(static_cast<uint32_t>(variant >= 4 && variant < 8 && k == m - 1 ? 4 : k + 1));
          // NaN and Inf weights (not finite: the SIMD merges' w_k * e_k multiply there, else a masked broadcast) and signed zeros too
          constexpr double kNan = std::numeric_limits<double>::quiet_NaN(), kInf = std::numeric_limits<double>::infinity();
          const double w[] = {0.25, -0.5, 0.0, 1.0 / 3, 2.5e-7, kNan, kInf, -0.0};
          const double special[] = {-0.0, kNan, 0.25, kInf, -0.5};
          p.weights.push_back(variant < 8 ? w[(k + static_cast<size_t>(variant)) % 8] : special[(k + static_cast<size_t>(variant)) % 5]);
        }
        // keep all, none, or the elements whose key reaches a random f32 variance pattern
        const uint64_t cuts[] = {0, wm::kRankKeyNone, (uint64_t{r.next() % 0x7F800000u} << p.indexBits)};
        for (uint64_t cut : cuts) {
          p.cut = cut;
          for (Dtype to : all) {
            std::vector<unsigned char> outS(n * wm::dtypeSize(to) + 3, 0xA5), outV = outS, outW = outS;
            wm::setSimdEnabled(false);
            wm::sceMerge(srcs, types, p, count, start, n, outS.data() + 1, to);
            wm::setSimdEnabled(true);
            // the 4-lane loops alone, then with the 8-lane ones where the CPU has AVX-512 (sce_avx512.h)
            withAvx512(false, [&] { wm::sceMerge(srcs, types, p, count, start, n, outV.data() + 1, to); });
            wm::sceMerge(srcs, types, p, count, start, n, outW.data() + 1, to);
            digestBytes(outV.data(), outV.size());
            CHECK(outS == outV, "sceMerge %s->%s n=%zu m=%zu variant %d cut %016llx: SIMD != scalar", dtypeName(t), dtypeName(to), n, m, variant,
                  static_cast<unsigned long long>(cut));
            CHECK(outS == outW, "sceMerge %s->%s n=%zu m=%zu variant %d cut %016llx: AVX-512 != scalar", dtypeName(t), dtypeName(to), n, m, variant,
                  static_cast<unsigned long long>(cut));
            ++cases;
          }
        }
      }
    }
  }
  std::printf("sce: %zu cases\n", cases);
  testSceChunks(seed);
  testSceSumPieces(seed);
  testSceCutWindow(seed);
  testScePairVariance(seed);
}
