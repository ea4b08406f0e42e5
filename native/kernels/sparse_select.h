// Statistics of d = fl32(x - base) over a whole tensor held in memory (a tensor-local job,
// native/local_job.h): the rank cuts and L1 sums that the planner's statistics passes (sparsify.h's
// radixHistogram, l1Buckets) find by re-reading the files, from the bytes one worker already holds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "sparsify.h"

namespace wm {

// Above every rank key (keys have at most 31 + 32 bits): "no upper cut", or "keep nothing" as a lower one.
constexpr uint64_t kRankKeyNone = uint64_t{1} << 63;

// The cut C with exactly `rank` of the tensor's rank keys (sparsify.h) at or above it: kRankKeyNone
// for rank 0, 0 for rank >= count, else the key of the rank-th largest element (or, when every element
// of that |d| is kept, that |d|'s lowest possible key: the same set). Keys are unique, so
// {key >= C} is the very set the histogram passes' cut keeps (rankCuts below says how it is found).
uint64_t rankCut(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, uint64_t rank);
// The cuts of k ranks at once (breadcrumbs' two): rankCutsWindowed, else rankCutsByHistogram.
void rankCuts(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts);
// One pass over memory: a sample of |d| places a window of values around each rank; the pass counts
// the elements above it and collects the rank keys inside it, and nth_element among those finds the
// cut. A window whose keys overflow their room (ties at the cut) counts its elements per |d| value
// instead, and a partial scan finds the rank among the equal ones. The same cuts as rankCutsByHistogram
// (keys are unique); false when a rank falls outside its window or a counted window holds too many
// distinct values (sparse_select.cc), with the cuts of earlier windows possibly written: then use that
// one, which writes every cut.
bool rankCutsWindowed(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts);
// rankCutsWindowed over values held in memory instead of |d|: bits[i] (< 2^31) is element i's, keyed as |d| is (sparsify.h's
// sparseRankKey; sce's variance bits, local_sce.h). The same cuts as the histogram passes over those keys where it answers.
bool rankCutsWindowedOfBits(const uint32_t* bits, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts);
// Two or three passes: a histogram of |d|'s high 16 bits shared by all cuts, one of the low 16 bits
// inside each chosen bin, and the index scan for a rank among equal |d|.
void rankCutsByHistogram(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts);

// The window pass of rankCutsWindowed over one chunk of |d| bits a[0..n) (elements start..start+n of
// `count`): appends the rank keys of the elements with lo <= a <= hi to keys, in element order, and
// returns how many; adds the number with a > hi to *above. May write keys[0..n + 4) as scratch.
// Scalar in sparse_select.cc, AVX2 in sparse_avx2.cc (the same keys), picked by dispatch.cc.
size_t windowKeys(const uint32_t* a, size_t n, uint32_t lo, uint32_t hi, uint32_t indexBits, uint64_t count, uint64_t start, uint64_t* keys,
                  uint64_t* above);

// The bin of a histogram holding the need-th largest element, counting from the top bin down; `need`
// becomes its rank inside the bin (the histogram cuts here and sce's, local_sce.cc).
inline size_t binOfRank(const uint64_t* hist, size_t bins, uint64_t& need) {
  size_t bin = bins - 1;
  for (; bin > 0 && hist[bin] < need; --bin) need -= hist[bin];
  return bin;
}

// |d| bits computed this many elements at a time, on the stack (forEachAbsBitsChunk).
constexpr size_t kAbsBitsChunk = 4096;
// Calls f(j0, a, n) for consecutive chunks of the |d| bits of elements [0, count) of base and x: a[0..n) are elements
// j0..j0+n; stops early where f returns false (the statistics passes here and in histogram_cuts.cc).
template <typename F>
void forEachAbsBitsChunk(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, F f) {
  uint32_t a[kAbsBitsChunk];
  const auto* b8 = static_cast<const uint8_t*>(base);
  const auto* x8 = static_cast<const uint8_t*>(x);
  for (uint64_t j = 0; j < count; j += kAbsBitsChunk) {
    const size_t n = count - j < kAbsBitsChunk ? static_cast<size_t>(count - j) : kAbsBitsChunk;
    absDeltaBits(b8 + j * dtypeSize(tb), tb, x8 + j * dtypeSize(tx), tx, n, a);
    if (!f(j, static_cast<const uint32_t*>(a), n)) return;
  }
}

// Whether any of bits[0 .. 16) lies in the bin `top` (bits >> 16 == top): 4 lanes a compare in any x86-64's SSE2 (GCC's
// vector extension; the plain loop compiled to one compare and branchless or per element).
inline bool anyInBin16(const uint32_t* bits, uint32_t top) {
  typedef uint32_t Lanes __attribute__((vector_size(16)));
  const Lanes tops = {top, top, top, top};
  Lanes hit = {0, 0, 0, 0};
  for (size_t q = 0; q < 4; ++q) {
    Lanes v;
    std::memcpy(&v, bits + 4 * q, sizeof v);
    hit |= reinterpret_cast<Lanes>((v >> 16) == tops);
  }
  return (hit[0] | hit[1] | hit[2] | hit[3]) != 0;
}

// Exact L1 sums of |d| and of the kept |d| under `keep` (sparsify.h's l1Buckets over the whole
// tensor, the same integer buckets): {before, after}. With keepBits, also the keep rule of every
// element, as SparseModel::keepBits reads it (keepBitsBytes(count) bytes).
struct L1Sums {
  double before, after;
};
L1Sums l1Sums(const void* base, Dtype tb, const void* x, Dtype tx, const SparseModel& keep, uint64_t count, uint8_t* keepBits = nullptr);

// keep[0..n) (0 or 1 each) as bits: element j at bit j % 8 of bits[j / 8] (SparseModel::keepBits' layout).
void packBits(const uint8_t* keep, size_t n, uint8_t* bits);
// Eight 0/1 bytes for each byte of bits (bit q to byte q, little-endian), built at compile time: keep bytes from a keep-bit map
// (della.cc's unpackKeepBits) and from vector compares' masks (della_avx2.cc's split by the draws and sparse_avx2.cc's keep
// rule: the first 4 of the 8 for a 4-bit mask).
struct SpreadBits {
  uint64_t bytes[256];
  constexpr SpreadBits() : bytes() {
    for (uint32_t b = 0; b < 256; ++b) {
      for (uint32_t q = 0; q < 8; ++q) bytes[b] |= static_cast<uint64_t>((b >> q) & 1) << (8 * q);
    }
  }
};
inline constexpr SpreadBits kSpreadBits;

// l1Sums' buckets come in kL1Sets sets, element i of a chunk in set i % kL1Sets (the scalar and AVX-512 steps; AVX2's puts every
// element in set 0, measured faster on the Zen 3): neighbours mostly share an exponent, and fewer sets may make each add wait for
// the previous one's store. Sets add up to the same sums. Each set holds a dropped and a kept sum per bucket, side by side.
constexpr size_t kL1Sets = 8;
// Element i's slot in those sums and its addend (addToL1Buckets' bucket and mantissa; Inf and NaN add 0, having no
// place in a finite sum), branch-free: the scalar truth of l1Slots.
inline uint32_t l1Slot(uint32_t a, size_t i, bool kept) {
  const uint32_t e = a >> 23;
  return static_cast<uint32_t>((i % kL1Sets) * 2 * kL1Buckets) + 2 * (e + (e == 0)) + kept;
}
inline uint32_t l1Addend(uint32_t a) {
  const uint32_t e = a >> 23;
  return ((a & 0x7FFFFFu) | ((e != 0) << 23)) & (0u - (a < 0x7F800000u));
}
// Elements [from, from + len) of a chunk: each one's l1Slot and l1Addend from its |d| bits a[i] and its keep byte kept[i - from]
// (the scalar step; sparse_avx2.cc's takes 8 lanes a step).
inline void l1SlotsOfKept(const uint32_t* a, const uint8_t* kept, size_t from, size_t len, uint32_t* slot, uint32_t* mant) {
  for (size_t i = from; i < from + len; ++i) {
    slot[i] = l1Slot(a[i], i, kept[i - from] != 0);
    mant[i] = l1Addend(a[i]);
  }
}
// l1Slots over elements [from, n) (from a multiple of 8) with `keepRule` as the keep rule (a backend's sparseKeep) and `slotsRule`
// as its step (l1SlotsOfKept or a SIMD one): the scalar truth's loop, and the SIMD loops' ragged ends.
template <class KeepRule, class SlotsRule>
void l1SlotsBy(KeepRule&& keepRule, SlotsRule&& slotsRule, const uint32_t* a, const SparseModel& m, uint32_t indexBits, uint64_t count,
               uint64_t start, size_t from, size_t n, uint32_t* slot, uint32_t* mant, uint8_t* bits) {
  uint8_t kept[512];
  for (size_t j0 = from; j0 < n; j0 += sizeof kept) {
    const size_t len = n - j0 < sizeof kept ? n - j0 : sizeof kept;
    keepRule(a + j0, m, indexBits, count, start + j0, len, kept);
    slotsRule(a, kept, j0, len, slot, mant);
    if (bits != nullptr) packBits(kept, len, bits + j0 / 8);
  }
}
// The per-element work of l1Sums over one chunk of |d| bits a[0..n) (elements start..start+n of `count`, start a multiple
// of 8): the keep rule (sparseKeep), each element's l1Slot (i counted from the chunk's start) and l1Addend, and, with
// `bits`, the keep rule as bits (bits[0] holds element start). Scalar in sparse_select.cc, AVX-512 in sparse_avx512.cc.
void l1Slots(const uint32_t* a, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n, uint32_t* slot, uint32_t* mant,
             uint8_t* bits);

// l1Sums over a tensor given in consecutive parts (a tensor-local job read in chunks, native/local_job.h): integer buckets,
// so any split adds up to l1Sums' result.
class L1Accumulator {
 public:
  // Elements [start, start + n) of the tensor of `count` (start a multiple of 8; base and x at element start), their keep rule
  // into keepBits (the whole tensor's map) when given.
  void add(const void* base, Dtype tb, const void* x, Dtype tx, const SparseModel& keep, uint64_t count, uint64_t start, uint64_t n,
           uint8_t* keepBits);
  L1Sums sums() const;

 private:
  std::vector<uint64_t> sums_ = std::vector<uint64_t>(kL1Sets * 2 * kL1Buckets, 0);  // kL1Sets sets of dropped and kept sums per bucket
};
// A keep-bit map's size: one bit per element, and 8 bytes of slack (the AVX2 merge reads 2 bytes at a time).
inline uint64_t keepBitsBytes(uint64_t count) { return count / 8 + 8; }

}  // namespace wm
