// SCE (mergekit's sce, merge_methods/sce.py), scalar truth in f64 with one rounding.
//
// Task vectors t_k = x_k - base (f64; exact for two f32 unless their exponents are far apart), k = 0..m-1.
// Selection (select_topk < 1): per element the variance across models, v = (1/m) sum (t_k - mean)^2 with
// mean = (1/m) sum t_k (f64, then rounded to f32 as mergekit's f32 variance; every NaN one value above
// Inf). Rank key = (bits(v) << indexBits) | (count - 1 - i): sparsify.h's order (equal variances: the
// LOWER index ranks higher). The kept elements are those with key >= cut; the planner finds the cut
// of the top k = trunc(nonzero * select_topk) keys by radix selection over sceHistogram passes
// (lib/recipes/sce-select.ts); cut 0 keeps all (select_topk >= 1), kRankKeyNone none.
// A dropped element's t_k is t_k * 0 (mergekit's tvs * mask; finite there, since v is then finite).
//
// Merge (mergekit's term order): s = sum t_k; e_k = (sign(t_k) == (s >= 0 ? +1 : -1)) (a zero or NaN never
// agrees); w_k from the per-model sums of squares of the selected, finite t_k (sceSumSquares,
// lib/recipes/sce-statistics.ts; mergekit's sums include a NaN or Inf and turn every weight NaN):
//   num = sum t_k * (w_k * e_k); den = sum w_k * e_k; out = round(base + num / max(den, 1e-6))
// NaN and Inf follow mergekit's products (NaN * 0 is NaN).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "histogram_digit.h"
#include "kernels.h"

namespace wm {

struct SceParams {
  uint32_t base = 0;
  uint64_t cut = 0;  // keep rank keys >= cut
  uint32_t indexBits = 0;
  std::vector<uint32_t> sources;  // the models, in the recipe's order
  std::vector<double> weights;    // one per model
  // A tensor-local job's open statistics (native/local_sce.h): cut and weights from select_topk and the
  // tensor in memory, the sums of squares added in pieces of sumPiece elements as the streaming pass adds them.
  bool open = false;
  double selectTopk = 0;
  uint64_t sumPiece = 0;
  // The variance bits computed again in each pass over the tensor instead of stored (4 bytes per element): its sources alone fit the local budget.
  bool recomputeVariances = false;
  // Set by a local job: the f32 variance bits of elements 0..count-1, read instead of computed again. Never decoded.
  const uint32_t* varianceBits = nullptr;
  // Set by a local job once its sums are known, in place of varianceBits: each element's keep bit (its key reaches the cut)
  // at sceKeepMapBit, in the memory of the variance bits (1 bit instead of 32 read by the merge). Never decoded.
  const uint8_t* keepMap = nullptr;
};

// Where element i's keep bit lies in a keep map over pieces of `piece` elements (SceParams::keepMap): bit (i % piece) % 8 of
// byte (i / piece) * 4 * piece + (i % piece) / 8, i.e. each piece's bits at the start of its own variance bits, so that the map
// can be written over them in element order (a byte never lies on the bits of an element after its own).
inline uint64_t sceKeepMapBit(uint64_t i, uint64_t piece) { return (i / piece) * 32 * piece + i % piece; }

// The elements from i on, of `left`, that lie in i's piece of a keep map `map` over pieces of `piece` elements (length), and where
// their bits start: bit shift of bytes[0] on (sceKeepMapBit). The fused merges' keep bits, a run at a time.
struct SceKeepMapRun {
  size_t length;
  const uint8_t* bytes;
  unsigned shift;
};
inline SceKeepMapRun sceKeepMapRun(const uint8_t* map, uint64_t piece, uint64_t i, size_t left) {
  const uint64_t bit = sceKeepMapBit(i, piece), rest = piece - i % piece;
  return {left < rest ? left : static_cast<size_t>(rest), map + bit / 8, static_cast<unsigned>(bit % 8)};
}

// Dest params [base, cutHi, cutLo, indexBits, m, m x (source, weight) [, selectTopk, sumPiece [, recomputeVariances]]] (the tail:
// statistics left open for the executor; recomputeVariances 1 or 0, absent 0). Throws std::invalid_argument when malformed.
SceParams decodeSceParams(const std::vector<double>& p, size_t sourceCount, uint64_t count);
// statParams of the selection statistic: [base, m, m sources, indexBits, shift, bits, prefixHi, prefixLo, (first, total)?] (the
// tail: the job is elements first .. first + count - 1 of a tensor of `total`, keyed as there: indexBits of total, index
// first + i); of the sums of squares: [base, m, m sources, cutHi, cutLo, indexBits] (weights unused).
struct SceStat {
  SceParams select;
  HistogramDigit digit;  // select.indexBits is its indexBits
};
SceStat decodeSceHistogram(const std::vector<double>& p, size_t sourceCount, uint64_t count);
// The digit width (SceStat::digit.bits) of a selection statistic's params that decodeSceHistogram has accepted: 2^bits + 1 counts.
inline uint32_t sceHistogramBits(const std::vector<double>& p) { return static_cast<uint32_t>(p[4 + static_cast<size_t>(p[1])]); }
SceParams decodeSceSumSquares(const std::vector<double>& p, size_t sourceCount, uint64_t count);

// Radix counts over the variance keys of elements start .. start + n - 1 of a job of `count` (sparsify.h's radixHistogram
// over these keys: hist[(key >> shift) & (2^bits - 1)] += 1 where key >> (shift + bits) == prefix), each keyed by its place
// in the whole tensor where the job is a run of it (SceStat::digit's first, total); hist[2^bits] counts the elements whose f32 variance is 0.
void sceHistogram(const void* const* srcs, const Dtype* types, const SceStat& s, uint64_t count, uint64_t start, size_t n, uint64_t* hist);
// Adds to sums[k] the sum of t_k^2 over the selected elements whose t_k is finite (f64, element order).
void sceSumSquares(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, double* sums);
// The sums of squares of a tensor of `count` elements (srcs at element 0) as the streaming passes add them: sceSumSquares
// over each piece of p.sumPiece elements from 0, the pieces' sums added to sums[k] in piece order. Dispatched.
// With keepMap (not null; the memory of p.varianceBits, which must be set): also overwrites the variance bits with the keep map
// (sceKeepMapBit over these pieces), each byte once the bits it lies on have been read.
void sceSumSquaresPieces(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, double* sums, uint8_t* keepMap);
// keep[j] = 1.0 where element first + j's bit in the keep map `map` over pieces of `piece` elements is set, else 0.0. Dispatched.
void sceKeepOfMap(const uint8_t* map, uint64_t piece, uint64_t first, size_t len, double* keep);
// The f32 variance bits (every NaN one value above Inf) of the n elements at srcs into bits[0..n). Dispatched.
void sceVarianceBits(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits);
// How many of bits[0..n) are 0 (the elements of variance 0, which the cut's k leaves out). Dispatched.
uint64_t sceZeroBits(const uint32_t* bits, size_t n);
// mergekit's sce_weight from the per-model sums of squares over `count` elements: lib/recipes/sce-statistics.ts's
// sceWeights, the same f64 operations in the same order.
std::vector<double> sceWeights(const std::vector<double>& sumSquares, uint64_t count);
// sceMerge of elements start .. start + n - 1 of count (cut below kRankKeyNone) without the chunks' f64 task vectors and keep mask, where
// the backend can (AVX-512, one dtype, 1 to 8 models, keep bits not from stored variance bits); false (nothing written) otherwise. Dispatched.
bool sceMergeInRegisters(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out, Dtype to);
void sceMerge(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out, Dtype to);
// sceMerge's arithmetic on one chunk of `len` elements already loaded as f64: base[j], t[k * stride + j] and
// keep[j] (1 or 0), len <= 512 (sce.cc's chunk); writes out[at .. at + len) with one rounding. Dispatched to the CPU backend (cpu_backends.h).
// A chunk's f64 loads: base[j] and t[k * stride + j] = x_k - base for elements j0 .. j0 + len - 1 of the models
// p.sources, and with `bits` (not null) their f32 variance bits (sceVarianceBits's). Dispatched to the CPU backend.
void sceTasks(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, double* base, double* t, size_t stride,
              uint32_t* bits);
// keep[j] = 1.0 where the rank key of variance bits[j] (element first + j of count) reaches cut, else 0.0. Dispatched.
void sceKeep(const uint32_t* bits, uint32_t indexBits, uint64_t count, uint64_t first, uint64_t cut, size_t len, double* keep);
// sceMerge of a cut that keeps nothing (p.cut >= kRankKeyNone) over elements j0 .. j0 + len - 1: out = round(base + 0) where
// the base and every model are finite there, else NaN (sce.cc's scalar truth says why). Dispatched.
void sceMergeNone(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, void* out, Dtype to);
void sceCombine(const double* base, const double* t, size_t stride, const double* keep, const double* weights, size_t m, size_t len, void* out,
                size_t at, Dtype to);

}  // namespace wm
