// exp and log over arrays for arcee_fusion's row KLs (arcee_fusion.cc): plain loops of std::exp / std::log,
// the bit-for-bit truth that SIMD versions with these signatures replace.
#pragma once
#include <cmath>
#include <cstddef>

namespace wm {

// out[i] = std::exp(x[i]), i < n.
inline void expArray(const double* x, double* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
}

// out[i] = std::log(x[i]), i < n.
inline void logArray(const double* x, double* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = std::log(x[i]);
}

}  // namespace wm
