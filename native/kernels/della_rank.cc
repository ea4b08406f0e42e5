// DELLA's per-row ranks by counting (della_rank.h).
#include "della_rank.h"

#include <algorithm>
#include <stdexcept>

#include "cpu_backends.h"

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

// The OR of a row's keys' low 16 bits (0: a uniform row), apart from count()'s loop: a unit-stride loop GCC vectorizes.
uint32_t lowBitsOf(const uint32_t* keys, size_t stride, uint32_t L) {
  uint32_t bits = 0;
  if (stride == 1) {
    for (uint32_t t = 0; t < L; ++t) bits |= keys[t];
  } else {
    for (uint32_t t = 0; t < L; ++t) bits |= keys[t * stride];
  }
  return bits & 0xFFFFu;
}

}  // namespace

namespace scalar {
uint32_t dellaSplitDraws(const uint64_t* u, size_t stride, uint32_t L, uint64_t low, uint64_t high, uint8_t* keep, uint32_t* middle) {
  for (uint32_t t = 0; t < L; ++t) keep[t * stride] = u[t * stride] < low;
  uint32_t nm = 0;
  for (uint32_t t = 0; t < L; ++t) {
    middle[nm] = t;
    nm += u[t * stride] - low < high - low;  // low <= u < high, branch-free
  }
  return nm;
}

uint32_t dellaEqualKeys(const uint32_t* keys, size_t stride, uint32_t from, uint32_t to, uint32_t key) {
  uint32_t n = 0;
  for (uint32_t s = from; s < to; ++s) n += keys[s * stride] == key;
  return n;
}
}  // namespace scalar

DellaRowRanker::DellaRowRanker() : next_(kBuckets * kChunks, 0), occupied_(kBuckets / 64, 0) {}

void DellaRowRanker::count(const uint32_t* keys, size_t stride, uint32_t L) { countKeys<false>(keys, stride, L, nullptr, nullptr); }

void DellaRowRanker::count(const uint32_t* keys, size_t stride, uint32_t L, const uint64_t* u, const DellaLimits& limits, uint8_t* keep) {
  if (middle_.size() < L + 4) {
    middle_.resize(L + 4);
    exact_.resize(L);
  }
  middleCount_ = dellaSplitDraws(u, stride, L, limits.low, limits.high, keep, middle_.data());
  countKeys<true>(keys, stride, L, keep, &limits);
}

template <bool Draws>
void DellaRowRanker::countKeys(const uint32_t* keys, size_t stride, uint32_t L, const uint8_t* surelyKept, const DellaLimits* limits) {
  // Each chunk's count per bucket (and its surely kept draws), and a bucket appended to `distinct_` at its first key in
  // each chunk (branch-free: a branch on it mispredicts at every new value).
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
    distinct_[nd] = h;
    const uint64_t sure = Draws ? surelyKept[t * stride] : 0;
    uint64_t& entry = next[h * kChunks + c];
    nd += static_cast<uint32_t>(entry) == 0;
    entry += 1 + (sure << 32);
  });
  for (uint32_t i = 0; i < nd; ++i) {
    const uint32_t h = distinct_[i];
    occupied_[h >> 6] |= uint64_t{1} << (h & 63);
    summary_[h >> 12] |= uint64_t{1} << ((h >> 6) & 63);
  }
  uniform_ = lowBitsOf(keys, stride, L) == 0;
  drawing_ = Draws && uniform_;
  // The occupied buckets in ascending order (into `distinct_`), each chunk's count turned into its first rank (the last
  // chunk's positions, the highest, rank first) or, for draw(), the bucket's index, the position L and no keys counted
  // above it, and its surely kept draws; the bitmaps left clear.
  nd = 0;
  uint32_t first = 0;
  for (uint32_t s = 0; s < kBuckets / 4096; ++s) {
    for (uint64_t sw = summary_[s]; sw != 0; sw &= sw - 1) {
      const uint32_t w = s * 64 + static_cast<uint32_t>(__builtin_ctzll(sw));
      for (uint64_t ow = occupied_[w]; ow != 0; ow &= ow - 1) {
        const uint32_t h = w * 64 + static_cast<uint32_t>(__builtin_ctzll(ow));
        uint64_t* entry = next + h * kChunks;
        first_[nd] = first;
        if (drawing_) {
          uint64_t sum = 0;
          for (uint32_t c = 0; c < kChunks; ++c) sum += entry[c];
          const uint64_t a = limits->limit[first], b = limits->limit[first + static_cast<uint32_t>(sum) - 1];
          first += static_cast<uint32_t>(sum);
          kept_[nd] = static_cast<uint32_t>(sum >> 32);
          entry[0] = nd;
          entry[1] = L;
          entry[2] = a < b ? a : b;
          entry[3] = a < b ? b : a;
        } else {
          for (uint32_t c = kChunks; c-- > 0;) {
            const uint32_t count = static_cast<uint32_t>(entry[c]);
            entry[c] = first;
            first += count;
          }
        }
        distinct_[nd++] = h;
      }
      occupied_[w] = 0;
    }
    summary_[s] = 0;
  }
  first_[nd] = L;
  buckets_ = nd;
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

void DellaRowRanker::draw(const uint32_t* keys, size_t stride, uint32_t L, const uint64_t* u, const DellaLimits& limits, uint8_t* keep) {
  if (!drawing_) throw std::logic_error("internal: DellaRowRanker::draw on a row not counted with draws or not uniform");
  static_assert(kChunks >= 4, "draw() keeps four words per bucket in next_");
  // count() decided the draws below low (kept) and at or above high (dropped), and listed the rest.
  const uint32_t* middle = middle_.data();
  uint32_t* exact = exact_.data();
  const uint32_t nm = middleCount_;
  // Decided by the bucket: every rank of bucket i lies in [first(i), first(i + 1)), so a draw below the least of its limits
  // is kept and one at or above the greatest dropped; the rest listed in descending position.
  uint64_t* next = next_.data();
  uint32_t* keptOf = kept_.data();  // a local pointer: else reloaded after every keep byte's store (a char may alias it)
  uint32_t ne = 0;
  for (uint32_t k = nm; k-- > 0;) {
    const uint32_t t = middle[k];
    const uint64_t* entry = next + (keys[t * stride] >> 16) * kChunks;
    const uint64_t least = entry[2], x = u[t * stride];
    const bool kept = x < least;
    keep[t * stride] = kept;
    keptOf[static_cast<uint32_t>(entry[0])] += kept;
    exact[ne] = t;
    ne += x - least < entry[3] - least;
  }
  // The rank of the rest: first(i) plus the keys equal to its own at higher positions (the lower position ranks higher),
  // counted from where the bucket's previous one (at a higher position) left off, or as the bucket's count less those at
  // lower positions where fewer keys lie below.
  for (uint32_t k = 0; k < ne; ++k) {
    const uint32_t t = exact[k], key = keys[t * stride];
    uint64_t* entry = next + (key >> 16) * kChunks;
    const uint32_t i = static_cast<uint32_t>(entry[0]), from = static_cast<uint32_t>(entry[1]);
    const uint32_t above = from - t - 1 <= t ? static_cast<uint32_t>(entry[1] >> 32) + dellaEqualKeys(keys, stride, t + 1, from, key)
                                             : first_[i + 1] - first_[i] - 1 - dellaEqualKeys(keys, stride, 0, t, key);
    const bool kept = u[t * stride] < limits.limit[first_[i] + above];
    keep[t * stride] = kept;
    keptOf[i] += kept;
    entry[1] = (static_cast<uint64_t>(above + 1) << 32) | t;
  }
  clear();
}

}  // namespace wm
