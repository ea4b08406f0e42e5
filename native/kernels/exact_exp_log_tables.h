// What exact_exp_log's loops share: their declarations, the tables (built once from long double exp2l / logl) and the
// reduction constants (ln 2 split so that the products with the reduction's integers are exact).
#pragma once
#include <cstddef>

#include "exact_exp_log.h"

namespace wm {
namespace exactexp {

constexpr int kExpBits = 7;                  // exp: x = (k / 128) ln 2 + r, |r| <= ln 2 / 256
constexpr int kExpSize = 1 << kExpBits;
constexpr int kLogBits = 9;                  // log: 512 intervals of the mantissa in [0.6875, 1.375)
constexpr int kLogSize = 1 << kLogBits;
constexpr unsigned long long kLogOffset = 0x3FE6000000000000ull;  // 0.6875: mantissas from here, so that x near 1 has e == 0
constexpr int kLogInverseBits = 10;         // significant bits of 1/m's table value: |m c - 1| < 2^-9 has at most 53 bits

constexpr double kExpFastLimit = 708.0;     // |x| <= this: a normal, finite result
constexpr double kInvLn2x128 = 0x1.71547652b82fep+7;  // 128 / ln 2 (any rounding: it only picks k)
constexpr double kLn2x128Hi = 0x1.62e42fefc0000p-8;   // ln 2 / 128 to 35 bits: k * it is exact for |k| < 2^18
constexpr double kLn2x128Lo = -0x1.c610ca86c3899p-44;  // the rest (error ~2^-97)
constexpr double kLn2Hi = 0x1.62e42fefa3800p-1;       // ln 2 to 42 bits: e * it is exact for |e| < 2^11
constexpr double kLn2Lo = 0x1.ef35793c76730p-45;      // the rest (error ~2^-98)

// Each lane's entries side by side, so that a lane's lookup is one or two 16-byte loads (SIMD gathers are slow).
struct Tables {
  alignas(64) double exp[kExpSize][2];  // {hi, lo}: 2^(j/128) = hi + lo
  alignas(64) double log[kLogSize][4];  // {c, hi, lo, 0}: c ~ 1/m on interval j, kLogInverseBits bits (1 next to m = 1);
                                        // -log(c) = hi + lo, hi a multiple of 2^-42 (as e * kLn2Hi: their sum is exact)
};
const Tables& tables();  // built on first use

}  // namespace exactexp

// Each returns how many lanes libm computed (every one in the plain loops).
namespace scalar {  // exact_exp_log.cc: plain std:: loops
size_t expArray(const double* x, double* out, size_t n);
size_t logArray(const double* x, double* out, size_t n);
}  // namespace scalar
namespace avx2 {  // exact_exp_log_avx2.cc (4 lanes; 8 through exact_exp_log_avx512.cc where avx512Enabled())
size_t expArray(const double* x, double* out, size_t n);
size_t logArray(const double* x, double* out, size_t n);
size_t expArray512(const double* x, double* out, size_t n);
size_t logArray512(const double* x, double* out, size_t n);
}  // namespace avx2

}  // namespace wm
