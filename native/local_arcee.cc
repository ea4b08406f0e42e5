// arcee_fusion's open threshold resolved from a tensor in memory (local_arcee.h).
#include "local_arcee.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace wm {

bool isLocalArcee(const std::vector<ArceeParams>& dests) {
  return std::any_of(dests.begin(), dests.end(), [](const ArceeParams& p) { return p.open; });
}

namespace {
// Each open dest's scratch: its row KLs (8 bytes each, first: they stay aligned), then its keys.
uint64_t scratchOf(const ArceeParams& p, uint64_t count) { return p.open ? 8 * (count / p.rowLength) + 4 * count : 0; }

// The keys' high and low 16 bits: two counting passes over the keys in memory.
constexpr size_t kDigit = size_t{1} << 16;

// The bin that holds the ascending rank `rank` of `counts`, and the rank left within it.
size_t binOfAscendingRank(const uint64_t* counts, uint64_t& rank) {
  size_t b = 0;
  for (; b + 1 < kDigit && counts[b] <= rank; ++b) rank -= counts[b];
  return b;
}
}  // namespace

uint64_t localArceeScratchBytes(const std::vector<ArceeParams>& dests, uint64_t count) {
  uint64_t bytes = 0;
  for (const ArceeParams& p : dests) bytes += scratchOf(p, count);
  return bytes;
}

void arceeKeysAtRanks(const uint32_t* keys, uint64_t count, const uint64_t ranks[3], uint32_t out[3]) {
  if (count > UINT32_MAX) throw std::logic_error("internal: an arcee_fusion tensor-local job of 2^32 elements or more");
  // The high 16 bits in four interleaved 32-bit histograms (kept per thread: no allocation per tensor), so that a
  // run of equal keys (a row's zeros, a row of NaN) does not wait on its own increments of one counter.
  thread_local std::vector<uint32_t> ways;
  ways.assign(4 * kDigit, 0);
  uint64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    for (uint64_t k = 0; k < 4; ++k) ++ways[k * kDigit + (keys[i + k] >> 16)];
  }
  for (; i < count; ++i) ++ways[keys[i] >> 16];
  thread_local std::vector<uint64_t> counts;
  counts.assign(3 * kDigit, 0);
  for (size_t b = 0; b < kDigit; ++b) counts[b] = uint64_t{ways[b]} + ways[kDigit + b] + ways[2 * kDigit + b] + ways[3 * kDigit + b];
  uint64_t left[3];
  uint32_t high[3];
  for (int q = 0; q < 3; ++q) {
    left[q] = ranks[q];
    high[q] = static_cast<uint32_t>(binOfAscendingRank(counts.data(), left[q]));
  }
  // The low 16 bits within each quantile's high bin (one pass for all three).
  std::fill(counts.begin(), counts.end(), 0);
  for (i = 0; i < count; ++i) {
    const uint32_t h = keys[i] >> 16, low = keys[i] & 0xFFFFu;
    if (h != high[0] && h != high[1] && h != high[2]) continue;
    for (int q = 0; q < 3; ++q) {
      if (h == high[q]) ++counts[q * kDigit + low];
    }
  }
  for (int q = 0; q < 3; ++q) out[q] = (high[q] << 16) | static_cast<uint32_t>(binOfAscendingRank(counts.data() + q * kDigit, left[q]));
}

float arceeImportanceOfKey(uint32_t key) {
  const uint32_t bits = key >= 0x80000000u ? key - 0x80000000u : ~key;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float arceeFusionThreshold(float q1, float median, float q3) {
  const float iqr = static_cast<float>(static_cast<double>(q3) - static_cast<double>(q1));
  const float spread = static_cast<float>(1.5 * static_cast<double>(iqr));
  return static_cast<float>(static_cast<double>(median) + static_cast<double>(spread));
}

void resolveLocalArcee(std::vector<ArceeParams>& dests, const void* const* srcs, const Dtype* types, uint64_t count, uint8_t* scratch) {
  for (ArceeParams& p : dests) {
    if (!p.open) continue;
    p.open = false;
    if (count == 0) continue;  // no element to merge (the planner never leaves such a tensor open)
    auto* kl = reinterpret_cast<double*>(scratch);
    auto* keys = reinterpret_cast<uint32_t*>(scratch + 8 * (count / p.rowLength));
    scratch += scratchOf(p, count);
    arceeRowKeys(srcs, types, p, count, kl, keys);
    // lib/recipes/arcee-fusion-statistics.ts's ranks: Math.floor(q * (count - 1)) in f64.
    const double quantiles[3] = {0.25, 0.5, 0.75};
    uint64_t ranks[3];
    for (int q = 0; q < 3; ++q) ranks[q] = static_cast<uint64_t>(std::floor(quantiles[q] * static_cast<double>(count - 1)));
    uint32_t at[3];
    arceeKeysAtRanks(keys, count, ranks, at);
    p.threshold = arceeFusionThreshold(arceeImportanceOfKey(at[0]), arceeImportanceOfKey(at[1]), arceeImportanceOfKey(at[2]));
    p.rowKl = kl;
  }
}

}  // namespace wm
