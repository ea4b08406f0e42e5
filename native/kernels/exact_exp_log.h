// exp and log over arrays of f64, equal to this machine's std::exp / std::log bit for bit (arcee_fusion's row KLs).
//
// Contract: each lane is computed in SIMD to within ~2^-62 relative of the exact value (table-driven reduction,
// double-double tail; measured against quad precision on 2e6 arcee-range inputs: at most 0.00033 ulp for exp, 0.00066
// for log), then rounded to nearest. The lane calls std::exp / std::log instead where that value lies within kExpMargin /
// kLogMargin ulp of a rounding midpoint, where the result is a power of two or zero, and for every input outside the fast
// range (exp: |x| > 708 or NaN; log: x not a positive, normal, finite double). So out[i] == std::exp(x[i])
// (std::log(x[i])) for any round-to-nearest libm whose error is below 0.5 + margin - 0.001 ulp: glibc's is (2.28+,
// documented: exp 0.511 ulp without FMA, 0.509 with; log 0.519). glibc 2.36 misrounds ~0.08 % of exp and ~0.04 % of log
// results on the arcee ranges (worst seen 0.5065 / 0.5173 ulp), so a correctly rounded SIMD exp/log would not match it.
// Without AVX2 (or with WEIGHTMIX_NO_SIMD) both are plain std:: loops. Checked by native/tests/exact_exp_log_selftest.cc.
#pragma once
#include <cstddef>

namespace wm {

constexpr double kExpMargin = 0.02;  // > glibc exp's 0.511 - 0.5 ulp, with room to spare
constexpr double kLogMargin = 0.03;  // > glibc log's 0.519 - 0.5 ulp, with room to spare

void expArray(const double* x, double* out, size_t n);  // out[i] == std::exp(x[i]) bit for bit
void logArray(const double* x, double* out, size_t n);  // out[i] == std::log(x[i]) bit for bit

// The same, returning how many lanes took std::exp / std::log (the fallback rate, for tests and benchmarks).
size_t expArrayCounting(const double* x, double* out, size_t n);
size_t logArrayCounting(const double* x, double* out, size_t n);

}  // namespace wm
