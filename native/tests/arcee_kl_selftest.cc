// The self-test of arcee_fusion's row KLs equal in effect (kernels/arcee_kl.h): the polynomial's log bounds around
// std::log on millions of ratios near 1 and at the range's edges, the term bounds scalar == AVX2 == AVX-512 bit for bit,
// and on random rows (every dtype pair, specials, rows of 1 to thousands of elements, nearly equal rows whose heavy
// cancellation leaves an importance open) the KL arceeRowKls returns against the definition: the definition inside the
// bounds, the exact path equal to it bit for bit, the order keys and merges from the returned KL equal those from the
// definition's; both paths counted. Run by kernels_selftest.cc's main.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/arcee_fusion.h"
#include "kernels/arcee_fusion_rows.h"
#include "kernels/arcee_kl.h"
#include "kernels/element_io.h"
#include "tests/arcee_row_definition.h"
#include "tests/selftest_support.h"

namespace {

bool sameBits(const void* x, const void* y, size_t bytes) { return std::memcmp(x, y, bytes) == 0; }

int64_t bitsOf(double x) {
  int64_t b;
  std::memcpy(&b, &x, 8);
  return b;
}

// How many doubles lie from x up to y (x <= y, both finite, same sign or zero).
int64_t stepsUp(double x, double y) { return x >= 0 ? bitsOf(y) - bitsOf(x) : bitsOf(x) - bitsOf(y); }

// lo, hi of the term bounds on every path: scalar, AVX2 (4 lanes), AVX-512 where the CPU has it; CHECKs they agree (the
// arrays where the row is bounded); returns whether it is (false: far from 1, the exact path's).
bool termsEverywhere(const double* p, const double* r, size_t n, double* lo, double* hi) {
  const bool bounded = wm::scalar::arceeKlTerms(p, r, n, lo, hi);
  if (std::strcmp(wm::simdPathName(), "scalar") == 0) return bounded;
  std::vector<double> l(n), h(n);
  for (bool wide : {false, true}) {
    bool simd = false;
    withAvx512(wide, [&] { simd = wm::avx2::arceeKlTerms(p, r, n, l.data(), h.data()); });
    CHECK(simd == bounded && (!bounded || (sameBits(lo, l.data(), 8 * n) && sameBits(hi, h.data(), 8 * n))), "arceeKlTerms%s n=%zu: SIMD != scalar",
          wide ? " (AVX-512)" : "", n);
  }
  return bounded;
}

// The polynomial's bounds (p = 1: the terms are the log bounds themselves) around std::log on ratios spanning the range:
// uniform in |r - 1| up to 2^-6, log-uniform down to 2^-53, the edges (1 +- 2^-6, their neighbours outside), 1 itself.
void testLogBounds(Rng& rng) {
  const size_t n = 1 << 22;
  std::vector<double> r(n), p(n, 1.0), lo(n), hi(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t u = rng.next();
    const double sign = u & 1 ? 1.0 : -1.0;
    const double unit = static_cast<double>(u >> 11) * 0x1p-53;
    // The range's edges and their neighbours (outside: the block's exact log), the smallest |r - 1|, r = 1.
    static const double edges[] = {0x1p-6, 0x1p-6 - 0x1p-52, 0x1p-6 + 0x1p-52, 0x1p-6 + 0x1p-30, 0x1p-52, 0x1p-53, 0x3p-53, 0.0};
    const uint64_t kind = (u >> 1) % 64;
    double x = sign * unit * wm::kArceeNearOne;                                                  // uniform up to 2^-6
    if (kind < 12) x = sign * std::ldexp(1.0 + unit, -7 - static_cast<int>((u >> 8) % 46));      // 2^-53 .. 2^-6
    if (kind == 12) x = sign * edges[(u >> 8) % (sizeof edges / sizeof edges[0])];
    r[i] = 1.0 + x;  // rounded: r is what the kernel sees, x = r - 1 exactly
  }
  // In rows of 64 (a row with kArceeFarBlocks blocks outside the range is the exact path's: its terms are not bounds).
  const size_t row = 64;
  std::vector<bool> bounded(n / row);
  for (size_t i = 0; i < n; i += row) bounded[i / row] = termsEverywhere(p.data() + i, r.data() + i, row, lo.data() + i, hi.data() + i);
  int64_t leastSlack = INT64_MAX;
  size_t polynomial = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!bounded[i / row]) continue;
    const double ref = std::log(r[i]);
    CHECK(lo[i] <= ref && ref <= hi[i], "log bounds of r = %a: [%a, %a] misses std::log %a", r[i], lo[i], hi[i], ref);
    if (lo[i] == hi[i]) continue;  // the exact log (a block with an element outside the range, or r = 1)
    ++polynomial;
    if (lo[i] <= ref && ref <= hi[i]) leastSlack = std::min({leastSlack, stepsUp(lo[i], ref), stepsUp(ref, hi[i])});
  }
  // The polynomial's log (kArceeLogSteps patterns from each bound) within 2 patterns of std::log: well inside the proof's margin.
  CHECK(polynomial > n / 2 && leastSlack >= wm::kArceeLogSteps - 2, "log bounds: %zu polynomial lanes, least slack %lld patterns", polynomial,
        static_cast<long long>(leastSlack));
  std::printf("arcee_fusion KL: %zu ratios near 1, std::log within the bounds (%zu by the polynomial, at least %lld of %lld patterns to spare)\n", n,
              polynomial, static_cast<long long>(leastSlack), static_cast<long long>(wm::kArceeLogSteps));
  digestBytes(lo.data(), 8 * n);
  digestBytes(hi.data(), 8 * n);
}

// Terms of random p and r, specials among them (NaN, +-Inf, 0, negatives, subnormals, 1): scalar == SIMD, and each
// term's bounds around RN(p log r) where p > 0.
void testTermBounds(Rng& rng) {
  static const double special[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, -1.0, 0x1p-1074, 1.0, 1e-8, 2.0, 0.5};
  size_t cases = 0, far = 0;
  for (size_t n : {1, 3, 7, 8, 9, 15, 16, 17, 100, 1027}) {
    for (int round = 0; round < 40; ++round) {
      std::vector<double> p(n), r(n), lo(n), hi(n);
      for (size_t i = 0; i < n; ++i) {
        const uint64_t u = rng.next();
        const double unit = static_cast<double>(u >> 11) * 0x1p-53;
        p[i] = u % 97 == 0 ? special[(u >> 8) % 11] : 1e-8 + unit * 0.01;
        r[i] = u % 89 == 1 ? special[(u >> 16) % 11] : 1.0 + (unit - 0.5) * (round % 4 == 0 ? 0.5 : 0x1p-5);
      }
      ++cases;
      if (!termsEverywhere(p.data(), r.data(), n, lo.data(), hi.data())) {
        ++far;
        continue;
      }
      for (size_t i = 0; i < n; ++i) {
        volatile double term = p[i] * std::log(r[i]);  // rounded on its own
        if (p[i] > 0 && !std::isnan(term)) CHECK(lo[i] <= term && term <= hi[i], "term bounds p %a r %a: [%a, %a] misses %a", p[i], r[i], lo[i], hi[i], term);
        if (!(p[i] > 0) || std::isnan(term)) CHECK(sameBits(&lo[i], &hi[i], 8), "term bounds p %a r %a: not the exact term", p[i], r[i]);
      }
      digestBytes(lo.data(), 8 * n);
    }
  }
  CHECK(far > 0 && far < cases, "term bounds: %zu of %zu arrays far from 1", far, cases);
  std::printf("arcee_fusion KL: %zu arrays of terms, SIMD == scalar, bounds around p log r (%zu far from 1: the exact path's)\n", cases, far);
}

// A tensor of `rows` rows: the base ordinary values (a few specials where `specials`), the model the base plus noise of
// amplitude `noise` (0: equal rows), both rounded to their dtypes; nearly equal rows cancel heavily in the KL's sum.
void nearRows(Rng& rng, Dtype ta, Dtype tb, size_t n, double noise, bool specials, std::vector<unsigned char>& a, std::vector<unsigned char>& b) {
  a = randomTensor(rng, ta, n);
  b = randomTensor(rng, tb, n);
  auto set = [](std::vector<unsigned char>& v, Dtype t, size_t i, float x) {
    const uint32_t bits = t == Dtype::F32 ? wm::num::f32Bits(x) : t == Dtype::BF16 ? wm::num::f32ToBF16(x) : wm::num::f32ToF16(x);
    std::memcpy(v.data() + i * wm::dtypeSize(t), &bits, wm::dtypeSize(t));
  };
  for (size_t i = 0; i < n; ++i) {
    if (specials && rng.next() % 97 == 0) continue;  // the random patterns stay: NaN, +-Inf, zeros, subnormals
    const double unit = static_cast<double>(rng.next() >> 11) * 0x1p-53;
    const float x = static_cast<float>((unit - 0.5) * 6.0);
    set(a, ta, i, x);
    const float y = static_cast<float>(wm::loadElementF32(a.data(), ta, i) + (static_cast<double>(rng.next() >> 11) * 0x1p-53 - 0.5) * 2 * noise);
    set(b, tb, i, y);
  }
}

// arceeRowKls on random tensors against the definition, on every path (scalar, AVX2, AVX-512): the same KLs bit for bit on
// each; per row, the definition inside arceeKlBounds' interval, arceeExactKl equal to it, and the order keys and merge from
// the returned KL equal those from the definition's. Counts the rows of each path (arcee_kl.h's counters) and checks both ran.
void testRowKls(Rng& rng) {
  const Dtype all[] = {Dtype::F32, Dtype::F16, Dtype::BF16};
  wm::ArceeKlCounts& counts = wm::arceeKlCounts();
  const uint64_t rows0 = counts.rows.load(), exact0 = counts.exact.load(), far0 = counts.far.load();
  size_t checked = 0, differing = 0, opened = 0;
  for (size_t L : {1, 2, 7, 8, 9, 64, 129, 1027, 4099}) {
    for (Dtype ta : all) {
      for (Dtype tb : all) {
        for (double noise : {0.0, 0x1p-20, 0x1p-12, 0x1p-8, 0x1p-5, 1.0}) {
          for (bool specials : {false, true}) {
            const size_t rows = 6, n = rows * L;
            std::vector<unsigned char> a, b;
            nearRows(rng, ta, tb, n, noise, specials, a, b);
            const void* srcs[2] = {a.data(), b.data()};
            const Dtype types[2] = {ta, tb};
            wm::ArceeParams params;
            params.rowLength = L;
            params.model = 1;
            std::vector<double> kl(rows), klOther(rows);
            wm::setSimdEnabled(false);
            wm::arceeRowKls(srcs, types, params, n, kl.data());
            wm::setSimdEnabled(true);
            for (bool wide : {false, true}) {
              withAvx512(wide, [&] { wm::arceeRowKls(srcs, types, params, n, klOther.data()); });
              CHECK(sameBits(kl.data(), klOther.data(), 8 * rows), "arceeRowKls%s %s/%s L=%zu noise %g: SIMD != scalar", wide ? " (AVX-512)" : "", dtypeName(ta),
                    dtypeName(tb), L, noise);
            }
            // A NaN KL's sign is how the compiler ordered two NaN operands (it differs between -O1 and -O3, same source): digested as one NaN.
            for (double v : kl) {
              const double d = std::isnan(v) ? std::numeric_limits<double>::quiet_NaN() : v;
              digestBytes(&d, sizeof d);
            }
            std::vector<double> p(L), r(L), lo(L), hi(L);
            std::vector<uint32_t> keys(L), keysDef(L);
            std::vector<unsigned char> out(4 * n), outDef(4 * n);
            for (size_t row = 0; row < rows; ++row) {
              const double def = arceeRowKlDefinition(a.data(), ta, b.data(), tb, row * L, L, p.data(), r.data());
              const double exact = wm::arceeExactKl(p.data(), r.data(), L, lo.data());
              CHECK(sameBits(&exact, &def, 8) || (std::isnan(exact) && std::isnan(def)), "arceeExactKl %s/%s L=%zu: %a, its definition %a", dtypeName(ta),
                    dtypeName(tb), L, exact, def);
              double klLo = NAN, klHi = NAN;
              const bool near = wm::arceeKlBounds(p.data(), r.data(), L, lo.data(), hi.data(), klLo, klHi);
              const bool bounded = near && std::isfinite(klLo) && std::isfinite(klHi);
              if (bounded) {
                CHECK(klLo <= def && def <= klHi, "row KL bounds %s/%s L=%zu noise %g: [%a, %a] misses the definition %a", dtypeName(ta), dtypeName(tb), L, noise,
                      klLo, klHi, def);
              }
              // An importance the bounds leave open, or no finite bounds: the exact path, the definition's bits.
              const bool open = bounded && !wm::scalar::arceeSameImportances(a.data(), ta, b.data(), tb, row * L, L, klLo, klHi);
              if (open || !bounded) {
                CHECK(sameBits(&kl[row], &def, 8) || (std::isnan(kl[row]) && std::isnan(def)), "row KL %s/%s L=%zu noise %g row %zu: %a, not the exact %a", dtypeName(ta),
                      dtypeName(tb), L, noise, row, kl[row], def);
              }
              opened += open;
              // The returned KL equal in effect: the same order keys and the same merge (threshold: the row's middle key) as the definition's.
              wm::scalar::arceeKeys(a.data(), ta, b.data(), tb, row * L, L, kl[row], keys.data());
              wm::scalar::arceeKeys(a.data(), ta, b.data(), tb, row * L, L, def, keysDef.data());
              CHECK(keys == keysDef, "row KL %s/%s L=%zu noise %g row %zu: %a (definition %a) changes an order key", dtypeName(ta), dtypeName(tb), L, noise, row,
                    kl[row], def);
              std::vector<uint32_t> sorted = keysDef;
              std::nth_element(sorted.begin(), sorted.begin() + L / 2, sorted.end());
              const uint32_t mid = sorted[L / 2];
              const float threshold = wm::num::f32FromBits(mid >= 0x80000000u ? mid - 0x80000000u : ~mid);
              wm::scalar::arceeMergeRow(a.data(), ta, b.data(), tb, row * L, L, kl[row], threshold, out.data(), Dtype::F32);
              wm::scalar::arceeMergeRow(a.data(), ta, b.data(), tb, row * L, L, def, threshold, outDef.data(), Dtype::F32);
              CHECK(out == outDef, "row KL %s/%s L=%zu noise %g row %zu: the merge differs from the definition's", dtypeName(ta), dtypeName(tb), L, noise, row);
              differing += std::isfinite(def) && !sameBits(&kl[row], &def, 8);
              ++checked;
            }
          }
        }
      }
    }
  }
  const uint64_t rows = counts.rows.load() - rows0, exact = counts.exact.load() - exact0, far = counts.far.load() - far0;
  // Both paths ran: KLs equal in effect (not the definition's bits) and rows computed exactly (specials, open importances).
  CHECK(differing > 0 && opened > 0 && far > 0 && exact > far && exact < rows,
        "row KLs: %llu rows, %llu exact (%llu far from 1), %zu with an open importance, %zu not the definition's bits", static_cast<unsigned long long>(rows),
        static_cast<unsigned long long>(exact), static_cast<unsigned long long>(far), opened, differing);
  std::printf("arcee_fusion KL: %zu rows against the definition (%llu computed, %llu exactly: %llu far from 1, %zu with an importance the bounds leave open; %zu "
              "KLs equal in effect, not in bits)\n", checked, static_cast<unsigned long long>(rows), static_cast<unsigned long long>(exact),
              static_cast<unsigned long long>(far), opened, differing);
}

}  // namespace

void testArceeKl(uint64_t seed) {
  Rng rng(seed ^ 0xA4CEE1u);
  testLogBounds(rng);
  testTermBounds(rng);
  testRowKls(rng);
}
