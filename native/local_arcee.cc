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

// For each of the ascending ranks rank[0] <= rank[1] <= rank[2], the bin of `counts` that holds it; rank[q]
// becomes the rank left within that bin.
void binsOfRanks(const uint32_t* counts, uint64_t rank[3], uint32_t bin[3]) {
  uint64_t below = 0;  // elements in the bins before b
  size_t b = 0;
  for (int q = 0; q < 3; ++q) {
    const uint64_t* r = &rank[q];
    while (b + 1 < kDigit && below + counts[b] <= *r) below += counts[b++];
    bin[q] = static_cast<uint32_t>(b);
    rank[q] -= below;
  }
}

// Up to this many keys: selected in place (std::nth_element) rather than by two passes over 2^16 counters.
constexpr uint64_t kSmallSelection = uint64_t{1} << 16;

void keysAtRanksInPlace(uint32_t* keys, uint64_t count, const uint64_t ranks[3], uint32_t out[3]) {
  uint32_t* mid = keys + ranks[1];
  std::nth_element(keys, mid, keys + count);
  out[1] = *mid;
  // Below the median's position only keys <= it, above only keys >= it.
  std::nth_element(keys, keys + ranks[0], mid);
  out[0] = ranks[0] == ranks[1] ? out[1] : keys[ranks[0]];
  if (ranks[2] == ranks[1]) {
    out[2] = out[1];
  } else {
    std::nth_element(mid + 1, keys + ranks[2], keys + count);
    out[2] = keys[ranks[2]];
  }
}

}  // namespace

uint64_t localArceeScratchBytes(const std::vector<ArceeParams>& dests, uint64_t count) {
  uint64_t bytes = 0;
  for (const ArceeParams& p : dests) bytes += scratchOf(p, count);
  return bytes;
}

void arceeKeysAtRanks(uint32_t* keys, uint64_t count, const uint64_t ranks[3], uint32_t out[3]) {
  if (count > UINT32_MAX) throw std::logic_error("internal: an arcee_fusion tensor-local job of 2^32 elements or more");
  if (count <= kSmallSelection) return keysAtRanksInPlace(keys, count, ranks, out);
  // The high 16 bits in four interleaved 32-bit histograms (kept per thread: no allocation per tensor), so that a
  // run of equal keys (a row's zeros, a row of NaN) does not wait on its own increments of one counter.
  thread_local std::vector<uint32_t> counts;
  counts.assign(4 * kDigit, 0);
  uint64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    for (uint64_t k = 0; k < 4; ++k) ++counts[k * kDigit + (keys[i + k] >> 16)];
  }
  for (; i < count; ++i) ++counts[keys[i] >> 16];
  for (size_t b = 0; b < kDigit; ++b) counts[b] += counts[kDigit + b] + counts[2 * kDigit + b] + counts[3 * kDigit + b];
  uint64_t left[3] = {ranks[0], ranks[1], ranks[2]};
  uint32_t high[3];
  binsOfRanks(counts.data(), left, high);
  // The low 16 bits within each quantile's high bin (one pass for all three), eight keys at a time: most match none.
  std::fill(counts.begin(), counts.begin() + 3 * kDigit, 0);
  const auto matches = [&](uint32_t key) { return (key >> 16) == high[0] || (key >> 16) == high[1] || (key >> 16) == high[2]; };
  const auto add = [&](uint32_t key) {
    for (int q = 0; q < 3; ++q) {
      if ((key >> 16) == high[q]) ++counts[q * kDigit + (key & 0xFFFFu)];
    }
  };
  for (i = 0; i + 8 <= count; i += 8) {
    bool any = false;
    for (uint64_t k = 0; k < 8; ++k) any |= matches(keys[i + k]);
    if (!any) continue;
    for (uint64_t k = 0; k < 8; ++k) add(keys[i + k]);
  }
  for (; i < count; ++i) add(keys[i]);
  for (int q = 0; q < 3; ++q) {
    uint64_t rank[3] = {left[q], left[q], left[q]};
    uint32_t low[3];
    binsOfRanks(counts.data() + q * kDigit, rank, low);
    out[q] = (high[q] << 16) | low[0];
  }
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
