// The ranks of one DELLA row (della.h's keep rule): rank[t] of the element at row position t, by ascending
// key (|d| bits, NaN canonical: every key < 2^31), equal keys ranking the LOWER position HIGHER.
//
// By counting, not sorting: keys are bucketed by their high 16 bits (bf16's |d| of a row take few distinct
// values, and their low 16 bits are zero: the buckets alone order them); the occupied buckets are found in
// ascending order through a two-level bitmap (O(distinct buckets), not O(65536)), and a bucket whose keys
// differ in their low 16 bits is then sorted stably by them. The same ranks as any sort by
// (key, then descending position): native/tests/della_selftest.cc checks it against that definition.
// A uniform row drawn in countDrawing (L < 2^16, its key span at most 16 L buckets) counts leaner (countPacked): a 32-bit
// word per bucket and chunk (its count and surely kept draws, 16 bits each) and a byte mark per bucket, the marks then
// scanned over the row's key span (DellaKeyFacts' lowest to highest, dellaTakeMarks): fewer instructions per element than the 64-bit words and
// bitmap (della's L1 pass 13 % faster, BENCHMARKS.md 2026-12-05).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace wm {

// draw()'s per-element passes over a row (positions t * stride, t < L), scalar in della_rank.cc, AVX2 in della_avx2.cc where
// stride is 1, picked by dispatch.cc. dellaSplitDraws: keep[t] = u[t] < low, and the positions t with low <= u[t] < high
// listed in ascending order into middle (L + 4 slots); returns how many. dellaKeysIn: how many keys at positions [from, to)
// lie in [lo, lo + span) (unsigned: lo <= key and key - lo < span); span 1 counts the keys equal to lo.
uint32_t dellaSplitDraws(const uint64_t* u, size_t stride, uint32_t L, uint64_t low, uint64_t high, uint8_t* keep, uint32_t* middle);
uint32_t dellaKeysIn(const uint32_t* keys, size_t stride, uint32_t from, uint32_t to, uint32_t lo, uint32_t span);
// The positions t < L of a row's odd keys (low 16 bits not zero: della_rank.h's mixed rows), ascending, into odd (16 slots past
// them: SIMD stores whole vectors); returns how many.
uint32_t dellaOddKeys(const uint32_t* keys, uint32_t L, uint32_t* odd);
// dellaUniforms of the row's elements first + t (stride 1) and dellaSplitDraws of them in one pass: keep and middle as
// dellaSplitDraws, u[t] written where t is in middle (draw() reads no other; elsewhere u is left as it is or overwritten).
uint32_t dellaDrawSplit(uint64_t seedKey, uint64_t first, uint32_t L, uint64_t low, uint64_t high, uint8_t* keep, uint32_t* middle, uint64_t* u);
// What della.h's dellaKeys finds beside the keys, in the same pass: the OR of their low 16 bits (0: every row of them
// uniform), and the buckets (key >> 16) of the least nonzero key and of the greatest, lowest > highest where every key is 0
// (countPacked's span of a row).
struct DellaKeyFacts {
  uint32_t lowBits = 0, lowest = 0xFFFFu, highest = 0;
  bool uniform() const { return lowBits == 0; }
};

// countPacked's pass (scalar in della_rank.cc, AVX2 in della_avx2.cc). dellaTakeMarks: the h in
// [from, to) whose marks[h] != 0, in ascending order into buckets (which has 16 slots past them: SIMD stores whole vectors),
// with those marks set back to 0; returns how many.
uint32_t dellaTakeMarks(uint8_t* marks, uint32_t from, uint32_t to, uint32_t* buckets);

// A row's keep limits by rank for draw(): limit[r] monotone in r (non-decreasing for epsilon >= 0, non-increasing for
// epsilon < 0), low and high the least and greatest of them (limit[0] and limit[L - 1] in some order).
struct DellaLimits {
  const uint64_t* limit = nullptr;
  uint64_t low = 0, high = 0;
};

class DellaRowRanker {
 public:
  DellaRowRanker();
  // keys[t * stride] is position t's key, t in [0, L); writes its rank to rank[t * stride]. count() then assign().
  void rank(const uint32_t* keys, size_t stride, uint32_t L, uint32_t* rank) {
    count(keys, stride, L);
    assign(keys, stride, L, rank);
  }

  // The row's buckets and their first ranks; then assign() on the same keys.
  void count(const uint32_t* keys, size_t stride, uint32_t L);
  // The same, for draw() (where uniform(); else assign()): first the draws decided alone (keep[t * stride] = 1 below the
  // limits' low, kept whatever the rank; 0 otherwise), then the counts with each bucket's kept draws among those, in the
  // same read-modify-write as its elements.
  // uniformKnown: the caller knows the row's keys uniform (dellaKeys' low bits 0), so count() need not read them for it.
  void count(const uint32_t* keys, size_t stride, uint32_t L, const uint64_t* u, const DellaLimits& limits, uint8_t* keep,
             bool uniformKnown = false);
  // The same for a row at stride 1 whose draws (elements first + t) are made here in the split's pass (dellaDrawSplit): u is
  // written only where draw() reads it. facts: dellaKeys' of the row. Where it is not uniform, its odd keys (low 16 bits not
  // zero: a |d| that bf16 cannot hold, as where a fine-tuned weight changed sign) are listed and their buckets marked mixed,
  // for draw().
  void countDrawing(const uint32_t* keys, uint32_t L, uint64_t seedKey, uint64_t first, const DellaLimits& limits, uint8_t* keep, uint64_t* u,
                    const DellaKeyFacts& facts);
  void assign(const uint32_t* keys, size_t stride, uint32_t L, uint32_t* rank);
  // Where drawing(), after count() or countDrawing() with the same u, limits and keep: keep[t * stride] = u[t * stride] <
  // limit[rank of t] (della.h's draws with each rank's integer limit), and each bucket's kept count for kept(i), without a
  // rank per element: a draw below low is kept and one at or above high dropped whatever the rank; of the rest, one outside
  // the range of limits of its chunk's ranks in its bucket is decided by those alone, and only the few inside it count keys:
  // equal ones in its chunk. In a mixed bucket (its keys differ) counted by countPacked, an even key (low 16 bits zero: the
  // bucket's least) takes its chunk's ranks among the even keys, an odd key the range of the bucket's odd keys, which rank
  // above them; counted by countKeys, every key the whole bucket's ranks. An odd key there (any key of a mixed bucket, after
  // countKeys) inside its range counts the keys below it in the whole row. Returns false, with keep and kept() undefined and
  // the ranker ready for a new row, where a mixed row leaves more than kExactMixed draws to such whole-row counts (the caller
  // then ranks it by assign()).
  bool draw(const uint32_t* keys, size_t stride, uint32_t L, const uint64_t* u, const DellaLimits& limits, uint8_t* keep);

  // After count(): whether every key of the row has its low 16 bits zero, and then the row's distinct keys in ascending
  // order: key(i) = bucket(i) << 16 holds the ranks [first(i), first(i + 1)), i < buckets(), first(buckets()) = L.
  bool uniform() const { return uniform_; }
  // After count() or countDrawing(): whether draw() takes the row (a uniform row counted with draws, or a mixed one).
  bool drawing() const { return drawing_; }
  // After countDrawing() of a row that was not uniform: its odd keys' positions, ascending (della.cc's L1 sums add their low
  // 16 bits to their bucket's). None otherwise.
  uint32_t oddCount() const { return oddCount_; }
  const uint32_t* odd() const { return odd_.data(); }
  uint32_t buckets() const { return buckets_; }
  uint32_t bucket(uint32_t i) const { return distinct_[i]; }
  uint32_t first(uint32_t i) const { return first_[i]; }
  // After draw(): how many of bucket i's elements were kept.
  uint32_t kept(uint32_t i) const { return kept_[first_[i]]; }

 static constexpr uint32_t kChunks = 4;  // the row's positions in 4 chunks, each with its own counters (della_rank.cc)
 static constexpr uint32_t kExactMixed = 16;  // draw()'s whole-row counts per row (each reads L keys), at most

 private:
  static constexpr uint32_t kBuckets = 1u << 15;  // high 16 bits of a key < 2^31
  static constexpr uint32_t kPackedRows = 1u << 16;  // countPacked takes rows shorter than this (a chunk's count fits 16 bits)
  template <bool Draws>
  void countKeys(const uint32_t* keys, size_t stride, uint32_t L, const uint8_t* surelyKept, bool uniformKnown);
  // countKeys<true> of a uniform row at stride 1 and L < kPackedRows, the same results (della_rank.h's head); lowest and
  // highest: the row's DellaKeyFacts.
  void countPacked(const uint32_t* keys, uint32_t L, const uint8_t* surelyKept, uint32_t lowest, uint32_t highest);
  void reserveDraws(uint32_t L);  // middle_ and exact_ for a row of L
  void reserveBuckets(uint32_t L);  // distinct_ (16 slots to spare for dellaTakeMarks), first_ and kept_ for a row of L
  void clear();                                    // next_ back to zero
  void clearMixed(const uint32_t* keys);           // mixed_ back to zero (its marks are the odd keys' buckets)
  // Per bucket and chunk: its count (low 32 bits) and surely kept draws (high 32 bits), then its first (assign(): next)
  // rank, and for draw() the end of its ranks in the high half. Zero between rows.
  std::vector<uint64_t> next_;
  // countPacked's draw() layout, as next_'s: written whole for each of the row's buckets, so never cleared (next_'s clear()
  // per bucket and chunk was 1.5 % of a della merge's CPU).
  std::vector<uint64_t> ranges_;
  std::vector<uint64_t> oddRanges_;
  bool packedRanges_ = false;                      // draw() reads ranges_ (and oddRanges_), not next_
  std::vector<uint64_t> occupied_;                 // one bit per bucket
  // countPacked's words per bucket and chunk (count, then surely kept draws << 16) and its marks per bucket; zero between rows.
  std::vector<uint32_t> packed_;
  std::vector<uint8_t> marks_;
  uint64_t summary_[kBuckets / 64 / 64] = {};      // one bit per nonzero word of occupied_
  std::vector<uint32_t> distinct_, order_;         // the row's buckets in ascending order; positions by rank
  std::vector<uint32_t> first_;                    // each bucket's first rank, then L
  std::vector<uint32_t> kept_;                     // each bucket's kept count at its first rank (count() with draws, then draw())
  std::vector<uint32_t> middle_, exact_;           // draw(): positions its draw alone does not decide; those its bucket does not
  uint32_t middleCount_ = 0;
  std::vector<uint32_t> odd_;                      // countDrawing(): the odd keys' positions (L + 16 slots: dellaOddKeys)
  uint32_t oddCount_ = 0;
  std::vector<uint32_t> mixed_;                    // per bucket, how many odd keys it holds (mixed where not 0); zero between rows
  // countPacked's ranges of a mixed bucket's odd keys (from | to << 32), which rank above its even ones (a key's low 16 bits
  // above zero); written for the row's mixed buckets, read for odd keys only.
  bool uniform_ = false;
  bool drawing_ = false;                           // next_ holds draw()'s layout
  uint32_t buckets_ = 0;
};

}  // namespace wm
