// A deterministic sample of a tensor's values (one element from each of s equal strata, at a pseudo-random place in it), and
// what the window selections (sparse_select.cc's rank cuts, key_selection.cc's order statistics) take from it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "sparsify.h"

namespace wm {

// valueAt(i) of one element i in each of `s` equal strata of the tensor, at a pseudo-random place in it (a fixed stride could
// alias with the rows). Only steers a selection's windows: their results never depend on it.
template <typename ValueAt>
void sampleStrata(uint64_t count, size_t s, uint32_t* out, ValueAt valueAt) {
  // No 64-bit division per sample (the loads, each a cache miss, then overlap instead of waiting on the
  // divider): stratum q is [q * count / s, (q + 1) * count / s) stepped in integers, and the place in it
  // comes from the hash's high 32 bits by a multiply (a stratum holds < 2^32 elements).
  const uint64_t step = count / s, extra = count % s;
  uint64_t lo = 0, frac = 0;  // lo = q * count / s, frac = q * count % s
  for (size_t q = 0; q < s; ++q) {
    uint64_t hi = lo + step;
    frac += extra;
    if (frac >= s) {
      frac -= s;
      ++hi;
    }
    out[q] = valueAt(lo + (((splitmix64(q) >> 32) * (hi - lo)) >> 32));
    lo = hi;
  }
}

// How many values a window selection samples: about count / 256, 4,096 to 65,536 (all of a smaller tensor); a window around a
// rank then holds ~1-3 % of the values.
inline size_t windowSampleSize(uint64_t count) {
  return static_cast<size_t>(std::min<uint64_t>(count, std::clamp<uint64_t>(count / 256, 4096, 65536)));
}

// Half a window's width, in places of a sample of s, around a rank a fraction f of the way through the values: 4 binomial
// standard deviations, and 8 more.
inline double windowSpread(size_t s, double f) { return 4 * std::sqrt(static_cast<double>(s) * f * (1 - f)) + 8; }

// The sample's order statistics at the wanted places (a place, and where its value goes; each < the sample's size), from the
// largest place down, each nth_element on the part below the last. Reorders the sample and `wanted`.
inline void sampleOrderStatistics(std::vector<uint32_t>& sample, std::vector<std::pair<size_t, uint32_t*>>& wanted) {
  std::sort(wanted.begin(), wanted.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  size_t end = sample.size();
  for (const auto& [place, value] : wanted) {
    std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(place), sample.begin() + static_cast<std::ptrdiff_t>(end));
    *value = sample[place];
    end = place + 1;
  }
}

}  // namespace wm
