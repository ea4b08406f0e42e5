// arcee_fusion's softmax exps, e_j = exp(x_j - m) with m the row's max (arceeRowMax), through a memo for 16-bit
// sources: there e_j is a function of (dtype, bits of m, 16 bits of x_j). Before a batch of rows (a tensor in memory,
// or a streamed piece) the memo collects the distinct 16-bit patterns of its elements; for each max (the rows come
// ordered by their maxes, arceeRowKls) it computes the exps of those patterns with one expArray into a table by
// pattern, and each element of a row is then one load from that table, with no check: every pattern of the batch is
// in it.
// Exact by construction: each entry is expArray (== std::exp) of the very double argument the direct path computes,
// double(x_j) - m. The direct path (arceeShiftedRow + expArray) stays for f32 sources and for batches where the
// refills would cost more than they save (changes of max x distinct patterns above half the elements).
// Memory: 65,536 x (8 + 1 + 2 + 24) bytes = 2.2 MiB per memo at most (table, pattern flags and list, the patterns'
// values and a fill's arguments and exps), two per thread (base and model).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels.h"

namespace wm {

// Whether rows of this dtype can go through the memo (16-bit floats).
inline bool arceeExpMemoizable(Dtype t) { return t == Dtype::BF16 || t == Dtype::F16; }

class ArceeExpMemo {
 public:
  // Readies the memo for rows from the n elements at v, of dtype t, taken in an order whose max changes `changes`
  // times: the memo is used where t is 16-bit and changes x distinct patterns <= n / 2, else the direct path.
  void prepare(const void* v, Dtype t, size_t n, size_t changes);
  // e[j] = std::exp(double(v[r0 + j]) - m), j < L, bit for bit (m: the row's arceeRowMax; the row within prepare's
  // elements). x: L doubles of scratch for the direct path.
  void rowExps(const void* v, Dtype t, size_t r0, size_t L, double m, double* e, double* x);
  bool memoized() const { return memoized_; }
  uint64_t computed = 0, looked = 0;  // exps computed for the table, and elements answered from it

 private:
  void fill(double m);
  std::vector<double> value_ = std::vector<double>(size_t{1} << 16);  // by 16-bit pattern: its exp for maxBits_
  std::vector<uint8_t> present_ = std::vector<uint8_t>(size_t{1} << 16, 0);
  std::vector<uint16_t> patterns_;  // the batch's distinct patterns
  std::vector<double> widened_, arg_, exp_;  // by pattern: its value as f64; a fill's arguments and exps
  bool memoized_ = false, filled_ = false;
  uint64_t maxBits_ = 0;
};

}  // namespace wm
