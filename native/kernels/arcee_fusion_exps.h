// arcee_fusion's softmax exps, e_j = exp(x_j - m) with m the row's max (arceeRowMax), through a memo for 16-bit
// sources: there e_j is a function of (dtype, bits of m, 16 bits of x_j), so a table of the 65,536 possible x for the
// current (dtype, m) answers every repeat, filled lazily (a generation stamp per entry; a row's misses computed by one
// expArray). Exact by construction: each entry is expArray (== std::exp) of the very double argument the direct path
// computes, double(x_j) - m. F32 sources take the direct path (arceeShiftedRow + expArray).
// Memory: 65,536 x (8 + 4) bytes = 768 KiB per memo, plus 18 bytes per element of the longest row for the misses.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels.h"

namespace wm {

// Whether rows of this dtype go through the memo (16-bit floats).
inline bool arceeExpMemoized(Dtype t) { return t == Dtype::BF16 || t == Dtype::F16; }

class ArceeExpMemo {
 public:
  // e[j] = std::exp(double(v[r0 + j]) - m), j < L, bit for bit (m: the row's arceeRowMax). x: L doubles of
  // scratch for the direct path (f32).
  void rowExps(const void* v, Dtype t, size_t r0, size_t L, double m, double* e, double* x);
  uint64_t hits = 0, misses = 0;  // elements answered by the table, and those computed (16-bit rows only)

 private:
  void bind(Dtype t, double m);
  std::vector<uint32_t> stamp_ = std::vector<uint32_t>(size_t{1} << 16, 0);  // entry valid iff == generation_
  std::vector<double> value_ = std::vector<double>(size_t{1} << 16);
  uint32_t generation_ = 0;
  Dtype type_ = Dtype::U8;  // none bound yet
  uint64_t maxBits_ = 0;
  std::vector<uint16_t> missed_;
  std::vector<double> arg_, exp_;
};

}  // namespace wm
