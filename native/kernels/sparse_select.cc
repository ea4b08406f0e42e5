// In-memory rank cuts (sparse_select.h) and the scalar |d| bits they are built from.
#include "sparse_select.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu_backends.h"
#include "element_io.h"
#include "numerics.h"
#include "sparsify.h"

namespace wm {

namespace scalar {

void absDeltaBits(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* out) {
  withDtype(tb, [&](auto B) {
    withDtype(tx, [&](auto X) {
      for (size_t i = 0; i < n; ++i) {
        out[i] = num::f32Bits(num::subRn(loadElem<decltype(X)::value>(x, i), loadElem<decltype(B)::value>(base, i))) & 0x7FFFFFFFu;
      }
    });
  });
}

void sparseKeep(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n,
                uint8_t* keep) {
  const bool masked = m.density > 0 && m.density < 1;
  for (size_t j = 0; j < n; ++j) {
    const uint64_t key = sparseRankKey(absBits[j], indexBits, count, start + j);
    keep[j] = key >= m.lowKey && key < m.highKey && (!masked || bernoulliKeep(m.seedKey, start + j, m.density));
  }
}

}  // namespace scalar

namespace {

constexpr size_t kChunk = 4096;

// Calls f(j0, a, n) for consecutive chunks of |d| bits: a[0..n) are elements j0..j0+n.
template <typename F>
void forEachChunk(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, F f) {
  uint32_t a[kChunk];
  const auto* b8 = static_cast<const uint8_t*>(base);
  const auto* x8 = static_cast<const uint8_t*>(x);
  for (uint64_t j = 0; j < count; j += kChunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, count - j));
    absDeltaBits(b8 + j * dtypeSize(tb), tb, x8 + j * dtypeSize(tx), tx, n, a);
    f(j, a, n);
  }
}

// The bin holding the rank-th largest element, counting from the top bin down; `need` becomes its rank inside the bin.
size_t binOfRank(const uint64_t* hist, size_t bins, uint64_t& need) {
  size_t bin = bins - 1;
  for (; bin > 0 && hist[bin] < need; --bin) need -= hist[bin];
  return bin;
}

}  // namespace

void rankCuts(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts) {
  struct Open {
    size_t q;
    uint64_t need;
    uint32_t top = 0, value = 0;
    uint64_t* low = nullptr;
  };
  std::vector<Open> open;
  for (size_t q = 0; q < k; ++q) {
    cuts[q] = ranks[q] == 0 ? kRankKeyNone : 0;
    if (ranks[q] != 0 && ranks[q] < count) open.push_back({q, ranks[q]});
  }
  if (open.empty()) return;
  const uint32_t indexBits = sparseIndexBits(count);
  // The counters, per thread and kept: freeing ~1.5 MB per tensor let the allocator trim the heap
  // and fault the pages back in on the next (more system time than the passes' own work).
  constexpr size_t kHigh = size_t{1} << 15, kLow = size_t{1} << 16;  // the sign bit is clear: |d| >> 16 < 2^15
  thread_local std::vector<uint64_t> counters;
  counters.assign(2 * kHigh + open.size() * kLow, 0);
  // Pass 1, shared by all cuts. Two interleaved histograms (neighbours often share a bin: one would serialize the increments).
  uint64_t* high = counters.data();
  uint64_t* high2 = high + kHigh;
  forEachChunk(base, tb, x, tx, count, [&](uint64_t, const uint32_t* a, size_t n) {
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
      ++high[a[i] >> 16];
      ++high2[a[i + 1] >> 16];
    }
    if (i < n) ++high[a[i] >> 16];
  });
  for (size_t b = 0; b < kHigh; ++b) high[b] += high2[b];
  for (size_t q = 0; q < open.size(); ++q) {
    open[q].top = static_cast<uint32_t>(binOfRank(high, kHigh, open[q].need));
    open[q].low = counters.data() + 2 * kHigh + q * kLow;
  }
  // Pass 2: the low 16 bits inside each cut's bin.
  forEachChunk(base, tb, x, tx, count, [&](uint64_t, const uint32_t* a, size_t n) {
    for (Open& o : open) {
      // Locals, not members: the counters' stores could alias them and force a reload per element.
      uint64_t* low = o.low;
      const uint32_t top = o.top;
      for (size_t i = 0; i < n; ++i) {
        if ((a[i] >> 16) == top) ++low[a[i] & 0xFFFFu];
      }
    }
  });
  std::vector<Open*> ties;
  for (Open& o : open) {
    const uint32_t bottom = static_cast<uint32_t>(binOfRank(o.low, kLow, o.need));
    o.value = (o.top << 16) | bottom;
    // Every element with this |d| is kept: the lowest key it can have is the cut.
    if (o.low[bottom] == o.need) cuts[o.q] = static_cast<uint64_t>(o.value) << indexBits;
    else ties.push_back(&o);
  }
  if (ties.empty()) return;
  // Pass 3: equal |d| rank by index, lower first: the need-th of them in index order is the cut's element.
  forEachChunk(base, tb, x, tx, count, [&](uint64_t j0, const uint32_t* a, size_t n) {
    for (Open* o : ties) {
      uint64_t need = o->need;
      const uint32_t value = o->value;
      for (size_t i = 0; i < n && need > 0; ++i) {
        if (a[i] == value && --need == 0) cuts[o->q] = sparseRankKey(value, indexBits, count, j0 + i);
      }
      o->need = need;
    }
  });
}

uint64_t rankCut(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, uint64_t rank) {
  uint64_t cut = 0;
  rankCuts(base, tb, x, tx, count, &rank, 1, &cut);
  return cut;
}

L1Sums l1Sums(const void* base, Dtype tb, const void* x, Dtype tx, const SparseModel& keep, uint64_t count) {
  const uint32_t indexBits = sparseIndexBits(count);
  // Four sets of buckets, element i in set i % 4: neighbours mostly share an exponent, and one set
  // would make each add wait for the previous one's store. Integer sums: any split adds up the same.
  constexpr size_t kSets = 4;
  std::vector<uint64_t> before(kSets * kL1Buckets, 0), after(kSets * kL1Buckets, 0);
  uint8_t kept[kChunk];
  forEachChunk(base, tb, x, tx, count, [&](uint64_t j0, const uint32_t* a, size_t n) {
    sparseKeep(a, keep, indexBits, count, j0, n, kept);
    for (size_t i = 0; i < n; ++i) addToL1Buckets(a[i], kept[i] != 0, &before[(i % kSets) * kL1Buckets], &after[(i % kSets) * kL1Buckets]);
  });
  for (size_t set = 1; set < kSets; ++set) {
    for (size_t e = 0; e < kL1Buckets; ++e) {
      before[e] += before[set * kL1Buckets + e];
      after[e] += after[set * kL1Buckets + e];
    }
  }
  return {l1Total(before.data()), l1Total(after.data())};
}

}  // namespace wm
