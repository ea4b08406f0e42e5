// exact_exp_log.h: the tables and the plain std:: loops (dispatch.cc picks them or the SIMD ones).
#include "exact_exp_log.h"

#include <cmath>
#include <cstring>

#include "cpu_backends.h"
#include "exact_exp_log_tables.h"

namespace wm {
namespace exactexp {
namespace {

// x rounded to `bits` significant bits, to nearest.
long double roundToBits(long double x, int bits) {
  int e;
  std::frexp(x, &e);
  return std::ldexp(std::nearbyint(std::ldexp(x, bits - e)), e - bits);
}

// hi + lo = x to ~2^-64 (long double's precision).
void split(long double x, double& hi, double& lo) {
  hi = static_cast<double>(x);
  lo = static_cast<double>(x - hi);
}

Tables build() {
  Tables t;
  for (int j = 0; j < kExpSize; ++j) split(std::exp2l(static_cast<long double>(j) / kExpSize), t.exp[j][0], t.exp[j][1]);
  for (int j = 0; j < kLogSize; ++j) {
    const unsigned long long lo = kLogOffset + (static_cast<unsigned long long>(j) << (52 - kLogBits));
    const unsigned long long hi = kLogOffset + (static_cast<unsigned long long>(j + 1) << (52 - kLogBits));
    double mLo, mHi;
    std::memcpy(&mLo, &lo, 8);
    std::memcpy(&mHi, &hi, 8);
    // Next to m = 1 the inverse is 1 itself, so that log x ~ x - 1 suffers no cancellation against the table's log.
    const long double c = (mLo == 1.0 || mHi == 1.0) ? 1.0L : roundToBits(2.0L / (static_cast<long double>(mLo) + mHi), kLogInverseBits);
    const long double minusLog = -std::log(c);
    const double logHi = static_cast<double>(std::nearbyint(std::ldexp(minusLog, 42)) * 0x1p-42L);  // exact: |log c| < 1/2
    t.log[j][0] = static_cast<double>(c);
    t.log[j][1] = logHi;
    t.log[j][2] = static_cast<double>(minusLog - logHi);
    t.log[j][3] = 0;
  }
  return t;
}

}  // namespace

const Tables& tables() {
  static const Tables t = build();
  return t;
}

}  // namespace exactexp

size_t scalar::expArray(const double* x, double* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
  return n;
}

size_t scalar::logArray(const double* x, double* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = std::log(x[i]);
  return n;
}

void expArray(const double* x, double* out, size_t n) { expArrayCounting(x, out, n); }
void logArray(const double* x, double* out, size_t n) { logArrayCounting(x, out, n); }

}  // namespace wm
