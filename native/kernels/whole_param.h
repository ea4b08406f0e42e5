// A plan parameter that must be a whole number in [0, max] (a source index, a count, a word of a key), read from its f64.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace wm {

// p[i] as an integer, else std::invalid_argument "<owner> parameter <i> is not <what>" (p has more than i entries).
inline uint64_t wholeParam(const std::vector<double>& p, size_t i, double max, const char* owner,
                           const char* what = "a whole number in range") {
  const double v = p[i];
  if (!(v >= 0) || v > max || v != std::floor(v)) {
    throw std::invalid_argument(std::string(owner) + " parameter " + std::to_string(i) + " is not " + what);
  }
  return static_cast<uint64_t>(v);
}

}  // namespace wm
