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
// Each open dest's scratch: its row KLs (8 bytes each, first: they stay aligned), then its keys unless it recomputes them.
// Rounded up to 8 bytes: the next open dest's row KLs (doubles) start there (4-byte keys of an odd count left them misaligned).
uint64_t scratchOf(const ArceeParams& p, uint64_t count) {
  if (!p.open) return 0;
  return (8 * (count / p.rowLength) + (p.recomputeKeys ? 0 : 4 * count) + 7) / 8 * 8;
}

// The keys' high and low 16 bits: two counting passes over the keys.
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

// The exact selection of three ranks by the keys' 16-bit halves, fed the keys in blocks (in any order): all of them to countHigh, then all
// again to countLow.
class RadixSelection {
 public:
  RadixSelection(uint64_t count, const uint64_t ranks[3]) : left_{ranks[0], ranks[1], ranks[2]} {
    if (count > UINT32_MAX) throw std::logic_error("internal: an arcee_fusion tensor-local job of 2^32 elements or more");
    counts_.assign(4 * kDigit, 0);
  }
  // The high 16 bits in four interleaved 32-bit histograms (kept per thread: no allocation per tensor), so that a
  // run of equal keys (a row's zeros, a row of NaN) does not wait on its own increments of one counter.
  void countHigh(const uint32_t* keys, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      for (size_t k = 0; k < 4; ++k) ++counts_[k * kDigit + (keys[i + k] >> 16)];
    }
    for (; i < n; ++i) ++counts_[keys[i] >> 16];
  }
  // The quantiles' high bins from the high counts; the counters then hold the low 16 bits within each of them.
  void startLow() {
    for (size_t b = 0; b < kDigit; ++b) counts_[b] += counts_[kDigit + b] + counts_[2 * kDigit + b] + counts_[3 * kDigit + b];
    binsOfRanks(counts_.data(), left_, high_);
    std::fill(counts_.begin(), counts_.begin() + 3 * kDigit, 0);
  }
  // The low 16 bits within each quantile's high bin (one pass for all three), sixteen keys at a time: most match none.
  void countLow(const uint32_t* keys, size_t n) {
    const uint32_t h0 = high_[0], h1 = high_[1], h2 = high_[2];
    const auto add = [&](uint32_t key) {
      for (int q = 0; q < 3; ++q) {
        if ((key >> 16) == high_[q]) ++counts_[q * kDigit + (key & 0xFFFFu)];
      }
    };
    // The sixteen keys' high halves compared in 4-lane vectors (GCC's vector extension: SSE2 on x86-64), without branches.
    using Lanes = uint32_t __attribute__((vector_size(16)));
    const Lanes v0 = {h0, h0, h0, h0}, v1 = {h1, h1, h1, h1}, v2 = {h2, h2, h2, h2};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      Lanes any = {0, 0, 0, 0};
      for (size_t k = 0; k < 16; k += 4) {
        Lanes h;
        std::memcpy(&h, keys + i + k, 16);
        h >>= 16;
        any |= reinterpret_cast<Lanes>((h == v0) | (h == v1) | (h == v2));
      }
      if ((any[0] | any[1] | any[2] | any[3]) == 0) continue;
      for (size_t k = 0; k < 16; ++k) add(keys[i + k]);
    }
    for (; i < n; ++i) add(keys[i]);
  }
  void result(uint32_t out[3]) {
    for (int q = 0; q < 3; ++q) {
      uint64_t rank[3] = {left_[q], left_[q], left_[q]};
      uint32_t low[3];
      binsOfRanks(counts_.data() + q * kDigit, rank, low);
      out[q] = (high_[q] << 16) | low[0];
    }
  }

 private:
  std::vector<uint32_t>& counts_ = counters();
  uint64_t left_[3];
  uint32_t high_[3] = {0, 0, 0};
  static std::vector<uint32_t>& counters() {
    thread_local std::vector<uint32_t> v;
    return v;
  }
};

// Keys made and counted this many elements at a time (whole rows, at least one), so that the counting reads them from cache.
constexpr uint64_t kKeyBlock = 16384;

// An open dest's order keys, a block of whole rows at a time, after its row KLs (computed first over the whole tensor
// into `kl`, arceeRowKls: rows ordered by their maxes across the tensor, not only within a block). The first pass
// computes the keys into `stored` (the scratch) where the dest keeps them; later passes read them there, or compute
// them again from the sources and the row KLs into a block that the next one overwrites (ArceeParams::recomputeKeys).
class TensorKeys {
 public:
  TensorKeys(const ArceeParams& p, const void* const* srcs, const Dtype* types, uint64_t count, double* kl, uint32_t* stored)
      : p_(p), srcs_(srcs), types_(types), count_(count), stored_(stored), at_(1 + std::max(p.base, p.model)) {
    arceeRowKls(srcs, types, p, count, kl);
    p_.rowKl = kl;
    if (stored == nullptr) block().resize(rowsPerBlock() * p.rowLength);
  }
  // Calls f(keys, n) for consecutive blocks of the keys in element order.
  template <typename F>
  void each(F f) {
    const uint64_t step = rowsPerBlock() * p_.rowLength;
    for (uint64_t start = 0; start < count_; start += step) {
      const size_t n = static_cast<size_t>(std::min(step, count_ - start));
      if (stored_ != nullptr && keysStored_) {
        f(stored_ + start, n);
        continue;
      }
      for (size_t s = 0; s < at_.size(); ++s) at_[s] = static_cast<const uint8_t*>(srcs_[s]) + start * dtypeSize(types_[s]);
      uint32_t* keys = stored_ != nullptr ? stored_ + start : block().data();
      arceeRowKeys(at_.data(), types_, p_, start, n, keys);
      f(keys, n);
    }
    keysStored_ = true;  // by the first pass, where stored
  }

 private:
  uint64_t rowsPerBlock() const { return std::max<uint64_t>(1, kKeyBlock / p_.rowLength); }
  static std::vector<uint32_t>& block() {
    thread_local std::vector<uint32_t> v;
    return v;
  }
  ArceeParams p_;
  const void* const* srcs_;
  const Dtype* types_;
  uint64_t count_;
  uint32_t* stored_;
  bool keysStored_ = false;
  std::vector<const void*> at_;
};

}  // namespace

uint64_t localArceeScratchBytes(const std::vector<ArceeParams>& dests, uint64_t count) {
  uint64_t bytes = 0;
  for (const ArceeParams& p : dests) bytes += scratchOf(p, count);
  return bytes;
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
    if (count == 0) {  // no element to merge (the planner never leaves such a tensor open)
      p.open = false;
      continue;
    }
    auto* kl = reinterpret_cast<double*>(scratch);
    auto* stored = p.recomputeKeys ? nullptr : reinterpret_cast<uint32_t*>(scratch + 8 * (count / p.rowLength));
    scratch += scratchOf(p, count);
    p.open = false;
    // lib/recipes/arcee-fusion-statistics.ts's ranks: Math.floor(q * (count - 1)) in f64.
    const double quantiles[3] = {0.25, 0.5, 0.75};
    uint64_t ranks[3];
    for (int q = 0; q < 3; ++q) ranks[q] = static_cast<uint64_t>(std::floor(quantiles[q] * static_cast<double>(count - 1)));
    uint32_t at[3];
    TensorKeys keys(p, srcs, types, count, kl, stored);
    if (stored != nullptr && count <= kSmallSelection) {
      keys.each([](const uint32_t*, size_t) {});
      keysAtRanksInPlace(stored, count, ranks, at);
    } else {
      // The high digit counted as the keys are made, the low one from the keys stored or made again.
      RadixSelection selection(count, ranks);
      keys.each([&](const uint32_t* k, size_t n) { selection.countHigh(k, n); });
      selection.startLow();
      keys.each([&](const uint32_t* k, size_t n) { selection.countLow(k, n); });
      selection.result(at);
    }
    p.threshold = arceeFusionThreshold(arceeImportanceOfKey(at[0]), arceeImportanceOfKey(at[1]), arceeImportanceOfKey(at[2]));
    p.rowKl = kl;
  }
}

}  // namespace wm
