// DELLA's per-row ranks by counting (della_rank.h).
#include "della_rank.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <type_traits>

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

// The chunk eachAscending gives position t of a row of chunks of Lc = L / kChunks (3 for the last's rest, and wherever Lc = 0).
inline uint32_t chunkOf(uint32_t t, uint32_t Lc) {
  static_assert(kChunks == 4, "chunkOf takes 4 chunks");
  return static_cast<uint32_t>(t >= Lc) + (t >= 2 * Lc) + (t >= 3 * Lc);
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

using Lanes4 = uint32_t __attribute__((vector_size(16)));

// Lane i of v's lanes i + K .. (zeros past the last): a shift towards lane 0.
template <int K>
inline Lanes4 shiftDown(Lanes4 v) {
  const Lanes4 zero = {0, 0, 0, 0};
#if defined(__clang__)
  return __builtin_shufflevector(v, zero, K, K + 1, K + 2, K + 3);
#else
  return __builtin_shuffle(v, zero, Lanes4{K, K + 1, K + 2, K + 3});
#endif
}

// Lanes K and K + 1 of a and b, interleaved: a[K], b[K], a[K + 1], b[K + 1].
template <int K>
inline Lanes4 interleave(Lanes4 a, Lanes4 b) {
#if defined(__clang__)
  return __builtin_shufflevector(a, b, K, K + 4, K + 1, K + 5);
#else
  return __builtin_shuffle(a, b, Lanes4{K, K + 4, K + 1, K + 5});
#endif
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

uint32_t dellaOddKeys(const uint32_t* keys, uint32_t L, uint32_t* odd) {
  uint32_t n = 0;
  for (uint32_t t = 0; t < L; ++t) {
    odd[n] = t;  // branch-free: odd[n] <= t < L
    n += (keys[t] & 0xFFFFu) != 0;
  }
  return n;
}

uint32_t dellaKeysIn(const uint32_t* keys, size_t stride, uint32_t from, uint32_t to, uint32_t lo, uint32_t span) {
  uint32_t n = 0;
  for (uint32_t s = from; s < to; ++s) n += keys[s * stride] - lo < span;
  return n;
}

uint32_t dellaDrawSplit(uint64_t seedKey, uint64_t first, uint32_t L, uint64_t low, uint64_t high, uint8_t* keep, uint32_t* middle, uint64_t* u) {
  dellaUniforms(seedKey, first, L, u);
  return dellaSplitDraws(u, 1, L, low, high, keep, middle);
}

uint32_t dellaTakeMarks(uint8_t* marks, uint32_t from, uint32_t to, uint32_t* buckets) {
  uint32_t n = 0;
  for (uint32_t h = from; h < to; ++h) {
    if (marks[h] == 0) continue;
    marks[h] = 0;
    buckets[n++] = h;
  }
  return n;
}
}  // namespace scalar

DellaRowRanker::DellaRowRanker() : next_(kBuckets * kChunks, 0), occupied_(kBuckets / 64, 0) {}

void DellaRowRanker::count(const uint32_t* keys, size_t stride, uint32_t L) {
  oddCount_ = 0;
  countKeys<false>(keys, stride, L, nullptr, false);
}

void DellaRowRanker::reserveDraws(uint32_t L) {
  if (middle_.size() < L + 4) {
    middle_.resize(L + 4);
    exact_.resize(L);
  }
}

void DellaRowRanker::count(const uint32_t* keys, size_t stride, uint32_t L, const uint64_t* u, const DellaLimits& limits, uint8_t* keep,
                           bool uniformKnown) {
  reserveDraws(L);
  oddCount_ = 0;
  middleCount_ = dellaSplitDraws(u, stride, L, limits.low, limits.high, keep, middle_.data());
  countKeys<true>(keys, stride, L, keep, uniformKnown);
}

void DellaRowRanker::countDrawing(const uint32_t* keys, uint32_t L, uint64_t seedKey, uint64_t first, const DellaLimits& limits, uint8_t* keep,
                                  uint64_t* u, const DellaKeyFacts& facts) {
  oddCount_ = 0;
  const bool uniform = facts.uniform();
  if (!uniform) {
    if (odd_.size() < size_t{L} + 16) odd_.resize(size_t{L} + 16);
    oddCount_ = dellaOddKeys(keys, L, odd_.data());
    if (mixed_.empty()) mixed_.assign(kBuckets, 0);
    for (uint32_t k = 0; k < oddCount_; ++k) ++mixed_[keys[odd_[k]] >> 16];
  }
  reserveDraws(L);
  middleCount_ = dellaDrawSplit(seedKey, first, L, limits.low, limits.high, keep, middle_.data(), u);
  const uint32_t lowest = facts.lowest, highest = facts.highest;
  // countPacked scans a byte per bucket of the key span: where that span is wide for the row (tiny |d| beside Inf or NaN in
  // a short row: up to 32 KiB), countKeys' bitmap costs less.
  if (L < kPackedRows && (lowest > highest || highest - lowest <= 16 * L)) {
    countPacked(keys, L, keep, lowest, highest);
  } else {
    countKeys<true>(keys, 1, L, keep, uniform);
  }
}

void DellaRowRanker::reserveBuckets(uint32_t L) {
  if (distinct_.size() < size_t{L} + 16) distinct_.resize(size_t{L} + 16);
  if (first_.size() < size_t{L} + 1) first_.resize(size_t{L} + 1);
  if (kept_.size() < L) kept_.resize(L);
}

void DellaRowRanker::countPacked(const uint32_t* keys, uint32_t L, const uint8_t* surelyKept, uint32_t lowest, uint32_t highest) {
  reserveBuckets(L);
  if (packed_.empty()) {
    packed_.assign(size_t{kBuckets} * kChunks, 0);
    marks_.assign(kBuckets, 0);
    ranges_.resize(size_t{kBuckets} * kChunks);
    oddRanges_.resize(kBuckets);
  }
  uint32_t* packed = packed_.data();
  uint8_t* marks = marks_.data();
  // One add to memory and one byte store per element (countKeys also appends to a list and counts new buckets).
  eachAscending(L, [&](uint32_t t, uint32_t c) {
    const uint32_t h = keys[t] >> 16;
    packed[h * kChunks + c] += 1u + (static_cast<uint32_t>(surelyKept[t]) << 16);
    marks[h] = 1;
  });
  // The occupied buckets in ascending order: bucket 0 (zero keys), then the marks between the least nonzero and greatest key.
  uint32_t nd = dellaTakeMarks(marks, 0, 1, distinct_.data());
  if (lowest <= highest) nd += dellaTakeMarks(marks, std::max(lowest, 1u), highest + 1, distinct_.data() + nd);
  // Each chunk's count turned into its first rank and the end of its ranks (draw()'s layout, as countKeys' in next_, here in
  // ranges_), the bucket's surely kept draws at its first rank; the words left zero.
  // A bucket's four words in one 4-lane vector (GCC's vector extension, portable): chunk c's ranks start after those of the
  // chunks above it, so its first rank is `first` plus the counts of chunks c + 1 .. 3 (a suffix sum); the scalar loop, one
  // add after another per chunk, was half of countPacked's samples.
  static_assert(kChunks == 4, "one 4-lane vector per bucket");
  const Lanes4 zero = {0, 0, 0, 0};
  uint64_t* next = ranges_.data();
  uint32_t* firstOf = first_.data();
  uint32_t* keptAt = kept_.data();
  const bool mixedRow = oddCount_ > 0;
  const uint32_t* mixed = mixed_.data();
  // A mixed bucket's words count its even keys only: its odd ones rank above them, in a range of their own (oddRanges_), so
  // that its even keys keep their chunks' ranges as a uniform bucket's do.
  const uint32_t Lc = L / kChunks;
  for (uint32_t k = 0; k < oddCount_; ++k) {
    const uint32_t t = odd_[k];
    packed[(keys[t] >> 16) * kChunks + chunkOf(t, Lc)] -= 1;
  }
  uint32_t first = 0;
  for (uint32_t i = 0; i < nd; ++i) {
    const uint32_t h = distinct_[i];
    uint32_t* word = packed + h * kChunks;
    Lanes4 w;
    std::memcpy(&w, word, sizeof w);
    std::memcpy(word, &zero, sizeof zero);
    const Lanes4 count = w & 0xFFFFu, sure = w >> 16;
    Lanes4 through = count + shiftDown<1>(count);  // lane c: the counts of chunks c .. 3
    through += shiftDown<2>(through);
    const Lanes4 from = first + through - count, to = first + through;
    uint32_t odd = 0;
    if (mixedRow) {
      odd = mixed[h];
      const uint64_t oddFrom = first + through[0];
      oddRanges_[h] = oddFrom | (oddFrom + odd) << 32;
    }
    // entry[c] = from[c] | to[c] << 32 (little-endian 64-bit words)
    const Lanes4 low = interleave<0>(from, to), high = interleave<2>(from, to);
    std::memcpy(next + h * kChunks, &low, sizeof low);
    std::memcpy(next + h * kChunks + 2, &high, sizeof high);
    firstOf[i] = first;
    keptAt[first] = sure[0] + sure[1] + sure[2] + sure[3];
    first += through[0] + odd;
  }
  first_[nd] = L;
  buckets_ = nd;
  uniform_ = oddCount_ == 0;
  drawing_ = true;
  packedRanges_ = true;
}

template <bool Draws>
void DellaRowRanker::countKeys(const uint32_t* keys, size_t stride, uint32_t L, const uint8_t* surelyKept, bool uniformKnown) {
  // Each chunk's count per bucket (and its surely kept draws), and a bucket appended to `distinct_` at its first key in
  // each chunk (branch-free: a branch on it mispredicts at every new value).
  reserveBuckets(L);
  packedRanges_ = false;
  uint32_t nd = 0;
  uint64_t* next = next_.data();
  uint32_t* distinct = distinct_.data();
  // Stride 1 (a matrix's rows) as a constant: the loop's addresses then need no multiply, and fewer registers.
  auto countAll = [&](auto step) {
    eachAscending(L, [&](uint32_t t, uint32_t c) {
      const uint32_t key = keys[t * step];
      const uint32_t h = key >> 16;
      distinct[nd] = h;
      const uint64_t sure = Draws ? surelyKept[t * step] : 0;
      uint64_t& entry = next[h * kChunks + c];
      nd += static_cast<uint32_t>(entry) == 0;
      entry += 1 + (sure << 32);
    });
  };
  if (stride == 1) {
    countAll(std::integral_constant<size_t, 1>{});
  } else {
    countAll(stride);
  }
  for (uint32_t i = 0; i < nd; ++i) {
    const uint32_t h = distinct_[i];
    occupied_[h >> 6] |= uint64_t{1} << (h & 63);
    summary_[h >> 12] |= uint64_t{1} << ((h >> 6) & 63);
  }
  uniform_ = uniformKnown || lowBitsOf(keys, stride, L) == 0;
  drawing_ = Draws && (uniform_ || oddCount_ > 0);  // a row with odd keys comes from countDrawing, which listed them
  // The occupied buckets in ascending order (into `distinct_`), each chunk's count turned into its first rank (the last
  // chunk's positions, the highest, rank first); for draw() also the bucket's index (high half of its chunk 0 word) and
  // its surely kept draws; the bitmaps left clear.
  nd = 0;
  uint32_t first = 0;
  for (uint32_t s = 0; s < kBuckets / 4096; ++s) {
    for (uint64_t sw = summary_[s]; sw != 0; sw &= sw - 1) {
      const uint32_t w = s * 64 + static_cast<uint32_t>(__builtin_ctzll(sw));
      for (uint64_t ow = occupied_[w]; ow != 0; ow &= ow - 1) {
        const uint32_t h = w * 64 + static_cast<uint32_t>(__builtin_ctzll(ow));
        uint64_t* entry = next + h * kChunks;
        first_[nd] = first;
        uint32_t sure = 0;
        for (uint32_t c = kChunks; c-- > 0;) {
          const uint64_t e = entry[c];
          // assign() takes the whole word as its next rank; draw() the end of the chunk's ranks from the high half.
          const uint32_t count = static_cast<uint32_t>(e);
          entry[c] = first | (drawing_ ? static_cast<uint64_t>(first + count) << 32 : 0);
          first += count;
          sure += static_cast<uint32_t>(e >> 32);
        }
        if (Draws) kept_[first_[nd]] = sure;
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
  if (packedRanges_) return;  // countPacked left next_ zero
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

bool DellaRowRanker::draw(const uint32_t* keys, size_t stride, uint32_t L, const uint64_t* u, const DellaLimits& limits, uint8_t* keep) {
  if (!drawing_) throw std::logic_error("internal: DellaRowRanker::draw on a row that drawing() does not take");
  // count() decided the draws below low (kept) and at or above high (dropped), and listed the rest.
  const uint32_t* middle = middle_.data();
  uint32_t* exact = exact_.data();
  const uint32_t nm = middleCount_;
  // Decided by the chunk's ranks in the bucket: those of chunk c (della_rank.cc's chunks) in the bucket are [from, to)
  // (its word in next_, or ranges_ after countPacked), so a draw below the least of their limits is kept and one at or above
  // the greatest dropped; the rest listed. A bucket's kept count lies at its first rank (chunk 3's from). In a mixed bucket
  // counted by countPacked, an odd key's range is its bucket's odd range (oddRanges_) and an even key's its chunk's; in one
  // counted by countKeys the chunks' ranges do not hold (its keys differ), so the whole bucket's ranks decide: chunk 3's from
  // to chunk 0's to, blended in here.
  const uint64_t* limit = limits.limit;
  const uint64_t* next = packedRanges_ ? ranges_.data() : next_.data();
  const uint64_t* oddRanges = oddRanges_.data();
  const uint32_t* mixed = mixed_.data();
  uint32_t* keptAt = kept_.data();  // a local pointer: else reloaded after every keep byte's store (a char may alias it)
  const uint32_t Lc = L / kChunks;
  uint32_t ne = 0;
  // Middle positions [from, to) of chunk c (or of any chunk where c is kAnyChunk) at stride step; Upward: the limits are
  // non-decreasing, so a chunk's least is its first rank's, else its last's; mixedRow: how the row's mixed buckets are ranged,
  // kBlend (countKeys') or kOddRanges (countPacked's), or kNone.
  constexpr uint32_t kAnyChunk = kChunks;
  constexpr int kNone = 0, kBlend = 1, kOddRanges = 2;
  auto decide = [&](uint32_t from, uint32_t to, uint32_t c, auto step, auto upward, auto mixedRow) {
    for (uint32_t k = from; k < to; ++k) {
      const uint32_t t = middle[k], key = keys[t * step], h = key >> 16;
      const uint64_t* entry = next + h * kChunks;
      uint64_t w = entry[c == kAnyChunk ? chunkOf(t, Lc) : c];
      if (mixedRow == kBlend) {  // branch-free: a bucket's mixed mark is as good as random
        const uint64_t whole = (entry[0] & ~uint64_t{0xFFFFFFFFu}) | static_cast<uint32_t>(entry[kChunks - 1]);
        const uint64_t pick = uint64_t{0} - static_cast<uint64_t>(mixed[h] != 0);
        w = (w & ~pick) | (whole & pick);
      } else if (mixedRow == kOddRanges && (key & 0xFFFFu) != 0) {
        w = oddRanges[h];
      }
      const uint64_t a = limit[static_cast<uint32_t>(w)], b = limit[(w >> 32) - 1];
      const uint64_t least = upward ? a : b, greatest = upward ? b : a, x = u[t * step];
      const bool kept = x < least;
      keep[t * step] = kept;
      keptAt[static_cast<uint32_t>(entry[kChunks - 1])] += kept;
      exact[ne] = t;
      ne += x - least < greatest - least;
    }
  };
  auto decideRun = [&](uint32_t from, uint32_t to, uint32_t c, auto step, auto mixedRow) {
    if (limit[0] <= limit[L - 1]) {
      decide(from, to, c, step, std::true_type{}, mixedRow);
    } else {
      decide(from, to, c, step, std::false_type{}, mixedRow);
    }
  };
  const bool mixedRow = oddCount_ > 0;  // only countDrawing lists odd keys: stride 1
  if (stride == 1) {
    // The middle positions ascend, so each chunk's are one run of the list, decided with its chunk fixed for the run and the
    // stride a constant (a matrix's rows: della's L1 pass 3–7 % faster, BENCHMARKS.md 2026-12-05).
    for (uint32_t c = 0, k = 0; c < kChunks; ++c) {
      const uint32_t end = c + 1 == kChunks ? L : (c + 1) * Lc;
      const uint32_t to = static_cast<uint32_t>(std::lower_bound(middle + k, middle + nm, end) - middle);
      const std::integral_constant<size_t, 1> one;
      if (!mixedRow) {
        decideRun(k, to, c, one, std::integral_constant<int, kNone>{});
      } else if (packedRanges_) {
        decideRun(k, to, c, one, std::integral_constant<int, kOddRanges>{});
      } else {
        decideRun(k, to, c, one, std::integral_constant<int, kBlend>{});
      }
      k = to;
    }
  } else {
    decideRun(0, nm, kAnyChunk, stride, std::integral_constant<int, kNone>{});
  }
  // The draws left to whole-row counts (below): those of a mixed bucket's keys (countKeys'), or of its odd keys (countPacked's:
  // its even keys rank by their chunk). Where too many, the row goes to assign(), counted again for it.
  auto wholeRowCount = [&](uint32_t key) { return mixedRow && (packedRanges_ ? (key & 0xFFFFu) != 0 : mixed[key >> 16] != 0); };
  uint32_t wholeRow = 0;
  for (uint32_t k = 0; mixedRow && k < ne; ++k) wholeRow += wholeRowCount(keys[exact[k]]);
  if (wholeRow > kExactMixed) {
    clearMixed(keys);
    clear();
    count(keys, stride, L);
    return false;
  }
  // The rank of the rest. In a uniform bucket: its chunk's first rank in the bucket plus the equal keys at higher positions of
  // the chunk (the lower position ranks higher), or the chunk's count in the bucket less those at lower positions, whichever
  // scans less; so too an even key in a bucket countPacked counted (its chunk's words hold its even keys). Else, in a mixed
  // bucket: its first rank, plus the row's keys in the bucket below the key, plus the equal keys at higher positions.
  for (uint32_t k = 0; k < ne; ++k) {
    const uint32_t t = exact[k], key = keys[t * stride], c = chunkOf(t, Lc);
    const uint64_t* entry = next + (key >> 16) * kChunks;
    uint32_t rank;
    if (wholeRowCount(key)) {
      const uint32_t lo = key & 0xFFFF0000u;
      rank = static_cast<uint32_t>(entry[kChunks - 1]) + dellaKeysIn(keys, stride, 0, t, lo, key - lo) + dellaKeysIn(keys, stride, t + 1, L, lo, key - lo + 1);
    } else {
      const uint32_t from = static_cast<uint32_t>(entry[c]), to = static_cast<uint32_t>(entry[c] >> 32);
      const uint32_t begin = c * Lc, end = c + 1 == kChunks ? L : (c + 1) * Lc;
      const uint32_t above = end - t - 1 <= t - begin ? dellaKeysIn(keys, stride, t + 1, end, key, 1)
                                                      : to - from - 1 - dellaKeysIn(keys, stride, begin, t, key, 1);
      rank = from + above;
    }
    const bool kept = u[t * stride] < limit[rank];
    keep[t * stride] = kept;
    keptAt[static_cast<uint32_t>(entry[kChunks - 1])] += kept;
  }
  clearMixed(keys);
  clear();
  return true;
}

void DellaRowRanker::clearMixed(const uint32_t* keys) {
  for (uint32_t k = 0; k < oddCount_; ++k) mixed_[keys[odd_[k]] >> 16] = 0;
}

}  // namespace wm
