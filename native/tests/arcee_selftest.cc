// The self-test of arcee_fusion's per-element arithmetic (kernels/arcee_fusion_rows.h): SIMD == scalar bit for bit
// on random rows salted with special values (NaN, ±Inf, ±0, subnormals, rows of one element, mixed dtypes), and
// each row's KL against its definition written out as the kernel first computed it (one loop of std::exp, one of
// std::log, serial sums): equal, or equal in effect (the same order keys; kernels/arcee_kl.h); run by kernels_selftest.cc's main.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/arcee_fusion.h"
#include "kernels/arcee_fusion_exps.h"
#include "kernels/arcee_fusion_rows.h"
#include "kernels/cpu_backends.h"
#include "kernels/element_io.h"
#include "tests/arcee_row_definition.h"
#include "tests/selftest_support.h"

namespace {

bool sameBits(const void* x, const void* y, size_t bytes) { return std::memcmp(x, y, bytes) == 0; }

// The same KL: equal bits, or both NaN (a NaN's sign is whichever operand the compiler puts first in an add, as
// free to commute; never seen downstream: every NaN importance has one order key and keeps nothing).
bool sameKl(double x, double y) { return sameBits(&x, &y, 8) || (std::isnan(x) && std::isnan(y)); }

// Rows mostly of ordinary values (so that KLs are finite), with the random patterns (specials) in some; zeros as the max.
std::vector<unsigned char> rowValues(Rng& r, Dtype t, size_t n, int variant) {
  std::vector<unsigned char> v = randomTensor(r, t, n);
  if (variant == 0) return v;  // specials everywhere
  for (size_t i = 0; i < n; ++i) {
    if (variant == 1 && r.next() % 64 == 0) continue;  // a few specials
    const float x = variant == 3 ? (r.next() % 2 ? 0.0f : -0.0f) - static_cast<float>(r.next() % 4) : static_cast<float>(static_cast<int>(r.next() % 2001) - 1000) / 256.0f;
    const uint32_t b = t == Dtype::F32 ? wm::num::f32Bits(x) : t == Dtype::BF16 ? wm::num::f32ToBF16(x) : wm::num::f32ToF16(x);
    std::memcpy(v.data() + i * wm::dtypeSize(t), &b, wm::dtypeSize(t));
  }
  return v;
}

// Sets element j of a 16-bit or f32 tensor to the value x (rounded to the dtype).
void setValue(std::vector<unsigned char>& v, Dtype t, size_t j, float x) {
  const uint32_t b = t == Dtype::F32 ? wm::num::f32Bits(x) : t == Dtype::BF16 ? wm::num::f32ToBF16(x) : wm::num::f32ToF16(x);
  std::memcpy(v.data() + j * wm::dtypeSize(t), &b, wm::dtypeSize(t));
}

using ExpMode = wm::ArceeExpMemo::Mode;

const char* modeName(ExpMode m) {
  return m == ExpMode::direct ? "direct" : m == ExpMode::oneTable ? "one table" : m == ExpMode::tablePerMax ? "a table per max" : "cheapest";
}

// How many times the max changes along the rows' order (the one table's refills).
size_t changesOf(const std::vector<size_t>& order, const std::vector<double>& maxes) {
  size_t changes = 0;
  for (size_t i = 0; i < order.size(); ++i) changes += i == 0 || !sameBits(&maxes[order[i]], &maxes[order[i - 1]], 8);
  return changes;
}

// The memo's exps (arcee_fusion_exps.h) in each mode against the direct path, std::exp(double(x_j) - max) with the scalar
// row max, bit for bit (NaN payloads too), on rows that share their max (few maxes) or mostly have their own (many), rows
// of specials (max +Inf, -Inf: all NaN or -Inf, -0 and +0 first), subnormals, each row twice, in a shuffled order (a
// table kept across a change of max, or a wrong max's table, would show) and sorted by max (each max's rows together),
// through memos prepared for the whole tensor: one forced into each mode (direct for f32 whatever is asked) and one
// choosing for itself.
void testArceeExpMemo(Rng& r) {
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  const ExpMode modes[] = {ExpMode::direct, ExpMode::oneTable, ExpMode::tablePerMax, ExpMode::cheapest};
  size_t rowsChecked = 0;
  wm::ArceeExpMemo memos[4];
  for (size_t L : {1, 2, 5, 64, 1027}) {
    for (Dtype t : all) {
      for (bool manyMaxes : {false, true}) {
        const size_t rows = 24, n = rows * L;
        std::vector<unsigned char> v = rowValues(r, t, n, 2);
        for (size_t row = 0; row < rows; ++row) {
          const size_t r0 = row * L;
          const float shared = manyMaxes ? 6.0f + 0.25f * static_cast<float>(row) : 6.0f;
          switch (row % 12) {
            case 0: case 1: case 2: case 3: setValue(v, t, r0 + (row % L), shared); break;  // max 6 (or a larger value's), shared unless many
            case 4: break;                                                                 // its own max
            case 5: for (size_t j = 0; j < L; ++j) setValue(v, t, r0 + j, j % 3 ? -1.5f : NAN); break;  // NaN beside the max
            case 6: for (size_t j = 0; j < L; ++j) setValue(v, t, r0 + j, NAN); break;                  // max -Inf (all NaN)
            case 7: for (size_t j = 0; j < L; ++j) setValue(v, t, r0 + j, j % 2 ? -INFINITY : NAN); break;  // max -Inf
            case 8: setValue(v, t, r0 + L / 2, INFINITY); break;                                        // max +Inf
            case 9: for (size_t j = 0; j < L; ++j) setValue(v, t, r0 + j, j == 0 ? -0.0f : j % 2 ? 0.0f : -1e-40f); break;  // max -0, subnormals
            case 10: for (size_t j = 0; j < L; ++j) setValue(v, t, r0 + j, j == 0 ? 0.0f : j % 2 ? -0.0f : -3.0f); break;  // max +0
            default: { const std::vector<unsigned char> specials = randomTensor(r, t, L); std::memcpy(v.data() + r0 * wm::dtypeSize(t), specials.data(), L * wm::dtypeSize(t)); }
          }
        }
        std::vector<double> maxes(rows);
        for (size_t row = 0; row < rows; ++row) maxes[row] = wm::scalar::arceeRowMax(v.data(), t, row * L, L);
        for (bool sorted : {false, true}) {
          // Each row twice: shuffled (repeats of a max, then a change of max, back and forth), or sorted by max's bits.
          std::vector<size_t> order;
          for (size_t row = 0; row < 2 * rows; ++row) order.push_back(row % rows);
          for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[r.next() % i]);
          if (sorted) {
            std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return wm::num::f32Bits(static_cast<float>(maxes[x])) < wm::num::f32Bits(static_cast<float>(maxes[y])); });
          }
          for (size_t k = 0; k < 4; ++k) {
            memos[k].prepare(v.data(), t, n, maxes.data(), rows, changesOf(order, maxes), modes[k]);
            const bool forcedRight = modes[k] == ExpMode::cheapest ? memos[k].mode() != ExpMode::cheapest : memos[k].mode() == (wm::arceeExpMemoizable(t) ? modes[k] : ExpMode::direct);
            CHECK(forcedRight, "ArceeExpMemo %s asked for %s: %s", dtypeName(t), modeName(modes[k]), modeName(memos[k].mode()));
          }
          std::vector<double> x(L), truth(L), exps(L), scratch(L);
          for (size_t row : order) {
            const double m = maxes[row];
            wm::scalar::arceeShiftedRow(v.data(), t, row * L, L, m, x.data());
            for (size_t j = 0; j < L; ++j) truth[j] = std::exp(x[j]);
            for (wm::ArceeExpMemo& memo : memos) {
              std::fill(exps.begin(), exps.end(), 0.5);
              memo.rowExps(v.data(), t, row * L, L, m, exps.data(), scratch.data());
              CHECK(sameBits(truth.data(), exps.data(), 8 * L), "ArceeExpMemo %s (%s) L=%zu row %zu (max %g)%s%s: != std::exp of the direct path", dtypeName(t), modeName(memo.mode()), L, row,
                    m, manyMaxes ? ", many maxes" : "", sorted ? ", sorted" : "");
            }
            digestBytes(exps.data(), 8 * L);
            ++rowsChecked;
          }
        }
      }
    }
  }
  std::printf("arcee_fusion: %zu rows' exps through the memo's modes == std::exp (one table: %llu computed for %llu looked up; a table per max: %llu for %llu)\n", rowsChecked,
              static_cast<unsigned long long>(memos[1].computed), static_cast<unsigned long long>(memos[1].looked), static_cast<unsigned long long>(memos[2].computed),
              static_cast<unsigned long long>(memos[2].looked));
}

// The memo's own choice: a table per max where the max changes more often than it has values, one table where each max's
// rows come together, the direct path where either would compute more exps than half the elements, and never for f32.
void testArceeExpChoice(Rng& r) {
  const size_t L = 1024, rows = 64, n = rows * L;
  for (Dtype t : {Dtype::F16, Dtype::BF16, Dtype::F32}) {
    std::vector<unsigned char> few(n * wm::dtypeSize(t)), many = randomTensor(r, t, n);
    for (size_t j = 0; j < n && wm::dtypeSize(t) == 2; ++j) std::memcpy(many.data() + 2 * j, &j, 2);  // every 16-bit pattern once (little-endian)
    for (size_t j = 0; j < n; ++j) setValue(few, t, j, static_cast<float>(r.next() % 16) * -0.125f);
    for (size_t row = 0; row < rows; ++row) setValue(few, t, row * L, row % 2 ? 1.0f : 2.0f);  // two maxes, alternating
    std::vector<double> maxes(rows);
    for (size_t row = 0; row < rows; ++row) maxes[row] = wm::scalar::arceeRowMax(few.data(), t, row * L, L);
    const bool memoizable = wm::arceeExpMemoizable(t);
    wm::ArceeExpMemo memo;
    memo.prepare(few.data(), t, n, maxes.data(), rows, rows, ExpMode::cheapest);  // in the rows' order: 64 changes of 2 maxes
    CHECK(memo.mode() == (memoizable ? ExpMode::tablePerMax : ExpMode::direct), "ArceeExpMemo %s, 2 maxes changing 64 times: %s", dtypeName(t), modeName(memo.mode()));
    memo.prepare(few.data(), t, n, maxes.data(), rows, 2, ExpMode::cheapest);  // sorted by max: 2 changes
    CHECK(memo.mode() == (memoizable ? ExpMode::oneTable : ExpMode::direct), "ArceeExpMemo %s, 2 maxes changing twice: %s", dtypeName(t), modeName(memo.mode()));
    for (size_t row = 0; row < rows; ++row) maxes[row] = wm::scalar::arceeRowMax(many.data(), t, row * L, L);
    memo.prepare(many.data(), t, n, maxes.data(), rows, rows, ExpMode::cheapest);  // n patterns: a table costs n exps
    CHECK(memo.mode() == ExpMode::direct, "ArceeExpMemo %s, every pattern: %s", dtypeName(t), modeName(memo.mode()));
  }
  std::printf("arcee_fusion: the exps' memo chooses a table per max, one table or the direct path as it should\n");
}

}  // namespace

void testArcee(uint64_t seed) {
  {
    Rng r(seed ^ 0xE4B3E);
    testArceeExpMemo(r);
    testArceeExpChoice(r);
  }
  if (std::strcmp(wm::simdPathName(), "scalar") == 0) {
    std::printf("arcee_fusion: no SIMD path on this CPU, nothing to compare\n");
    return;
  }
  Rng r(seed ^ 0xA4CEE);
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  size_t cases = 0;
  for (size_t L : {1, 2, 3, 4, 5, 7, 8, 64, 129, 1027}) {
    for (Dtype ta : all) {
      for (Dtype tb : all) {
        for (int variant = 0; variant < 4; ++variant) {
          const size_t rows = 3, n = rows * L;
          const std::vector<unsigned char> a = rowValues(r, ta, n, variant), b = rowValues(r, tb, n, variant == 3 ? 2 : variant);
          const void* srcs[2] = {a.data(), b.data()};
          const Dtype types[2] = {ta, tb};
          // Row shifts, ratios and the row KLs through the histogram pass, scalar and SIMD, against the definition.
          std::vector<double> xS(L), xV(L), pS(L), pV(L), rS(L), rV(L), klS(rows), klV(rows);
          for (size_t row = 0; row < rows; ++row) {
            for (int k = 0; k < 2; ++k) {
              const double mS = wm::scalar::arceeRowMax(srcs[k], types[k], row * L, L);
              double mV = 0;
              for (bool wide : {true, false}) {  // the 8-lane loop where the CPU has AVX-512, then the 4-lane one (whose mV goes on)
                withAvx512(wide, [&] { mV = wm::avx2::arceeRowMax(srcs[k], types[k], row * L, L); });
                CHECK(sameBits(&mS, &mV, 8), "arceeRowMax%s %s L=%zu variant %d: SIMD %g != scalar %g", wide ? " (AVX-512)" : "", dtypeName(types[k]), L,
                      variant, mV, mS);
              }
              wm::scalar::arceeShiftedRow(srcs[k], types[k], row * L, L, mS, xS.data());
              wm::avx2::arceeShiftedRow(srcs[k], types[k], row * L, L, mV, xV.data());
              CHECK(sameBits(xS.data(), xV.data(), 8 * L), "arceeShiftedRow %s L=%zu variant %d: SIMD != scalar", dtypeName(types[k]), L, variant);
            }
            const double sa = 1.0 + static_cast<double>(row), sb = 0.75;
            wm::scalar::arceeRatios(xS.data(), sa, xV.data(), sb, L, pS.data(), rS.data());
            for (bool wide : {false, true}) {  // the 4-lane loop, and the 8-lane one where the CPU has AVX-512
              std::fill(pV.begin(), pV.end(), 0.0);
              std::fill(rV.begin(), rV.end(), 0.0);
              withAvx512(wide, [&] { wm::avx2::arceeRatios(xS.data(), sa, xV.data(), sb, L, pV.data(), rV.data()); });
              CHECK(sameBits(pS.data(), pV.data(), 8 * L) && sameBits(rS.data(), rV.data(), 8 * L), "arceeRatios%s L=%zu variant %d: SIMD != scalar",
                    wide ? " (AVX-512)" : "", L, variant);
            }
          }
          wm::ArceeStat s;
          s.rows.rowLength = L;
          s.rows.model = 1;
          s.bits = 12;
          s.shift = 20;
          std::vector<uint64_t> histS(3 << 12), histV(3 << 12);
          wm::setSimdEnabled(false);
          wm::arceeHistogram(srcs, types, s, 0, n, histS.data(), klS.data());
          wm::setSimdEnabled(true);
          wm::arceeHistogram(srcs, types, s, 0, n, histV.data(), klV.data());
          CHECK(histS == histV && sameBits(klS.data(), klV.data(), 8 * rows), "arceeHistogram %s/%s L=%zu variant %d: SIMD != scalar", dtypeName(ta), dtypeName(tb), L, variant);
          // Each row's KL is its definition or one equal in effect (kernels/arcee_kl.h): the same order keys (arcee_kl_selftest.cc checks the rest).
          for (size_t row = 0; row < rows; ++row) {
            const double def = arceeRowKlDefinition(a.data(), ta, b.data(), tb, row * L, L);
            std::vector<uint32_t> keysDef(L), keysKl(L);
            wm::scalar::arceeKeys(a.data(), ta, b.data(), tb, row * L, L, def, keysDef.data());
            wm::scalar::arceeKeys(a.data(), ta, b.data(), tb, row * L, L, klS[row], keysKl.data());
            CHECK(sameKl(def, klS[row]) || keysDef == keysKl, "row KL %s/%s L=%zu variant %d row %zu: %.17g, its definition %.17g, other keys", dtypeName(ta), dtypeName(tb), L,
                  variant, row, klS[row], def);
          }
          // Order keys and the merge (every output dtype, thresholds around the keys', NaN and ±Inf), from an odd first element too.
          const size_t j0 = n > 5 ? 3 : 0, len = n - j0;
          for (double kl : {klS[0], klS[rows - 1], 0.0, 1.5, -0.0, static_cast<double>(NAN), static_cast<double>(INFINITY)}) {
            std::vector<uint32_t> keyS(len), keyV(len);
            wm::scalar::arceeKeys(a.data(), ta, b.data(), tb, j0, len, kl, keyS.data());
            for (bool wide : {false, true}) {  // the 4-lane loop, and the 8-lane one where the CPU has AVX-512
              std::fill(keyV.begin(), keyV.end(), 0);
              withAvx512(wide, [&] { wm::avx2::arceeKeys(a.data(), ta, b.data(), tb, j0, len, kl, keyV.data()); });
              CHECK(keyS == keyV, "arceeKeys%s %s/%s n=%zu kl %g: SIMD != scalar", wide ? " (AVX-512)" : "", dtypeName(ta), dtypeName(tb), len, kl);
            }
            digestBytes(keyV.data(), 4 * len);
            const float median = wm::num::f32FromBits(keyS[len / 2] >= 0x80000000u ? keyS[len / 2] - 0x80000000u : ~keyS[len / 2]);
            for (float threshold : {median, 0.0f, -0.0f, static_cast<float>(NAN), INFINITY, -INFINITY, 1e-30f}) {
              for (Dtype to : all) {
                std::vector<unsigned char> outS(n * wm::dtypeSize(to)), outV(n * wm::dtypeSize(to));
                wm::scalar::arceeMergeRow(a.data(), ta, b.data(), tb, j0, len, kl, threshold, outS.data(), to);
                for (bool wide : {false, true}) {  // the 4-lane loop, and the 8-lane one where the CPU has AVX-512
                  std::fill(outV.begin(), outV.end(), 0);
                  withAvx512(wide, [&] { wm::avx2::arceeMergeRow(a.data(), ta, b.data(), tb, j0, len, kl, threshold, outV.data(), to); });
                  CHECK(outS == outV, "arceeMergeRow%s %s/%s -> %s n=%zu kl %g threshold %g: SIMD != scalar", wide ? " (AVX-512)" : "", dtypeName(ta), dtypeName(tb), dtypeName(to), len, kl, threshold);
                }
                digestBytes(outV.data(), outV.size());
                ++cases;
              }
            }
          }
        }
      }
    }
  }
  std::printf("arcee_fusion: %zu merge cases, SIMD == scalar, row KLs equal (in effect) to their definition\n", cases);
}
