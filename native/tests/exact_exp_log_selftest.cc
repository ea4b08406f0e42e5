// The self-test of kernels/exact_exp_log.h: expArray / logArray against std::exp / std::log bit for bit, on every path
// (plain, AVX2, AVX-512 where the CPU has it), over > 10^7 fresh inputs per run: arcee_fusion's ranges, random bit
// patterns, values at and next to the tables' boundaries, values whose result lies near a rounding midpoint (found
// through long double), every special value, and every length 0..40 (tails, unaligned starts, nothing written
// past the end). WEIGHTMIX_EXP_LOG_VALIDATE=N adds N more arcee-range inputs per function and path (the long
// one-off validation; not in `npm test`). Run by kernels_selftest.cc's main.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu_backends.h"
#include "kernels/exact_exp_log.h"
#include "kernels/exact_exp_log_tables.h"
#include "kernels/kernels.h"
#include "tests/selftest_support.h"

namespace {

using Array = void (*)(const double*, double*, size_t);

double fromBits(uint64_t b) {
  double d;
  std::memcpy(&d, &b, 8);
  return d;
}
uint64_t bitsOf(double d) {
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return b;
}
double uniform(Rng& r, double lo, double hi) { return lo + (hi - lo) * (static_cast<double>(r.next() >> 11) * 0x1p-53); }

// Where the exact f(x) (long double) lies, in ulps of the double nearest it, from the nearer rounding midpoint.
double midpointDistance(long double exact) {
  const double d = static_cast<double>(exact);
  if (!std::isfinite(d) || d == 0) return 1;
  const long double ulp = std::nextafter(std::fabs(d), INFINITY) - std::fabs(d);
  return 0.5 - static_cast<double>(std::fabs(exact - d) / ulp);
}

// out == libm for every input, through `array`; counts mismatches and fallbacks. `what` names the input set.
struct Checker {
  const char* path;
  size_t inputs = 0, fallbacks = 0;
  void run(const char* fn, const char* what, const std::vector<double>& x, size_t (*counting)(const double*, double*, size_t),
           double (*libm)(double), bool digestIt) {
    std::vector<double> out(x.size() + 1, 0.0);
    out[x.size()] = 12345.0;  // nothing written past the end
    fallbacks += counting(x.data(), out.data(), x.size());
    inputs += x.size();
    size_t bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = libm(x[i]);
      if (bitsOf(out[i]) != bitsOf(want) && bad++ < 3) {
        CHECK(false, "%s %s %s: %s(%a) = %a, std:: gives %a", path, fn, what, fn, x[i], out[i], want);
      }
    }
    CHECK(bad == 0, "%s %s %s: %zu of %zu differ from std::", path, fn, what, bad, x.size());
    CHECK(out[x.size()] == 12345.0, "%s %s %s: wrote past the end", path, fn, what);
    if (digestIt) digestBytes(out.data(), x.size() * 8);
  }
};

double libmExp(double x) { return std::exp(x); }
double libmLog(double x) { return std::log(x); }

// Special values for both functions: NaNs (quiet, signalling, negative, payloads), infinities, zeros, subnormals, extremes.
std::vector<double> specials() {
  const uint64_t bits[] = {0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4000000000000, 0xFFF0000000012345,
                           0x7FF0000000000000, 0xFFF0000000000000, 0x0000000000000000, 0x8000000000000000, 0x0000000000000001,
                           0x8000000000000001, 0x000FFFFFFFFFFFFF, 0x800FFFFFFFFFFFFF, 0x0010000000000000, 0x8010000000000000,
                           0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x3FF0000000000000, 0xBFF0000000000000, 0x3FEFFFFFFFFFFFFF,
                           0x3FF0000000000001, 0x3C90000000000000, 0xBC90000000000000, 0x3CA0000000000000, 0xBCA0000000000000};
  std::vector<double> v;
  for (uint64_t b : bits) v.push_back(fromBits(b));
  for (double d : {708.0, -708.0, 708.3964185322641, 709.782712893384, 709.7827128933841, -708.3964185322641, -708.39641853226421,
                   -745.1332191019411, -745.1332191019412, -744.44007192138122, 1e-300, 2.0, 0.5, 1024.0, 1.375, 0.6875})
    v.push_back(d), v.push_back(std::nextafter(d, INFINITY)), v.push_back(std::nextafter(d, -INFINITY));
  return v;
}

// Inputs of every kind for exp (arcee: x = v - rowmax <= 0 from bf16/f16/f32 weights, and the same with a wide spread).
std::vector<double> expInputs(Rng& r, const char* kind, size_t n) {
  std::vector<double> x;
  x.reserve(n);
  const double ln2x128 = 0.693147180559945309417232121458176568 / wm::exactexp::kExpSize;
  while (x.size() < n) {
    if (!std::strcmp(kind, "arcee")) {
      x.push_back(r.next() % 4 == 0 ? -uniform(r, 0, 700) : static_cast<double>(static_cast<float>(-uniform(r, 0, 40))));
    } else if (!std::strcmp(kind, "bits")) {
      x.push_back(fromBits(r.next()));
    } else if (!std::strcmp(kind, "near 0")) {  // tiny |x|: results 1 or next to it
      x.push_back(std::ldexp(uniform(r, -1, 1), -static_cast<int>(r.next() % 70)));
    } else if (!std::strcmp(kind, "table boundaries")) {  // k ln2/128 and (k + 1/2) ln2/128, a few ulps either side
      const double k = std::floor(uniform(r, -130000, 130000)) + (r.next() % 2 ? 0.5 : 0.0);
      double v = k * ln2x128;
      for (int s = static_cast<int>(r.next() % 9) - 4; s > 0; --s) v = std::nextafter(v, INFINITY);
      for (int s = static_cast<int>(r.next() % 9) - 4; s > 0; --s) v = std::nextafter(v, -INFINITY);
      x.push_back(v);
    } else {  // near midpoints: exact result within 0.04 ulp of a rounding midpoint
      const double v = r.next() % 2 ? -uniform(r, 0, 40) : uniform(r, -708, 708);
      if (midpointDistance(std::exp(static_cast<long double>(v))) < 0.04) x.push_back(v);
    }
  }
  return x;
}

// Inputs of every kind for log (arcee: p/q with p, q = softmax + 1e-8 in (1e-8, 1 + 1e-8]).
std::vector<double> logInputs(Rng& r, const char* kind, size_t n) {
  std::vector<double> x;
  x.reserve(n);
  while (x.size() < n) {
    if (!std::strcmp(kind, "arcee")) {
      const double p = std::exp(-uniform(r, 0, 25)) + 1e-8;
      const double q = r.next() % 2 ? std::exp(-uniform(r, 0, 25)) + 1e-8 : p * (1 + uniform(r, -1e-3, 1e-3)) + 1e-8;  // often near p
      x.push_back(p / q);
    } else if (!std::strcmp(kind, "bits")) {
      x.push_back(fromBits(r.next()));
    } else if (!std::strcmp(kind, "near 1")) {  // 1 +- a few ulps up to 1 +- 2^-6
      x.push_back(1 + std::ldexp(uniform(r, -1, 1), -6 - static_cast<int>(r.next() % 50)));
    } else if (!std::strcmp(kind, "table boundaries")) {  // the ends of the mantissa intervals, a few ulps either side, any exponent
      const uint64_t j = r.next() % (wm::exactexp::kLogSize + 1);
      const uint64_t e = r.next() % 2046 + 1;  // normal exponents
      uint64_t b = wm::exactexp::kLogOffset + (j << (52 - wm::exactexp::kLogBits));
      b = (b & 0x000FFFFFFFFFFFFFull) | (((b >> 52) + e - 1022) << 52);
      if (((b >> 52) & 0x7FF) == 0 || ((b >> 52) & 0x7FF) >= 0x7FF) continue;
      x.push_back(fromBits(b + (r.next() % 9) - 4));
    } else {  // near midpoints
      const double v = r.next() % 2 ? uniform(r, 1e-8, 1) : std::exp(uniform(r, -700, 700));
      if (midpointDistance(std::log(static_cast<long double>(v))) < 0.04) x.push_back(v);
    }
  }
  return x;
}

// The tables' own promises: |m c - 1| < 2^-9 over each log interval (so that r is exact), hi + lo close to the truth.
void testTables() {
  const auto& t = wm::exactexp::tables();
  for (int j = 0; j < wm::exactexp::kExpSize; ++j) {
    const long double want = std::exp2(static_cast<long double>(j) / wm::exactexp::kExpSize);
    CHECK(std::fabs((static_cast<long double>(t.exp[j][0]) + t.exp[j][1]) / want - 1) < 0x1p-62L, "exp table entry %d", j);
  }
  for (int j = 0; j < wm::exactexp::kLogSize; ++j) {
    const long double c = t.log[j][0];
    for (uint64_t end : {uint64_t(j), uint64_t(j) + 1}) {
      const long double m = fromBits(wm::exactexp::kLogOffset + (end << (52 - wm::exactexp::kLogBits)));
      const long double edge = end == uint64_t(j) ? m : std::nextafter(static_cast<double>(m), 0.0);  // the interval's last mantissa
      CHECK(std::fabs(edge * c - 1) < 0x1p-9L, "log interval %d: |m c - 1| = %Lg at its end", j, std::fabs(edge * c - 1));
    }
    CHECK(std::fabs(static_cast<long double>(t.log[j][1]) + t.log[j][2] + std::log(c)) <= 0x1p-62L * std::fabs(std::log(c)), "log table entry %d", j);
  }
}

void runPath(const char* path, Rng& r, size_t extra) {
  Checker exp{path}, log{path};
  const size_t kScale = 1'000'000;
  for (const char* kind : {"arcee", "bits", "near 0", "table boundaries", "near midpoints"}) {
    const size_t n = !std::strcmp(kind, "arcee") ? 2 * kScale : kScale / 2;
    exp.run("exp", kind, expInputs(r, kind, n), wm::expArrayCounting, libmExp, !std::strcmp(kind, "arcee"));
  }
  for (const char* kind : {"arcee", "bits", "near 1", "table boundaries", "near midpoints"}) {
    const size_t n = !std::strcmp(kind, "arcee") ? 2 * kScale : kScale / 2;
    log.run("log", kind, logInputs(r, kind, n), wm::logArrayCounting, libmLog, !std::strcmp(kind, "arcee"));
  }
  const std::vector<double> special = specials();
  exp.run("exp", "special values", special, wm::expArrayCounting, libmExp, true);
  log.run("log", "special values", special, wm::logArrayCounting, libmLog, true);
  // Every length 0..40 at every start offset 0..8, over a mix of everything.
  std::vector<double> mixE = expInputs(r, "arcee", 48), mixL = logInputs(r, "arcee", 48);
  for (size_t i = 0; i < special.size() && i < 48; i += 3) mixE[i] = special[i], mixL[i + 1] = special[i];
  for (size_t len = 0; len <= 40; ++len) {
    for (size_t at = 0; at <= 8 && at + len <= 48; ++at) {
      exp.run("exp", "tails", std::vector<double>(mixE.begin() + at, mixE.begin() + at + len), wm::expArrayCounting, libmExp, false);
      log.run("log", "tails", std::vector<double>(mixL.begin() + at, mixL.begin() + at + len), wm::logArrayCounting, libmLog, false);
    }
  }
  // The arcee ranges alone, for the fallback rate (and, with WEIGHTMIX_EXP_LOG_VALIDATE, the long validation).
  Checker arceeExp{path}, arceeLog{path};
  const size_t chunk = 1 << 22;
  for (size_t done = 0; done < kScale + extra; done += chunk) {
    const size_t n = std::min(chunk, kScale + extra - done);
    arceeExp.run("exp", "arcee", expInputs(r, "arcee", n), wm::expArrayCounting, libmExp, false);
    arceeLog.run("log", "arcee", logInputs(r, "arcee", n), wm::logArrayCounting, libmLog, false);
  }
  std::printf("exact exp/log, %s: %zu exp and %zu log inputs equal std::; fallback on arcee ranges: exp %.2f%%, log %.2f%% (%zu + %zu inputs)\n",
              path, exp.inputs + arceeExp.inputs, log.inputs + arceeLog.inputs, 100.0 * arceeExp.fallbacks / arceeExp.inputs,
              100.0 * arceeLog.fallbacks / arceeLog.inputs, arceeExp.inputs, arceeLog.inputs);
}

}  // namespace

void testExactExpLog(uint64_t seed) {
  Rng r(seed ^ 0xE4B106);
  const char* v = std::getenv("WEIGHTMIX_EXP_LOG_VALIDATE");
  const size_t extra = v ? std::strtoull(v, nullptr, 10) : 0;
  testTables();
  const bool simd = wm::setSimdEnabled(false);
  runPath("plain", r, 0);
  wm::setSimdEnabled(simd);
#if defined(WM_HAVE_AVX2_BACKEND)
  if (std::strcmp(wm::simdPathName(), "scalar") != 0) {
    withAvx512(false, [&] { runPath("AVX2", r, extra); });
    if (wm::avx2::avx512Enabled()) runPath("AVX-512", r, extra);
  }
#endif
}
