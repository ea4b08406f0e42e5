// In-memory rank cuts (sparse_select.h) and the scalar |d| bits they are built from.
#include "sparse_select.h"

#include <algorithm>
#include <cmath>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "../aligned_buffer.h"
#include "cpu_backends.h"
#include "element_io.h"
#include "histogram_cuts.h"
#include "numerics.h"
#include "sample_strata.h"
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

size_t windowKeys(const uint32_t* a, size_t n, uint32_t lo, uint32_t hi, uint32_t indexBits, uint64_t count, uint64_t start, uint64_t* keys,
                  uint64_t* above) {
  const uint32_t span = hi - lo;
  size_t m = 0;
  uint64_t over = 0;
  for (size_t i = 0; i < n; ++i) {
    over += a[i] > hi;
    // Branch-free: every key is stored, kept only inside the window (a branch mispredicts at each tie).
    keys[m] = sparseRankKey(a[i], indexBits, count, start + i);
    m += a[i] - lo <= span;
  }
  *above += over;
  return m;
}

void l1Slots(const uint32_t* a, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n, uint32_t* slot, uint32_t* mant,
             uint8_t* bits) {
  l1SlotsBy(scalar::sparseKeep, l1SlotsOfKept, a, m, indexBits, count, start, 0, n, slot, mant, bits);
}

}  // namespace scalar

// Eight 0/1 bytes at a time into one byte, element j at bit j % 8 (a multiply gathers the low bits of the bytes).
void packBits(const uint8_t* kept, size_t n, uint8_t* bits) {
  size_t j = 0;
#if defined(__SSE2__)
  // 16 at a time by PMOVMSKB (x86-64's baseline): each 0/1 byte's bit moved to its top by a 16-bit shift (no carry crosses a
  // byte), bit q of the mask is element j + q's (della's keep maps: 4 x fewer instructions than the multiply below).
  for (; j + 16 <= n; j += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kept + j));
    const auto mask = static_cast<uint16_t>(_mm_movemask_epi8(_mm_slli_epi16(v, 7)));
    std::memcpy(bits + j / 8, &mask, 2);  // little-endian: elements j .. j + 7 in the first byte
  }
#endif
  for (; j + 8 <= n; j += 8) {
    uint64_t v;
    std::memcpy(&v, kept + j, 8);
    bits[j / 8] = static_cast<uint8_t>((v * 0x0102040810204080ull) >> 56);
  }
  if (j == n) return;
  uint8_t last = 0;
  for (size_t q = j; q < n; ++q) last |= static_cast<uint8_t>(kept[q] << (q - j));
  bits[j / 8] = last;
}

namespace {
constexpr size_t kChunk = kAbsBitsChunk;  // the chunk loops here walk forEachAbsBitsChunk's chunks
}  // namespace

void rankCutsByHistogram(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts) {
  // The counters, per thread and kept: freeing ~1.5 MB per tensor let the allocator trim the heap
  // and fault the pages back in on the next (more system time than the passes' own work).
  thread_local std::vector<uint64_t> counters;
  HistogramCuts passes(count, ranks, k, cuts, counters);
  while (!passes.done()) {
    passes.add(base, tb, x, tx, 0, count);
    passes.endPass();
  }
}

namespace {

// The values the windowed cuts rank: the |d| bits of base and x, computed a chunk at a time.
struct AbsDeltaValues {
  const void* base;
  Dtype tb;
  const void* x;
  Dtype tx;
  void sample(uint64_t count, size_t s, uint32_t* out) const {
    withDtype(tb, [&](auto B) {
      withDtype(tx, [&](auto X) {
        sampleStrata(count, s, out, [&](uint64_t i) {
          return num::f32Bits(num::subRn(loadElem<decltype(X)::value>(x, i), loadElem<decltype(B)::value>(base, i))) & 0x7FFFFFFFu;
        });
      });
    });
  }
  // Elements j0 .. j0 + n - 1, computed into scratch.
  const uint32_t* chunk(uint64_t j0, size_t n, uint32_t* scratch) const {
    absDeltaBits(static_cast<const uint8_t*>(base) + j0 * dtypeSize(tb), tb, static_cast<const uint8_t*>(x) + j0 * dtypeSize(tx), tx, n, scratch);
    return scratch;
  }
};

// The values held in memory (rankCutsWindowedOfBits).
struct StoredValues {
  const uint32_t* bits;
  void sample(uint64_t count, size_t s, uint32_t* out) const {
    sampleStrata(count, s, out, [&](uint64_t i) { return bits[i]; });
  }
  const uint32_t* chunk(uint64_t j0, size_t, uint32_t*) const { return bits + j0; }
};

}  // namespace

constexpr uint64_t kMaxWindowKeys = uint64_t{2} << 20;

namespace {

// The windows' room for `entries` keys, kept by the thread from tensor to tensor: the pages a window once touched serve every
// later one (a fresh allocation per tensor faulted them in again, ~6,500 page faults in a TIES merge of the dense bench pair).
// Held until the thread ends: at most kMaxWindowKeys keys and a chunk's slack per window, as before, only what was touched resident.
uint64_t* windowRoom(uint64_t entries) {
  thread_local AlignedBuffer room;
  if (room.size() < entries * sizeof(uint64_t)) room = AlignedBuffer::hugePages(entries * sizeof(uint64_t));
  return reinterpret_cast<uint64_t*>(room.data());
}

}  // namespace

namespace {

// The cut of the need-th largest of n unique rank keys whose |d| bits (key >> indexBits) lie in
// [lo, hi], as rankCutsByHistogram would place it; reorders keys. A histogram of the |d| bits' top
// bits finds the bin holding it in one pass (sorting the window's keys cost a TIES merge ~7 %:
// its comparisons mispredict), and only that bin's keys are ranked. Those mostly share one |d| (bf16
// task vectors take few distinct values), and keys of one |d| stand in element order, which is
// descending key order: then the need-th of them is the answer without a sort.
uint64_t cutInWindow(uint64_t* keys, size_t n, uint64_t need, uint32_t lo, uint32_t hi, uint32_t indexBits) {
  constexpr size_t kBins = 2048;
  uint32_t shift = 0;
  while (((hi - lo) >> shift) >= kBins) ++shift;
  // Four interleaved counters per bin: neighbours mostly share a bin, and one set would chain the increments.
  uint32_t parts[4][kBins] = {};
  const auto binOf = [&](uint64_t key) { return (static_cast<uint32_t>(key >> indexBits) - lo) >> shift; };
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t q = 0; q < 4; ++q) ++parts[q][binOf(keys[i + q])];
  }
  for (; i < n; ++i) ++parts[0][binOf(keys[i])];
  uint64_t hist[kBins];
  for (size_t b = 0; b < kBins; ++b) hist[b] = uint64_t{parts[0][b]} + parts[1][b] + parts[2][b] + parts[3][b];
  const size_t bin = binOfRank(hist, kBins, need);
  // The bin's keys to the front, in element order (branch-free: m <= i, so nothing unread is overwritten).
  size_t m = 0;
  for (size_t j = 0; j < n; ++j) {
    keys[m] = keys[j];
    m += binOf(keys[j]) == bin;
  }
  const uint64_t first = keys[0] >> indexBits;
  const bool oneValue = std::all_of(keys, keys + m, [&](uint64_t key) { return key >> indexBits == first; });
  uint64_t* const nth = keys + (need - 1);
  if (!oneValue) std::nth_element(keys, nth, keys + m, [](uint64_t l, uint64_t r) { return l > r; });  // keys are unique
  // As rankCutsByHistogram: when every element of the cut's |d| is kept, the cut is that |d|'s lowest key
  // (every key of that |d| is in this bin; those after nth are the smaller ones).
  const uint64_t value = *nth >> indexBits;
  return std::none_of(nth + 1, keys + m, [&](uint64_t key) { return key >> indexBits == value; }) ? value << indexBits : *nth;
}

// How many elements of a window take each |d| value, for a window whose keys overflow their room: that happens when
// the cut falls on a |d| that millions of elements share (bf16 task vectors take few distinct values; an embedding's
// tie at the cut can hold 5 % of its elements), and then the distinct values are few. Open addressing over
// kSlots values; full (false) beyond kMaxValues of them, when the histogram passes take over.
class WindowValueCounts {
 public:
  bool add(uint32_t value) {
    size_t at = (value * 0x9E3779B1u) >> (32 - kSlotBits);
    while (values_[at] != kEmpty && values_[at] != value) at = (at + 1) % kSlots;
    if (values_[at] == kEmpty) {
      if (++distinct_ > kMaxValues) return false;
      values_[at] = value;
    }
    ++counts_[at];
    return true;
  }
  // The |d| value of the need-th largest key among the counted ones and its rank among the elements of that value
  // (need becomes it), with their number; false when the counted elements are fewer than need.
  bool valueOfRank(uint64_t& need, uint32_t& value, uint64_t& ofValue) const {
    std::vector<std::pair<uint32_t, uint64_t>> seen;
    for (size_t i = 0; i < kSlots; ++i) {
      if (values_[i] != kEmpty) seen.emplace_back(values_[i], counts_[i]);
    }
    std::sort(seen.begin(), seen.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [v, n] : seen) {
      if (need <= n) {
        value = v;
        ofValue = n;
        return true;
      }
      need -= n;
    }
    return false;
  }

 private:
  static constexpr uint32_t kSlotBits = 12;
  static constexpr size_t kSlots = size_t{1} << kSlotBits, kMaxValues = kSlots / 2;
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;  // no |d| has its sign bit set
  std::vector<uint32_t> values_ = std::vector<uint32_t>(kSlots, kEmpty);
  std::vector<uint64_t> counts_ = std::vector<uint64_t>(kSlots, 0);
  size_t distinct_ = 0;
};

}  // namespace

namespace {

// rankCutsWindowed over the values of `values` (AbsDeltaValues or StoredValues).
template <typename Values>
bool windowedCuts(const Values& values, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts) {
  struct Window {
    Window(size_t q, uint64_t rank) : q(q), rank(rank) {}
    size_t q;
    uint64_t rank;
    uint32_t lo = 0, hi = 0xFFFFFFFFu;  // candidates: lo <= |d| bits <= hi
    uint64_t above = 0;                 // elements with |d| bits > hi
    uint64_t* keys = nullptr;           // the candidates' rank keys
    size_t n = 0;
    std::unique_ptr<WindowValueCounts> values;  // instead of keys, once they overflow their room
  };
  std::vector<Window> open;
  for (size_t q = 0; q < k; ++q) {
    cuts[q] = ranks[q] == 0 ? kRankKeyNone : 0;
    if (ranks[q] != 0 && ranks[q] < count) open.emplace_back(q, ranks[q]);
  }
  if (open.empty()) return true;
  const size_t s = windowSampleSize(count);
  std::vector<uint32_t> sample(s);
  values.sample(count, s, sample.data());
  // Each window: the sample's values some 4 binomial standard deviations (+ 8) either side of the rank's place.
  std::vector<std::pair<size_t, uint32_t*>> wanted;  // ascending sample index -> where its value goes
  double widest = 0;
  for (Window& w : open) {
    const double f = static_cast<double>(w.rank) / static_cast<double>(count);
    const double at = static_cast<double>(s) * (1 - f), spread = windowSpread(s, f);
    widest = std::max(widest, 2 * spread / static_cast<double>(s));
    if (at + spread < static_cast<double>(s)) wanted.push_back({static_cast<size_t>(at + spread), &w.hi});
    if (at - spread >= 0) wanted.push_back({static_cast<size_t>(at - spread), &w.lo});
  }
  sampleOrderStatistics(sample, wanted);
  // One pass: count the elements above each window, keep the rank keys of those inside it.
  // Room for twice the elements a window is expected to hold (a fraction `widest` of them), or a quarter
  // of the tensor (bf16 task vectors take few distinct |d|: a tie at the cut can hold 10 % of them),
  // all windows together at most kMaxWindowKeys (16 MiB per worker). Untouched room costs nothing.
  const uint64_t room = std::max(static_cast<uint64_t>(std::min(1.0, 2 * widest) * static_cast<double>(count)), count / 4);
  const uint64_t capacity = std::min<uint64_t>(room, kMaxWindowKeys / open.size()) + kChunk + 4;
  uint64_t* const buffer = windowRoom(capacity * open.size());
  for (size_t q = 0; q < open.size(); ++q) open[q].keys = buffer + q * capacity;
  const uint32_t indexBits = sparseIndexBits(count);
  uint32_t scratch[kChunk];
  for (uint64_t j0 = 0; j0 < count; j0 += kChunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, count - j0));
    const uint32_t* a = values.chunk(j0, n, scratch);
    for (Window& w : open) {
      if (w.values != nullptr) {
        // Counting: the chunk's keys in the window go to the front of the room, then into the counts.
        const size_t m = windowKeys(a, n, w.lo, w.hi, indexBits, count, j0, w.keys, &w.above);
        for (size_t i = 0; i < m; ++i) {
          if (!w.values->add(static_cast<uint32_t>(w.keys[i] >> indexBits))) return false;  // many distinct values: the exact passes decide
        }
        continue;
      }
      w.n += windowKeys(a, n, w.lo, w.hi, indexBits, count, j0, w.keys + w.n, &w.above);
      if (w.n > capacity - kChunk - 4) {
        // Too many keys: most of them share a few |d| values (ties), so count the elements of each value instead.
        w.values = std::make_unique<WindowValueCounts>();
        for (size_t i = 0; i < w.n; ++i) {
          if (!w.values->add(static_cast<uint32_t>(w.keys[i] >> indexBits))) return false;
        }
        w.n = 0;
      }
    }
  }
  // A counted window's cut: the value at the rank, and the rank's element among that value's if not all are kept.
  struct TieScan {
    size_t q;
    uint32_t value;
    uint64_t need;
  };
  std::vector<TieScan> ties;
  for (Window& w : open) {
    if (w.rank <= w.above) return false;  // the rank fell above the window
    if (w.values == nullptr) {
      if (w.rank > w.above + w.n) return false;  // below it
      cuts[w.q] = cutInWindow(w.keys, w.n, w.rank - w.above, w.lo, w.hi, indexBits);
      continue;
    }
    uint64_t need = w.rank - w.above, ofValue = 0;
    uint32_t value = 0;
    if (!w.values->valueOfRank(need, value, ofValue)) return false;  // below it
    // As rankCutsByHistogram: every element of the cut's |d| kept, the cut is that |d|'s lowest key.
    if (need == ofValue) cuts[w.q] = static_cast<uint64_t>(value) << indexBits;
    else ties.push_back({w.q, value, need});
  }
  // Elements of equal |d| rank by index, lower first: the need-th of them in index order is the cut's element.
  for (uint64_t j0 = 0; j0 < count && !ties.empty(); j0 += kChunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, count - j0));
    const uint32_t* a = values.chunk(j0, n, scratch);
    for (size_t t = 0; t < ties.size();) {
      TieScan& tie = ties[t];
      for (size_t i = 0; i < n && tie.need > 0; ++i) {
        if (a[i] == tie.value && --tie.need == 0) cuts[tie.q] = sparseRankKey(tie.value, indexBits, count, j0 + i);
      }
      if (tie.need == 0) {
        ties.erase(ties.begin() + static_cast<std::ptrdiff_t>(t));
      } else {
        ++t;
      }
    }
  }
  return ties.empty();
}

}  // namespace

bool rankCutsWindowed(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts) {
  return windowedCuts(AbsDeltaValues{base, tb, x, tx}, count, ranks, k, cuts);
}

bool rankCutsWindowedOfBits(const uint32_t* bits, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts) {
  return windowedCuts(StoredValues{bits}, count, ranks, k, cuts);
}

void rankCuts(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts) {
  if (!rankCutsWindowed(base, tb, x, tx, count, ranks, k, cuts)) rankCutsByHistogram(base, tb, x, tx, count, ranks, k, cuts);
}

uint64_t rankCut(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, uint64_t rank) {
  uint64_t cut = 0;
  rankCuts(base, tb, x, tx, count, &rank, 1, &cut);
  return cut;
}

void L1Accumulator::add(const void* base, Dtype tb, const void* x, Dtype tx, const SparseModel& keep, uint64_t count, uint64_t start, uint64_t n,
                        uint8_t* keepBits) {
  const uint32_t indexBits = sparseIndexBits(count);
  uint32_t slot[kChunk], mant[kChunk];
  uint64_t* s = sums_.data();
  forEachAbsBitsChunk(base, tb, x, tx, n, [&](uint64_t j0, const uint32_t* a, size_t len) {
    // Chunks start at multiples of 8 elements (start is one), as l1Slots' bits want.
    l1Slots(a, keep, indexBits, count, start + j0, len, slot, mant, keepBits != nullptr ? keepBits + (start + j0) / 8 : nullptr);
    for (size_t i = 0; i < len; ++i) s[slot[i]] += mant[i];
    return true;
  });
}

L1Sums L1Accumulator::sums() const {
  std::vector<uint64_t> before(kL1Buckets, 0), after(kL1Buckets, 0);
  for (size_t set = 0; set < kL1Sets; ++set) {
    for (size_t e = 0; e < kL1Buckets; ++e) {
      const uint64_t dropped = sums_[(set * kL1Buckets + e) * 2], held = sums_[(set * kL1Buckets + e) * 2 + 1];
      before[e] += dropped + held;
      after[e] += held;
    }
  }
  return {l1Total(before.data()), l1Total(after.data())};
}

L1Sums l1Sums(const void* base, Dtype tb, const void* x, Dtype tx, const SparseModel& keep, uint64_t count, uint8_t* keepBits) {
  L1Accumulator sums;
  sums.add(base, tb, x, tx, keep, count, 0, count, keepBits);
  return sums.sums();
}

}  // namespace wm
