// The ranks of one DELLA row (della.h's keep rule): rank[t] of the element at row position t, by ascending
// key (|d| bits, NaN canonical: every key < 2^31), equal keys ranking the LOWER position HIGHER.
//
// By counting, not sorting: keys are bucketed by their high 16 bits (bf16's |d| of a row take few distinct
// values, and their low 16 bits are zero: the buckets alone order them); the occupied buckets are found in
// ascending order through a two-level bitmap (O(distinct buckets), not O(65536)), and a bucket whose keys
// differ in their low 16 bits is then sorted stably by them. The same ranks as any sort by
// (key, then descending position): native/tests/della_selftest.cc checks it against that definition.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace wm {

class DellaRowRanker {
 public:
  DellaRowRanker();
  // keys[t * stride] is position t's key, t in [0, L); writes its rank to rank[t * stride]. count() then assign().
  void rank(const uint32_t* keys, size_t stride, uint32_t L, uint32_t* rank) {
    count(keys, stride, L);
    assign(keys, stride, L, rank);
  }

  // The row's buckets and their first ranks; then exactly one of assign() or (where uniform()) draw() on the same keys.
  void count(const uint32_t* keys, size_t stride, uint32_t L);
  void assign(const uint32_t* keys, size_t stride, uint32_t L, uint32_t* rank);
  // Where uniform(): keep[t * stride] = u[t * stride] < limit[rank of t], without storing the ranks (della.h's draws
  // with each rank's integer limit), and each bucket's kept count for kept(i): one pass instead of ranks, draws and a
  // scatter of the draws into rank order.
  void draw(const uint32_t* keys, size_t stride, uint32_t L, const uint64_t* u, const uint64_t* limit, uint8_t* keep);

  // After count(): whether every key of the row has its low 16 bits zero, and then the row's distinct keys in ascending
  // order: key(i) = bucket(i) << 16 holds the ranks [first(i), first(i + 1)), i < buckets(), first(buckets()) = L.
  bool uniform() const { return uniform_; }
  uint32_t buckets() const { return buckets_; }
  uint32_t bucket(uint32_t i) const { return distinct_[i]; }
  uint32_t first(uint32_t i) const { return first_[i]; }
  // After draw(): how many of bucket i's elements were kept.
  uint32_t kept(uint32_t i) const { return kept_[i]; }

 static constexpr uint32_t kChunks = 4;  // the row's positions in 4 chunks, each with its own counters (della_rank.cc)

 private:
  static constexpr uint32_t kBuckets = 1u << 15;  // high 16 bits of a key < 2^31
  void clear();                                    // next_ back to zero
  // Per bucket and chunk: its count, then its next rank (low 32 bits) and, in draw(), its kept count (high 32 bits); zero between rows.
  std::vector<uint64_t> next_;
  std::vector<uint64_t> occupied_;                 // one bit per bucket
  uint64_t summary_[kBuckets / 64 / 64] = {};      // one bit per nonzero word of occupied_
  std::vector<uint32_t> distinct_, order_;         // the row's buckets in ascending order; positions by rank
  std::vector<uint32_t> first_;                    // each bucket's first rank, then L
  std::vector<uint32_t> kept_;                     // each bucket's kept count (draw())
  bool uniform_ = false;
  uint32_t buckets_ = 0;
};

}  // namespace wm
