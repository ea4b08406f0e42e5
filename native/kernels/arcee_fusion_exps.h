// arcee_fusion's softmax exps, e_j = exp(x_j - m) with m the row's max (arceeRowMax), through a memo for 16-bit
// sources: there e_j is a function of (dtype, bits of m, 16 bits of x_j). Before a batch of rows (a tensor in memory,
// or a streamed piece) the memo collects the distinct 16-bit patterns of its elements and the rows' distinct maxes, and
// keeps the exps of those patterns in one of two ways, whichever computes fewer:
//   one table: by pattern, refilled with one expArray at each change of max along the rows' order (ArceeExpMemo::Mode::
//     oneTable; arceeRowKls orders the rows by the base's max, so the base's memo refills once per distinct max);
//   a table per distinct max: by pattern's dense id, each computed once with one expArray when a row first needs it, however
//     often the rows come back to its max (Mode::tablePerMax: the model's memo, whose max changes many times as often as
//     it has values: 866 changes of ~100 values in the dense bench pair's gate_proj), at most 16 MiB of tables; one more
//     load per element (the id).
// Each element of a row is then one or two loads from a table, with no check: every pattern of the batch is in it.
// Exact by construction: each entry is expArray (== std::exp) of the very double argument the direct path computes,
// double(x_j) - m. The direct path (arceeShiftedRow + expArray) stays for f32 sources and for batches where the tables
// would cost more than they save (their exps above half the elements).
// Memory: 65,536 x (8 + 1 + 2 + 2 + 24) bytes = 2.3 MiB per memo at most (table, pattern flags, list and ids, the
// patterns' values and a fill's arguments and exps), plus the tables per max (16 MiB at most), two memos per thread.
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
  // How rowExps finds the exps: the cheapest of the others (prepare's choice), or one forced (tests).
  enum class Mode { cheapest, direct, oneTable, tablePerMax };
  // Readies the memo for the rows from the n elements at v, of dtype t: rowMaxes[0 .. rows) are their maxes (arceeRowMax;
  // any order), taken in an order whose max changes `changes` times. The memo is used where t is 16-bit, by the mode of
  // fewer exps (a table per max where it has fewer maxes than changes, within its memory cap) if those are <= n / 2, else
  // the direct path.
  void prepare(const void* v, Dtype t, size_t n, const double* rowMaxes, size_t rows, size_t changes, Mode mode = Mode::cheapest);
  // e[j] = std::exp(double(v[r0 + j]) - m), j < L, bit for bit (m: the row's arceeRowMax, one of prepare's rowMaxes; the
  // row within prepare's elements). x: L doubles of scratch for the direct path.
  void rowExps(const void* v, Dtype t, size_t r0, size_t L, double m, double* e, double* x);
  Mode mode() const { return mode_; }
  bool memoized() const { return mode_ != Mode::direct; }
  uint64_t computed = 0, looked = 0;  // exps computed for the tables, and elements answered from them

 private:
  void exps(double m, double* out);      // every prepared pattern's exp for the max m, in the patterns' order
  const double* tableOf(double m);       // Mode::tablePerMax: m's table (by id), computed on its first use
  std::vector<double> value_ = std::vector<double>(size_t{1} << 16);  // Mode::oneTable, by 16-bit pattern: its exp for maxBits_
  std::vector<uint8_t> present_ = std::vector<uint8_t>(size_t{1} << 16, 0);
  std::vector<uint16_t> id_ = std::vector<uint16_t>(size_t{1} << 16);  // by pattern: its place among patterns_
  std::vector<uint16_t> patterns_;  // the batch's distinct patterns
  std::vector<double> widened_, arg_, exp_;  // by pattern: its value as f64; a fill's arguments and exps
  std::vector<uint64_t> maxes_;  // the rows' distinct maxes' bits, ascending: a slot each in tables_
  std::vector<double> tables_;   // Mode::tablePerMax: slot s's exps at s * patterns, by id
  std::vector<uint8_t> ready_;   // by slot: its table computed
  Mode mode_ = Mode::direct;
  bool filled_ = false;
  uint64_t maxBits_ = 0;
  size_t slot_ = 0;  // the last row's slot (rows of one max come together)
};

}  // namespace wm
