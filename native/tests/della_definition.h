// DELLA's ranks and keep limits by their definition (kernels/della.h): the truth della_selftest.cc and
// della_mixed_selftest.cc compare the ranker (kernels/della_rank.h) with.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

// The definition: ascending key, equal keys by descending position (the lower position ranks higher).
inline std::vector<uint32_t> definedRanks(const std::vector<uint32_t>& key) {
  std::vector<uint32_t> order(key.size()), rank(key.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return key[a] != key[b] ? key[a] < key[b] : a > b; });
  for (uint32_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
  return rank;
}

// keepLimit of della.cc: p's integer limit for draws of 53 bits.
inline uint64_t definedLimit(double p) { return p <= 0 ? 0 : p >= 1 ? uint64_t{1} << 53 : static_cast<uint64_t>(std::ceil(p * 0x1.0p53)); }
