// arcee_fusion's open threshold resolved from a tensor in memory (local_arcee.h).
#include "local_arcee.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/arcee_fusion_rows.h"
#include "kernels/key_selection.h"
#include "kernels/sample_strata.h"

namespace wm {

bool isLocalArcee(const std::vector<ArceeParams>& dests) {
  return std::any_of(dests.begin(), dests.end(), [](const ArceeParams& p) { return p.open; });
}

namespace {
// Up to this many keys: made whole into the scratch and selected in place (std::nth_element), rather than counted by a window
// pass (or two passes over 2^16 counters) as they are made.
constexpr uint64_t kSmallSelection = uint64_t{1} << 16;

// Whether an open dest keeps its keys in its scratch: a small tensor's, unless the planner asked for them recomputed.
bool keepsKeys(const ArceeParams& p, uint64_t count) { return !p.recomputeKeys && count <= kSmallSelection; }

// Each open dest's scratch: its row KLs (8 bytes each, first: they stay aligned), then its keys where it keeps them.
// Rounded up to 8 bytes: the next open dest's row KLs (doubles) start there (4-byte keys of an odd count left them misaligned).
uint64_t scratchOf(const ArceeParams& p, uint64_t count) {
  if (!p.open) return 0;
  return (8 * (count / p.rowLength) + (keepsKeys(p, count) ? 4 * count : 0) + 7) / 8 * 8;
}

// Keys made and counted this many elements at a time (whole rows, at least one), so that the counting reads them from cache.
constexpr uint64_t kKeyBlock = 16384;

// An open dest's order keys, after its row KLs (computed first over the whole tensor into `kl`, arceeRowKls: rows ordered
// by their maxes across the tensor, not only within a block): all at once, a sample of them, or a block of whole rows at a
// time into a block that the next one overwrites (each pass makes them again from the sources and the row KLs).
class TensorKeys {
 public:
  TensorKeys(const ArceeParams& p, const void* const* srcs, const Dtype* types, uint64_t count, double* kl)
      : p_(p), srcs_(srcs), types_(types), count_(count), at_(1 + std::max(p.base, p.model)) {
    arceeRowKls(srcs, types, p, count, kl);
    p_.rowKl = kl;
  }
  void all(uint32_t* out) const { arceeRowKeys(srcs_, types_, p_, 0, count_, out); }
  // The keys of a sample of s elements (sampleStrata's), each computed alone; the elements' lines are prefetched some
  // samples ahead (each is a cache miss in both sources, which otherwise wait one after another).
  void sample(uint32_t* out, size_t s) const {
    if (count_ > UINT32_MAX) throw std::logic_error("internal: an arcee_fusion tensor-local job of 2^32 elements or more");
    thread_local std::vector<uint32_t> at;
    at.resize(s);
    sampleStrata(count_, s, at.data(), [](uint64_t i) { return static_cast<uint32_t>(i); });
    const void* a = srcs_[p_.base];
    const void* b = srcs_[p_.model];
    const Dtype ta = types_[p_.base], tb = types_[p_.model];
    constexpr size_t kAhead = 16;
    for (size_t k = 0; k < s; ++k) {
      if (k + kAhead < s) {
        __builtin_prefetch(static_cast<const uint8_t*>(a) + at[k + kAhead] * dtypeSize(ta));
        __builtin_prefetch(static_cast<const uint8_t*>(b) + at[k + kAhead] * dtypeSize(tb));
      }
      arceeKeys(a, ta, b, tb, at[k], 1, p_.rowKl[at[k] / p_.rowLength], out + k);
    }
  }
  // Calls f(keys, n) for consecutive blocks of the keys in element order.
  template <typename F>
  void each(F f) {
    const uint64_t step = std::max<uint64_t>(1, kKeyBlock / p_.rowLength) * p_.rowLength;
    thread_local std::vector<uint32_t> block;
    if (block.size() < step) block.resize(step);
    for (uint64_t start = 0; start < count_; start += step) {
      const size_t n = static_cast<size_t>(std::min(step, count_ - start));
      for (size_t s = 0; s < at_.size(); ++s) at_[s] = static_cast<const uint8_t*>(srcs_[s]) + start * dtypeSize(types_[s]);
      arceeRowKeys(at_.data(), types_, p_, start, n, block.data());
      f(block.data(), n);
    }
  }

 private:
  ArceeParams p_;
  const void* const* srcs_;
  const Dtype* types_;
  uint64_t count_;
  std::vector<const void*> at_;
};

// The keys at the ranks by RadixSelection: the high digit in one pass that makes the keys, the low one in another.
void radixSelect(TensorKeys& keys, uint64_t count, const uint64_t ranks[3], uint32_t at[3]) {
  RadixSelection selection(count, ranks);
  keys.each([&](const uint32_t* k, size_t n) { selection.countHigh(k, n); });
  selection.startLow();
  keys.each([&](const uint32_t* k, size_t n) { selection.countLow(k, n); });
  selection.result(at);
}

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
    auto* stored = keepsKeys(p, count) ? reinterpret_cast<uint32_t*>(scratch + 8 * (count / p.rowLength)) : nullptr;
    scratch += scratchOf(p, count);
    p.open = false;
    // lib/recipes/arcee-fusion-statistics.ts's ranks: Math.floor(q * (count - 1)) in f64.
    const double quantiles[3] = {0.25, 0.5, 0.75};
    uint64_t ranks[3];
    for (int q = 0; q < 3; ++q) ranks[q] = static_cast<uint64_t>(std::floor(quantiles[q] * static_cast<double>(count - 1)));
    uint32_t at[3];
    TensorKeys keys(p, srcs, types, count, kl);
    if (stored != nullptr) {
      keys.all(stored);
      keysAtRanksInPlace(stored, count, ranks, at);
    } else {
      // Windows placed by a sample of keys computed alone, counted as the keys are made.
      thread_local std::vector<uint32_t> sample;
      sample.resize(windowSampleSize(count));
      keys.sample(sample.data(), sample.size());
      WindowedSelection windows(count, ranks, sample);
      keys.each([&](const uint32_t* k, size_t n) { windows.count(k, n); });
      if (!windows.result(at)) radixSelect(keys, count, ranks, at);  // a rank outside its window, or ties that filled it
    }
    p.threshold = arceeFusionThreshold(arceeImportanceOfKey(at[0]), arceeImportanceOfKey(at[1]), arceeImportanceOfKey(at[2]));
    p.rowKl = kl;
  }
}

}  // namespace wm
