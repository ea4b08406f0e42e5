// arcee_fusion's row KLs equal in effect (arcee_kl.h): the terms' bounds (scalar truth), their sums, the row check.
#include "arcee_kl.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "arcee_fusion_rows.h"
#include "cpu_backends.h"
#include "exact_exp_log.h"
#include "numerics.h"

namespace wm {
namespace {

// Why lo <= std::log(1 + x) <= hi for x != 0, |x| <= 2^-6 (x = r - 1 is exact there: Sterbenz, r in [1/2, 2]).
// Let u = 2^-53 and Q(x) = sum_k q_k x^k the exact Taylor tail, log1p(x) = x + x^2 Q(x) + T.
//  - Truncation: |T| <= |x|^11 / (11 (1 - |x|)) <= 0.05 * 2^-59 |x|.
//  - Horner (one FMA per step, coefficients within u relative): the step before last, |q1| <= 0.34, is within 0.71 u;
//    the last step's value lies in [0.494, 0.506], so its rounding is <= u/2 and |x| * 0.71 u <= 0.012 u adds:
//    the computed Q is within 1.04 u relative of Q.
//  - x^2 rounded: within u relative. So x^2 Q as the final FMA sees it is within 2.04 u relative, i.e. within
//    2.04 u * 2^-6 * 0.506 |x| <= 1.04 * 2^-59 |x| absolute; the FMA adds x exactly and rounds once (<= u |L'|).
//  So |L' - log r| <= u |L'| + 1.09 * 2^-59 |log r| (|log1p x| >= 0.992 |x|). glibc's log is within 0.52 ulp (documented;
//  exact_exp_log.h trusts the same); allowing it a full ulp, 2 u |log r|, the two logs differ by at most 3.1 u |L'|.
//  N bit patterns away from L' (same sign, |L'| >= 2^-53: far from zero and from the next binade's edge by any count
//  that matters) lie at least N * u/2 |L'| away (the patterns below a power of two are half as far apart): N = 8 gives
//  4 u |L'| > 3.1 u |L'|, the proof needs N >= 7 with a full ulp for glibc, 5 with its documented 0.52.
// Then RN(p lo) <= RN(p log r) <= RN(p hi) for p > 0: rounding is monotone.
inline void polynomialLogBounds(double x, double& lo, double& hi) {
  double q = kArceeLog1pQ[8];
  for (int k = 7; k >= 0; --k) q = std::fma(x, q, kArceeLog1pQ[k]);
  const double l = std::fma(num::mulRn(x, x), q, x);
  int64_t bits;
  std::memcpy(&bits, &l, 8);
  const int64_t step = l < 0 ? -kArceeLogSteps : kArceeLogSteps;  // toward -Inf first: a negative value's bits grow downward
  const int64_t down = bits - step, up = bits + step;
  std::memcpy(&lo, &down, 8);
  std::memcpy(&hi, &up, 8);
}

inline bool sameBits(double x, double y) { return std::memcmp(&x, &y, 8) == 0; }

inline bool nearOne(double p, double r) { return p > 0 && std::fabs(r - 1.0) <= kArceeNearOne; }

// kl[k] = the sum in element order of RN(p[k L + j] * logs[k L + j]) for R rows side by side (each row's chain of adds serial,
// each product rounded on its own; the rows' chains interleaved): the exact KL, as the reference computes it.
template <size_t R>
void productSums(const double* p, const double* logs, uint64_t L, double* kl) {
  double s[R] = {};
  for (uint64_t j = 0; j < L; ++j) {
    for (size_t k = 0; k < R; ++k) s[k] += num::mulRn(p[k * L + j], logs[k * L + j]);
  }
  std::copy(s, s + R, kl);
}

// Both bounds' sums of R rows at once (2 R independent chains).
template <size_t R>
void boundSums(const double* lo, const double* hi, uint64_t L, double* klLo, double* klHi) {
  double sLo[R] = {}, sHi[R] = {};
  for (uint64_t j = 0; j < L; ++j) {
    for (size_t k = 0; k < R; ++k) {
      sLo[k] += lo[k * L + j];
      sHi[k] += hi[k * L + j];
    }
  }
  std::copy(sLo, sLo + R, klLo);
  std::copy(sHi, sHi + R, klHi);
}

template <size_t R>
void rowKlGroup(const void* a, Dtype ta, const void* b, Dtype tb, const size_t* r0, uint64_t L, const double* p, const double* r, double* lo,
                double* hi, double* kl) {
  bool bounded[R];
  size_t far = 0;
  for (size_t k = 0; k < R; ++k) {
    bounded[k] = arceeKlTerms(p + k * L, r + k * L, L, lo + k * L, hi + k * L);
    far += !bounded[k];  // its terms unfinished: the group's sums run over them all the same, unused
  }
  double klLo[R] = {}, klHi[R] = {};
  if (far < R) boundSums<R>(lo, hi, L, klLo, klHi);
  size_t exact = 0;
  bool settled[R];
  for (size_t k = 0; k < R; ++k) {
    // Equal bounds (every term exact) need no check: the same KL gives the same importances.
    settled[k] = bounded[k] && std::isfinite(klLo[k]) && std::isfinite(klHi[k]) &&
                 (sameBits(klLo[k], klHi[k]) || arceeSameImportances(a, ta, b, tb, r0[k], L, klLo[k], klHi[k]));
    if (!settled[k]) logArray(r + k * L, lo + k * L, L);
    exact += !settled[k];
  }
  // The exact rows' sums with the rows' chains interleaved (a settled row's chain runs over its terms, unused).
  double sums[R];
  if (exact) productSums<R>(p, lo, L, sums);
  for (size_t k = 0; k < R; ++k) kl[k] = settled[k] ? klLo[k] : sums[k];
  ArceeKlCounts& counts = arceeKlCounts();
  counts.rows.fetch_add(R, std::memory_order_relaxed);
  if (exact) counts.exact.fetch_add(exact, std::memory_order_relaxed);
  if (far) counts.far.fetch_add(far, std::memory_order_relaxed);
}

ArceeKlCounts countsOfProcess;  // constant-initialized, so it outlives the printer below

// WEIGHTMIX_ARCEE_KL_STATS=1: how many rows took the exact path, on stderr at exit (a diagnostic, off by default).
struct CountsAtExit {
  ~CountsAtExit() {
    if (!environmentSwitch("WEIGHTMIX_ARCEE_KL_STATS")) return;
    std::fprintf(stderr, "arcee_fusion row KLs: %llu rows, %llu exact (%llu of them far from their base)\n",
                 static_cast<unsigned long long>(countsOfProcess.rows.load()), static_cast<unsigned long long>(countsOfProcess.exact.load()),
                 static_cast<unsigned long long>(countsOfProcess.far.load()));
  }
} countsAtExit;

}  // namespace

namespace {

// p * log r alone (nothing to fuse it with), a NaN made the default quiet NaN: of two NaN operands (p NaN, r < 0) the
// product keeps the payload of whichever the compiler put first, so the scalar and SIMD paths would differ in its sign.
double exactTerm(double p, double logR) {
  const double t = num::mulRn(p, logR);
  return t == t ? t : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

void arceeExactTerms(const double* p, const double* r, size_t n, double* lo, double* hi) {
  logArray(r, lo, n);
  for (size_t j = 0; j < n; ++j) hi[j] = lo[j] = exactTerm(p[j], lo[j]);
}

bool scalar::arceeKlTerms(const double* p, const double* r, size_t n, double* lo, double* hi) {
  size_t far = 0;
  for (size_t i0 = 0; i0 < n; i0 += kArceeKlBlock) {
    const size_t end = std::min(n, i0 + kArceeKlBlock);
    bool near = true;
    for (size_t j = i0; j < end; ++j) near = near && nearOne(p[j], r[j]);
    if (!near && ++far == kArceeFarBlocks) return false;
    for (size_t j = i0; j < end; ++j) {
      const double x = r[j] - 1.0;
      if (!near || x == 0) {  // the exact term; log 1 is +0 exactly
        lo[j] = hi[j] = near ? num::mulRn(p[j], 0.0) : exactTerm(p[j], std::log(r[j]));
        continue;
      }
      double l, h;
      polynomialLogBounds(x, l, h);
      lo[j] = num::mulRn(p[j], l);
      hi[j] = num::mulRn(p[j], h);
    }
  }
  return true;
}

bool arceeKlBounds(const double* p, const double* r, size_t L, double* lo, double* hi, double& klLo, double& klHi) {
  if (!arceeKlTerms(p, r, L, lo, hi)) return false;
  boundSums<1>(lo, hi, L, &klLo, &klHi);
  return true;
}

double arceeExactKl(const double* p, const double* r, size_t L, double* scratch) {
  logArray(r, scratch, L);
  double kl;
  productSums<1>(p, scratch, L, &kl);
  return kl;
}

void arceeRowKlGroup(size_t R, const void* a, Dtype ta, const void* b, Dtype tb, const size_t* r0, uint64_t L, const double* p, const double* r,
                     double* lo, double* hi, double* kl) {
  switch (R) {
    case 4: return rowKlGroup<4>(a, ta, b, tb, r0, L, p, r, lo, hi, kl);
    case 3: return rowKlGroup<3>(a, ta, b, tb, r0, L, p, r, lo, hi, kl);
    case 2: return rowKlGroup<2>(a, ta, b, tb, r0, L, p, r, lo, hi, kl);
    default: return rowKlGroup<1>(a, ta, b, tb, r0, L, p, r, lo, hi, kl);
  }
}

ArceeKlCounts& arceeKlCounts() { return countsOfProcess; }

}  // namespace wm
