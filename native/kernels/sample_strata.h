// A deterministic sample of a tensor's values: one element from each of s equal strata, at a pseudo-random place in it.
#pragma once
#include <cstddef>
#include <cstdint>

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

}  // namespace wm
