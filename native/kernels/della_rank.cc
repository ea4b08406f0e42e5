// DELLA's per-row ranks by counting (della_rank.h).
#include "della_rank.h"

#include <algorithm>
#include <stdexcept>

namespace wm {

namespace {

// A row's positions cut into kChunks chunks of L / kChunks (the last also takes the rest), each with its own counters per
// bucket: the chunks' read-modify-writes interleave, where one counter's would wait on the last store to a repeated bucket.
constexpr uint32_t kChunks = DellaRowRanker::kChunks;

// f(t, c) for every position t of a row, c its chunk: the chunks in turn (t = c * Lc + i for i ascending), then the last's rest.
template <class F>
inline void eachAscending(uint32_t L, F&& f) {
  const uint32_t Lc = L / kChunks;
  for (uint32_t i = 0; i < Lc; ++i) {
    for (uint32_t c = 0; c < kChunks; ++c) f(c * Lc + i, c);
  }
  for (uint32_t t = kChunks * Lc; t < L; ++t) f(t, kChunks - 1);
}

// The same positions, each chunk's in descending order (the last's rest first: its highest positions).
template <class F>
inline void eachDescending(uint32_t L, F&& f) {
  const uint32_t Lc = L / kChunks;
  for (uint32_t t = L; t-- > kChunks * Lc;) f(t, kChunks - 1);
  for (uint32_t i = Lc; i-- > 0;) {
    for (uint32_t c = 0; c < kChunks; ++c) f(c * Lc + i, c);
  }
}

}  // namespace

DellaRowRanker::DellaRowRanker() : next_(kBuckets * kChunks, 0), occupied_(kBuckets / 64, 0) {}

void DellaRowRanker::count(const uint32_t* keys, size_t stride, uint32_t L) {
  uint32_t lowBits = 0;
  // Each chunk's count per bucket, and a bucket appended to `distinct_` at its first key in each chunk (branch-free: a
  // branch on it mispredicts at every new value).
  if (distinct_.size() < L) {
    distinct_.resize(L);
    first_.resize(L + 1);
    kept_.resize(L);
  }
  uint32_t nd = 0;
  uint64_t* next = next_.data();
  eachAscending(L, [&](uint32_t t, uint32_t c) {
    const uint32_t key = keys[t * stride];
    const uint32_t h = key >> 16;
    lowBits |= key & 0xFFFFu;
    distinct_[nd] = h;
    nd += next[h * kChunks + c]++ == 0;
  });
  for (uint32_t i = 0; i < nd; ++i) {
    const uint32_t h = distinct_[i];
    occupied_[h >> 6] |= uint64_t{1} << (h & 63);
    summary_[h >> 12] |= uint64_t{1} << ((h >> 6) & 63);
  }
  // The occupied buckets in ascending order (into `distinct_`), each chunk's count turned into its first rank (the last
  // chunk's positions, the highest, rank first); the bitmaps left clear.
  nd = 0;
  uint32_t first = 0;
  for (uint32_t s = 0; s < kBuckets / 4096; ++s) {
    for (uint64_t sw = summary_[s]; sw != 0; sw &= sw - 1) {
      const uint32_t w = s * 64 + static_cast<uint32_t>(__builtin_ctzll(sw));
      for (uint64_t ow = occupied_[w]; ow != 0; ow &= ow - 1) {
        const uint32_t h = w * 64 + static_cast<uint32_t>(__builtin_ctzll(ow));
        first_[nd] = first;
        for (uint32_t c = kChunks; c-- > 0;) {
          const uint32_t count = static_cast<uint32_t>(next[h * kChunks + c]);
          next[h * kChunks + c] = first;
          first += count;
        }
        distinct_[nd++] = h;
      }
      occupied_[w] = 0;
    }
    summary_[s] = 0;
  }
  first_[nd] = L;
  buckets_ = nd;
  uniform_ = lowBits == 0;
}

void DellaRowRanker::clear() {
  for (uint32_t i = 0; i < buckets_; ++i) {
    for (uint32_t c = 0; c < kChunks; ++c) next_[distinct_[i] * kChunks + c] = 0;
  }
}

void DellaRowRanker::assign(const uint32_t* keys, size_t stride, uint32_t L, uint32_t* rank) {
  const uint32_t nd = buckets_;
  uint64_t* next = next_.data();
  if (uniform_) {
    // Keys equal within each bucket: descending positions take a bucket's ranks in ascending order.
    eachDescending(L, [&](uint32_t t, uint32_t c) { rank[t * stride] = static_cast<uint32_t>(next[(keys[t * stride] >> 16) * kChunks + c]++); });
  } else {
    // Positions by bucket (descending positions within one, as above), then each bucket stably by its low 16 bits.
    order_.resize(L);
    eachDescending(L, [&](uint32_t t, uint32_t c) { order_[next[(keys[t * stride] >> 16) * kChunks + c]++] = t; });
    auto low = [&](uint32_t t) { return keys[t * stride] & 0xFFFFu; };
    for (uint32_t i = 0; i < nd; ++i) {
      const uint32_t begin = first_[i], end = first_[i + 1];
      if (end - begin > 32) {
        std::stable_sort(order_.begin() + begin, order_.begin() + end, [&](uint32_t a, uint32_t b) { return low(a) < low(b); });
      } else {
        // Insertion sort (stable, no allocation): a mixed bucket of bf16 |d| holds a few elements.
        for (uint32_t i = begin + 1; i < end; ++i) {
          const uint32_t t = order_[i];
          uint32_t j = i;
          for (; j > begin && low(order_[j - 1]) > low(t); --j) order_[j] = order_[j - 1];
          order_[j] = t;
        }
      }
    }
    for (uint32_t r = 0; r < L; ++r) rank[order_[r] * stride] = r;
  }
  clear();
}

void DellaRowRanker::draw(const uint32_t* keys, size_t stride, uint32_t L, const uint64_t* u, const uint64_t* limit, uint8_t* keep) {
  if (!uniform_) throw std::logic_error("internal: DellaRowRanker::draw on a row whose buckets are not uniform");
  // assign()'s uniform ranks, each compared at once; a counter holds its next rank (low half) and its kept elements (high).
  uint64_t* next = next_.data();
  eachDescending(L, [&](uint32_t t, uint32_t c) {
    uint64_t& entry = next[(keys[t * stride] >> 16) * kChunks + c];
    const uint64_t e = entry;
    const uint64_t k = u[t * stride] < limit[static_cast<uint32_t>(e)];
    entry = e + 1 + (k << 32);
    keep[t * stride] = static_cast<uint8_t>(k);
  });
  for (uint32_t i = 0; i < buckets_; ++i) {
    uint32_t kept = 0;
    for (uint32_t c = 0; c < kChunks; ++c) kept += static_cast<uint32_t>(next[distinct_[i] * kChunks + c] >> 32);
    kept_[i] = kept;
  }
  clear();
}

}  // namespace wm
