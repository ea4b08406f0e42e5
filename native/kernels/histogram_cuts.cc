// rankCutsByHistogram's passes, a chunk at a time (histogram_cuts.h).
#include "histogram_cuts.h"

#include <algorithm>

#include "sparse_select.h"
#include "sparsify.h"

namespace wm {

namespace {
constexpr size_t kHigh = size_t{1} << 15, kLow = size_t{1} << 16;  // the sign bit is clear: |d| >> 16 < 2^15
}  // namespace

HistogramCuts::HistogramCuts(uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts, std::vector<uint64_t>& counters)
    : count_(count), indexBits_(sparseIndexBits(count)), cuts_(cuts), counters_(counters) {
  for (size_t q = 0; q < k; ++q) {
    cuts[q] = ranks[q] == 0 ? kRankKeyNone : 0;
    if (ranks[q] != 0 && ranks[q] < count) open_.push_back({q, ranks[q]});
  }
  if (open_.empty()) {
    pass_ = 4;
    return;
  }
  counters_.assign(2 * kHigh + open_.size() * kLow, 0);
}

void HistogramCuts::add(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t start, uint64_t n) {
  forEachAbsBitsChunk(base, tb, x, tx, n, [&](uint64_t j, const uint32_t* a, size_t len) {
    if (done()) return false;  // a tie's index scan found its element: the rest of the pass is not needed
    addBits(start + j, a, len);
    return true;
  });
}

void HistogramCuts::addBits(uint64_t start, const uint32_t* a, size_t n) {
  if (pass_ == 1) {
    // Shared by all cuts. Two interleaved histograms (neighbours often share a bin: one would serialize the increments).
    uint64_t* high = counters_.data();
    uint64_t* high2 = high + kHigh;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
      ++high[a[i] >> 16];
      ++high2[a[i + 1] >> 16];
    }
    if (i < n) ++high[a[i] >> 16];
  } else if (pass_ == 2) {
    // The low 16 bits inside each cut's bin.
    for (Open& o : open_) {
      // Locals, not members: the counters' stores could alias them and force a reload per element.
      uint64_t* low = o.low;
      const uint32_t top = o.top;
      size_t i = 0;
      for (; i + 16 <= n; i += 16) {  // sixteen at a time, in vector lanes: most hold none of the bin
        if (!anyInBin16(a + i, top)) continue;
        for (size_t k = i; k < i + 16; ++k) {
          if ((a[k] >> 16) == top) ++low[a[k] & 0xFFFFu];
        }
      }
      for (; i < n; ++i) {
        if ((a[i] >> 16) == top) ++low[a[i] & 0xFFFFu];
      }
    }
  } else if (pass_ == 3) {
    // Equal |d| rank by index, lower first: the need-th of them in index order is the cut's element.
    bool all = true;
    for (Open& o : open_) {
      if (!o.tie) continue;
      uint64_t need = o.need;
      const uint32_t value = o.value;
      for (size_t i = 0; i < n && need > 0; ++i) {
        if (a[i] == value && --need == 0) cuts_[o.q] = sparseRankKey(value, indexBits_, count_, start + i);
      }
      o.need = need;
      all = all && need == 0;
    }
    if (all) pass_ = 4;  // the rest of the pass can be skipped
  }
}

void HistogramCuts::endPass() {
  if (pass_ == 1) {
    uint64_t* high = counters_.data();
    for (size_t b = 0; b < kHigh; ++b) high[b] += high[kHigh + b];
    for (size_t q = 0; q < open_.size(); ++q) {
      open_[q].top = static_cast<uint32_t>(binOfRank(high, kHigh, open_[q].need));
      open_[q].low = counters_.data() + 2 * kHigh + q * kLow;
    }
    pass_ = 2;
  } else if (pass_ == 2) {
    bool ties = false;
    for (Open& o : open_) {
      const uint32_t bottom = static_cast<uint32_t>(binOfRank(o.low, kLow, o.need));
      o.value = (o.top << 16) | bottom;
      // Every element with this |d| is kept: the lowest key it can have is the cut.
      if (o.low[bottom] == o.need) cuts_[o.q] = static_cast<uint64_t>(o.value) << indexBits_;
      else o.tie = ties = true;
    }
    pass_ = ties ? 3 : 4;
  } else {
    pass_ = 4;
  }
}

}  // namespace wm
