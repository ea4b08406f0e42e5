// DELLA's per-row ranks by counting (della_rank.h).
#include "della_rank.h"

#include <algorithm>
#include <stdexcept>

namespace wm {

DellaRowRanker::DellaRowRanker() : next_(kBuckets, 0), occupied_(kBuckets / 64, 0) {}

void DellaRowRanker::count(const uint32_t* keys, size_t stride, uint32_t L) {
  uint32_t lowBits = 0;
  // Each bucket's count, and its first key appended to `distinct_` (branch-free: a branch on it mispredicts at every new value).
  if (distinct_.size() < L) {
    distinct_.resize(L);
    first_.resize(L + 1);
    kept_.resize(L);
  }
  uint32_t nd = 0;
  for (uint32_t t = 0; t < L; ++t) {
    const uint32_t key = keys[t * stride];
    const uint32_t h = key >> 16;
    lowBits |= key & 0xFFFFu;
    distinct_[nd] = h;
    nd += next_[h]++ == 0;
  }
  for (uint32_t i = 0; i < nd; ++i) {
    const uint32_t h = distinct_[i];
    occupied_[h >> 6] |= uint64_t{1} << (h & 63);
    summary_[h >> 12] |= uint64_t{1} << ((h >> 6) & 63);
  }
  // The occupied buckets in ascending order (into `distinct_`), each's count turned into its first rank; the bitmaps left clear.
  nd = 0;
  uint32_t first = 0;
  for (uint32_t s = 0; s < kBuckets / 4096; ++s) {
    for (uint64_t sw = summary_[s]; sw != 0; sw &= sw - 1) {
      const uint32_t w = s * 64 + static_cast<uint32_t>(__builtin_ctzll(sw));
      for (uint64_t ow = occupied_[w]; ow != 0; ow &= ow - 1) {
        const uint32_t h = w * 64 + static_cast<uint32_t>(__builtin_ctzll(ow));
        const uint32_t count = static_cast<uint32_t>(next_[h]);
        next_[h] = first;
        first_[nd] = first;
        first += count;
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

void DellaRowRanker::assign(const uint32_t* keys, size_t stride, uint32_t L, uint32_t* rank) {
  const uint32_t nd = buckets_;
  if (uniform_) {
    // Keys equal within each bucket: descending positions take a bucket's ranks in ascending order.
    for (uint32_t t = L; t-- > 0;) rank[t * stride] = static_cast<uint32_t>(next_[keys[t * stride] >> 16]++);
  } else {
    // Positions by bucket (descending positions within one, as above), then each bucket stably by its low 16 bits.
    order_.resize(L);
    for (uint32_t t = L; t-- > 0;) order_[next_[keys[t * stride] >> 16]++] = t;
    auto low = [&](uint32_t t) { return keys[t * stride] & 0xFFFFu; };
    uint32_t begin = 0;
    for (uint32_t i = 0; i < nd; ++i) {
      const uint32_t end = static_cast<uint32_t>(next_[distinct_[i]]);
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
      begin = end;
    }
    for (uint32_t r = 0; r < L; ++r) rank[order_[r] * stride] = r;
  }
  for (uint32_t i = 0; i < nd; ++i) next_[distinct_[i]] = 0;
}

void DellaRowRanker::draw(const uint32_t* keys, size_t stride, uint32_t L, const uint64_t* u, const uint64_t* limit, uint8_t* keep) {
  if (!uniform_) throw std::logic_error("internal: DellaRowRanker::draw on a row whose buckets are not uniform");
  // assign()'s uniform ranks, each compared at once; a bucket's entry counts its next rank (low half) and its kept elements (high).
  for (uint32_t t = L; t-- > 0;) {
    uint64_t& entry = next_[keys[t * stride] >> 16];
    const uint64_t e = entry;
    const uint64_t k = u[t * stride] < limit[static_cast<uint32_t>(e)];
    entry = e + 1 + (k << 32);
    keep[t * stride] = static_cast<uint8_t>(k);
  }
  for (uint32_t i = 0; i < buckets_; ++i) {
    kept_[i] = static_cast<uint32_t>(next_[distinct_[i]] >> 32);
    next_[distinct_[i]] = 0;
  }
}

}  // namespace wm
