// DELLA's ranks and keep limits by their definition (kernels/della.h): the truth della_selftest.cc and
// della_mixed_selftest.cc compare the ranker (kernels/della_rank.h) with.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "kernels/cpu_backends.h"
#include "kernels/della_rank.h"

// The definition: ascending key, equal keys by descending position (the lower position ranks higher).
inline std::vector<uint32_t> definedRanks(const std::vector<uint32_t>& key) {
  std::vector<uint32_t> order(key.size()), rank(key.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return key[a] != key[b] ? key[a] < key[b] : a > b; });
  for (uint32_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
  return rank;
}

// DellaKeyFacts by their definition (della_rank.h): the OR of the keys' low 16 bits, and the buckets of the least nonzero key
// and of the greatest (0xFFFF and 0 where every key is 0).
inline wm::DellaKeyFacts definedKeyFacts(const std::vector<uint32_t>& keys) {
  uint32_t low = 0, least = 0xFFFFFFFFu, greatest = 0;
  for (uint32_t k : keys) {
    low |= k;
    if (k != 0) least = std::min(least, k);
    greatest = std::max(greatest, k);
  }
  wm::DellaKeyFacts f;
  f.lowBits = low & 0xFFFFu;
  f.lowest = least >> 16;
  f.highest = greatest >> 16;
  return f;
}

inline bool sameKeyFacts(const wm::DellaKeyFacts& a, const wm::DellaKeyFacts& b) {
  return a.lowBits == b.lowBits && a.lowest == b.lowest && a.highest == b.highest;
}

// keepLimit of della.cc: p's integer limit for draws of 53 bits.
inline uint64_t definedLimit(double p) { return p <= 0 ? 0 : p >= 1 ? uint64_t{1} << 53 : static_cast<uint64_t>(std::ceil(p * 0x1.0p53)); }

// A row's draws by the definition: the keep limit of each rank at density d and epsilon e (della.h's p, then keepLimit), the
// uniform draws of elements first + t, and whether each position is kept (its draw below its defined rank's limit).
struct DefinedRowDraws {
  std::vector<uint64_t> limit, u;
  std::vector<uint8_t> want;
  // The ranker's view of `limit` (valid while this lives).
  wm::DellaLimits limits() const {
    wm::DellaLimits lim;
    lim.limit = limit.data();
    lim.low = std::min(limit.front(), limit.back());
    lim.high = std::max(limit.front(), limit.back());
    return lim;
  }
};
inline DefinedRowDraws definedRowDraws(const std::vector<uint32_t>& keys, double d, double e, uint64_t seedKey, uint64_t first) {
  const uint32_t L = static_cast<uint32_t>(keys.size());
  DefinedRowDraws r;
  r.limit.resize(L);
  for (uint32_t k = 0; k < L; ++k) r.limit[k] = definedLimit(L == 1 ? d : (d - e) + ((static_cast<double>(k) / static_cast<double>(L - 1)) * 2) * e);
  r.u.resize(L);
  wm::scalar::dellaUniforms(seedKey, first, L, r.u.data());
  const std::vector<uint32_t> rank = definedRanks(keys);
  r.want.resize(L);
  for (uint32_t t = 0; t < L; ++t) r.want[t] = r.u[t] < r.limit[rank[t]];
  return r;
}
