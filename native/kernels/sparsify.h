// Sparsifying task-vector merges (mergekit's TIES, DARE, breadcrumbs families), scalar truth.
//
// Task vectors: d_k = fl32(x_k - base), one f32 subtraction per model k.
//
// Magnitude order (ties, breadcrumbs): every element gets a 64-bit rank key
//   key(i) = (bits(|d_i|) << indexBits) | (count - 1 - i)
// bits(|d|) is the f32 bit pattern with the sign cleared (monotone in |d|; NaN sorts above Inf).
// Keys are unique: equal magnitudes are ordered by element index, the LOWER index ranking higher.
// "Keep the top k" is then exactly `key >= key of the k-th largest`, found by radix selection over
// the key's digits (histogram passes, radixHistogram below), never by sorting.
//
// Keep rule of model k at element i: lowKey <= key(i) < highKey (magnitude), and, when
// 0 < density < 1, u(seedKey, i) < density (DARE's Bernoulli mask; u below).
//
// Random mask: u(K, i) = (splitmix64(K + (i + 1) * 0x9E3779B97F4A7C15) >> 11) * 2^-53, with K the
// per-(random_seed, tensor name, model) key computed by the planner. Counter-based: the mask of
// element i depends on (K, i) only, never on threads, block sizes or device.
//
// Merge of element i (f64 with the recipe's f64 weights and lambda, sums in model order k = 0..m-1;
// the keep rule above ranks the f32 d_k):
//   e_k = keep_k ? (x_k - base) * scale_k : 0      in f64 (the difference of two f32 is exact there
//                                                    unless their exponents differ by more than 29)
//   v_k = w_k * e_k
//   consensus none:  mixed = sum v_k; div = sum w_k; |div| < 1e-8 -> div = 1
//   consensus sum:   s = sign(sum v_k) with sum >= 0 -> +1; count: s = sign(sum sign(v_k)) >= 0 -> +1
//                    agree_k = sign(v_k) == s (a zero never agrees);
//                    mixed = sum agree_k v_k; div = sum agree_k w_k; div == 0 -> div = 1
//   normalize:       mixed = mixed / div
//   out = round_to(base + mixed * lambda): one rounding of the f64 value to the output dtype (F32
//   directly, BF16 and F16 through an f32 rounded to odd), so that task arithmetic, whose
//   weighted task vectors are not small next to the base, is correctly rounded, not f32-summed.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace wm {

enum class Consensus : int { None = 0, Sum = 1, Count = 2 };

struct SparseModel {
  uint32_t source = 0;  // index into the job's sources
  double weight = 0;  // the recipe's number, not its f32 rounding
  uint64_t lowKey = 0;                 // keep key >= lowKey
  uint64_t highKey = ~uint64_t{0};     // keep key < highKey
  double density = 1;                  // in (0, 1): Bernoulli(density) mask from seedKey; else none
  uint64_t seedKey = 0;
  float scale = 1;
  // A tensor-local job's keep rule already applied (cuts and mask; keptBit below), so that the merge
  // reads a bit instead of hashing the element again; null: the rule above. Never decoded from params.
  const uint8_t* keepBits = nullptr;
};

// A statistic the executor computes from the tensor held in memory (a tensor-local job,
// native/local_job.h) instead of the planner's statistics passes: model k's lowKey/highKey become
// the cuts with exactly lowRank/highRank keys at or above them (select), its scale the L1 factor (l1).
struct SparseOpen {
  bool select = false;
  uint64_t lowRank = 0;
  uint64_t highRank = 0;
  bool l1 = false;
};

struct SparseParams {
  Consensus consensus = Consensus::None;
  bool normalize = false;
  double lambda = 1;
  uint32_t indexBits = 0;
  uint32_t baseSource = 0;
  std::vector<SparseModel> models;
  std::vector<SparseOpen> open;  // empty, or one per model: what a tensor-local job still resolves
};

// The flat per-dest parameter vector (lib/sparse-plan.ts writes it):
//   [consensus, normalize, lambda, indexBits, baseSource, m,
//    m x (source, weight, lowHi, lowLo, highHi, highLo, density, seedHi, seedLo, scale)
//    [, m x (select, lowRank, highRank, l1)]]
// 64-bit values travel as two u32 halves; ranks as exact integers. The optional tail marks the dest
// open (SparseOpen): its keys and scales are placeholders until resolved. Throws std::invalid_argument when malformed.
SparseParams decodeSparseParams(const std::vector<double>& p, size_t sourceCount);
constexpr size_t kSparseHeader = 6;
constexpr size_t kSparsePerModel = 10;
constexpr size_t kSparseOpenPerModel = 4;

// Number of bits of the element index in the rank key: the bit length of count - 1.
uint32_t sparseIndexBits(uint64_t count);

inline uint64_t sparseRankKey(uint32_t absBits, uint32_t indexBits, uint64_t count, uint64_t i) {
  return (static_cast<uint64_t>(absBits) << indexBits) | (count - 1 - i);
}

// Element i's bit in a SparseModel::keepBits map: bit i % 8 of byte i / 8.
inline bool keptBit(const uint8_t* bits, uint64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }
// Elements i .. i + 24's bits of a keepBits map, element i's in bit 0, for the SIMD merges' lane masks (the map's padding,
// sparse_select.h's keepBitsBytes, makes the 4-byte read safe wherever i < count falls).
inline uint32_t keptBitsFrom(const uint8_t* bits, uint64_t i) {
  uint32_t four;
  std::memcpy(&four, bits + (i >> 3), 4);
  return four >> (i & 7);
}

// The random masks' counter step: element i draws splitmix64(seedKey + (i + 1) * kSplitmixGolden) (every SIMD path too).
constexpr uint64_t kSplitmixGolden = 0x9E3779B97F4A7C15ull;

// Inline: DELLA's and DARE's masks call it once per element (out of line it cost 2-3 % of a della merge).
inline uint64_t splitmix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
// true when element i of the mask keyed by seedKey is kept with probability `density`.
inline bool bernoulliKeep(uint64_t seedKey, uint64_t i, double density) {
  const uint64_t u = splitmix64(seedKey + (i + 1) * kSplitmixGolden);
  return static_cast<double>(u >> 11) * 0x1.0p-53 < density;
}

// The normalization's divisor (the rules of the header above): without a consensus the weight sum, 1 where its magnitude is
// below 1e-8; under one, the agreeing models' weight sum added from +0, 1 where it is 0. Every path's sparse merge takes them here.
inline double weightSumDivisor(double wsum) { return std::fabs(wsum) < 1e-8 ? 1.0 : wsum; }
inline double agreeingDivisor(double sum) { return sum == 0 ? 1.0 : sum; }
// A one-model dest's divisor, which is the same for every element where the model agrees (the SIMD one-model loops').
inline double oneModelDivisor(const SparseParams& p) {
  const double w = p.models[0].weight;
  return p.consensus != Consensus::None ? agreeingDivisor(0.0 + w) : weightSumDivisor(w);
}

// Elements [start, start + n) of a job of `count` elements: srcs[s] points at element `start`.
// Scalar in sparsify.cc, AVX2 in sparse_avx2.cc (the same bits), picked by dispatch.cc.
void sparseMerge(const void* const* srcs, const Dtype* types, const SparseParams& p, uint64_t count, uint64_t start,
                 size_t n, void* out, Dtype to);

// keep[j] = 1 when element start + j, whose |d| bits are absBits[j], passes model m's keep rule
// (the rank-key cuts and, when 0 < density < 1, the Bernoulli mask), else 0. Scalar in
// sparse_select.cc, AVX2 in sparse_avx2.cc (the same bytes), picked by dispatch.cc.
void sparseKeep(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n,
                uint8_t* keep);

constexpr uint32_t kMaxHistogramBits = 12;  // 4096 counters per histogram job

// One radix-selection pass over d = x - base: for elements whose rank key has
// (key >> (shift + bits)) == prefix, hist[(key >> shift) & (2^bits - 1)] += 1.
void radixHistogram(const void* base, Dtype tb, const void* x, Dtype tx, uint32_t indexBits, uint64_t count,
                    uint64_t start, size_t n, uint32_t shift, uint32_t bits, uint64_t prefix, uint64_t* hist);

// Exact L1 sums for the norm-matching rescale: |d| and |d| of the kept elements, as integer
// mantissas per f32 exponent (bucket e holds the sum of 24-bit significands of values with biased
// exponent e), so that any split of the work adds up to the same totals. Non-finite d are skipped.
constexpr size_t kL1Buckets = 256;
// A finite |d|'s (f32 bits a) bucket and the integer it adds there.
inline uint32_t l1Bucket(uint32_t a) { return a < 0x00800000u ? 1 : a >> 23; }  // a subnormal's value is mant * 2^(1 - 150)
inline uint64_t l1Mantissa(uint32_t a) { return a < 0x00800000u ? a : ((a & 0x7FFFFFu) | 0x800000u); }
// Adds one |d| (its f32 bits a) to the buckets; Inf and NaN have no place in a finite sum.
inline void addToL1Buckets(uint32_t a, bool kept, uint64_t* before, uint64_t* after) {
  if (a >= 0x7F800000u) return;
  const uint64_t mant = l1Mantissa(a);
  const uint32_t bucket = l1Bucket(a);
  before[bucket] += mant;
  after[bucket] += mant & (uint64_t{0} - static_cast<uint64_t>(kept));  // branch-free: a random mask mispredicts half the time
}
void l1Buckets(const void* base, Dtype tb, const void* x, Dtype tx, const SparseModel& keep, uint32_t indexBits,
               uint64_t count, uint64_t start, size_t n, uint64_t* before, uint64_t* after);
// sum_e bucket[e] * 2^(e - 150), in f64 from the largest exponent down (deterministic).
double l1Total(const uint64_t* buckets);
// The rescale factor of L1 sums, the planner's arithmetic exactly (lib/recipes/sparsify.ts's l1Scale, then
// Math.fround as della-rescale.ts and the params' f32 do): norms below 1e-7 leave the tensor as is; +Inf past f32.
inline float l1Scale(double before, double after) { return static_cast<float>(before < 1e-7 || after < 1e-7 ? 1.0 : before / after); }

}  // namespace wm
