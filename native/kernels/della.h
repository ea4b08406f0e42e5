// DELLA's MAGPRUNE (mergekit's della and della_linear, sparsify.py della_magprune), scalar truth.
//
// Rows: mergekit ranks |d| along dim 1 (a 1-D tensor is one row, unsqueezed). A tensor of shape
// [d0, d1, rest...] has d0 x prod(rest) rows of L = d1 elements; with S = prod(rest), element i lies in
// row (i / (L S), i mod S) at position (i / S) mod L. S = 1 for a matrix: rows of its last dimension.
// A block of L S consecutive elements holds whole rows, so pieces of whole blocks hold whole rows.
//
// Keep rule of model k, per row of L elements, d = fl32(x_k - base):
//   rank r in 0..L-1: ascending |d| bits (every NaN one value above Inf), equal |d| ordered by element index, the
//   LOWER index ranking HIGHER (sparsify.h's rank key order: the same tie-break as TIES's top-k);
//   p = (density - epsilon) + ((r / (L - 1)) * 2) * epsilon   in f64; a one-element row has p = density
//   keep = u(seedKey, i) < p                                    (sparsify.h's bernoulliKeep, i the tensor index)
// density >= 1 keeps every element, density <= 0 none (mergekit's early returns).
//
// Merge: dropped elements of model k become the base's value, and sparsify.h's sparseMerge runs on
// these sources with no further selection: e_k = (x'_k - base) * scale_k, sign consensus (della) or
// none (della_linear), normalize, lambda, one rounding. A dropped element's e_k is 0 for a finite base
// (the same value the sparse op gives a dropped element) and NaN where the base is +-Inf (mergekit's
// masked d there is -Inf * 0 = NaN too). scale_k is the L1 factor of the kept elements (dellaL1 below,
// lib/recipes/della-rescale.ts), 1 without rescale.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "della_rank.h"
#include "kernels.h"
#include "sparse_select.h"
#include "sparsify.h"

namespace wm {

struct DellaRows {
  uint64_t length = 1;  // L
  uint64_t stride = 1;  // S
  uint64_t block() const { return length * stride; }
};

struct DellaModel {
  uint32_t source = 0;
  double weight = 0;
  double density = 1;
  double epsilon = 0;
  uint64_t seedKey = 0;
  float scale = 1;
  bool openL1 = false;  // scale left open for a tensor-local job (the params' tail; native/local_job.h)
  // A tensor-local job's MAGPRUNE mask, computed once for the L1 sums (sparsify.h's keptBit, by tensor
  // index), which the merge reads instead of ranking the rows again; null: dellaKeep. Never decoded.
  const uint8_t* keepBits = nullptr;
};

struct DellaParams {
  Consensus consensus = Consensus::None;  // None (della_linear) or Sum (della)
  bool normalize = false;
  double lambda = 1;
  uint32_t baseSource = 0;
  DellaRows rows;
  std::vector<DellaModel> models;
};

// Dest params: [consensus, normalize, lambda, baseSource, L, S, m, m x (source, weight, density, epsilon, seedHi, seedLo, scale)
//               [, m x (l1 open)]]: the optional tail marks models whose scale (a placeholder) a tensor-local job resolves.
// `count` is the job's element count, a multiple of L S. Throws std::invalid_argument when malformed.
DellaParams decodeDellaParams(const std::vector<double>& p, size_t sourceCount, uint64_t count);
constexpr size_t kDellaHeader = 7;
constexpr size_t kDellaPerModel = 7;
constexpr size_t kDellaOpenPerModel = 1;

// keep[j] = 1 when element start + j survives model m's MAGPRUNE; start and n are whole blocks of rows.
void dellaKeep(const void* base, Dtype tb, const void* x, Dtype tx, const DellaRows& rows, const DellaModel& m, uint64_t start, size_t n,
               uint8_t* keep);

// The uniform draws of n consecutive elements: u[j] = splitmix64(seedKey + (first + j + 1) * golden) >> 11, element
// first + j kept when u[j] < the integer keep limit of its rank (della.cc's keepLimit: bernoulliKeep in integers).
// Scalar in della.cc, AVX2 in della_avx2.cc (the same values), picked by dispatch.cc.
void dellaUniforms(uint64_t seedKey, uint64_t first, size_t n, uint64_t* u);

// The keys of n elements: keys[j] = |d| bits of element j (absDeltaBits), every NaN one value above Inf (0x7FC00000);
// returns their DellaKeyFacts (della_rank.h: the OR of their low 16 bits, and their span of buckets). Scalar in della.cc,
// AVX2 in della_avx2.cc.
DellaKeyFacts dellaKeys(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* keys);

// Elements [start, start + n) (whole blocks of rows) of a job of `count` elements.
void dellaMerge(const void* const* srcs, const Dtype* types, const DellaParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                Dtype to);

// The L1 statistic (job sources [base, x]; statParams [L, S, density, epsilon, seedHi, seedLo]): adds |d| of
// every element and of the kept ones into sparsify.h's exact L1 buckets.
DellaRows decodeDellaStat(const std::vector<double>& p, uint64_t count, DellaModel& m);
// With keepBits (the tensor's map, start a multiple of 8), also writes each element's keep rule there.
void dellaL1Buckets(const void* base, Dtype tb, const void* x, Dtype tx, const DellaRows& rows, const DellaModel& m, uint64_t start,
                    size_t n, uint64_t* before, uint64_t* after, uint8_t* keepBits = nullptr);

}  // namespace wm
