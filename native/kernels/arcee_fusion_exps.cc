// arcee_fusion's softmax exps through a memo per (dtype, row max) for 16-bit sources (arcee_fusion_exps.h).
#include "arcee_fusion_exps.h"

#include <algorithm>
#include <cstring>

#include "arcee_fusion_rows.h"
#include "element_io.h"
#include "exact_exp_log.h"

namespace wm {

void ArceeExpMemo::bind(Dtype t, double m) {
  uint64_t bits;
  std::memcpy(&bits, &m, 8);
  if (t == type_ && bits == maxBits_) return;
  type_ = t;
  maxBits_ = bits;
  if (++generation_ == 0) {  // the stamps wrapped: clear them, so that no stale entry matches
    std::fill(stamp_.begin(), stamp_.end(), 0);
    generation_ = 1;
  }
}

void ArceeExpMemo::rowExps(const void* v, Dtype t, size_t r0, size_t L, double m, double* e, double* x) {
  if (!arceeExpMemoized(t)) {
    arceeShiftedRow(v, t, r0, L, x);
    expArray(x, e, L);
    return;
  }
  bind(t, m);
  const auto* row = static_cast<const unsigned char*>(v) + 2 * r0;
  const auto bitsAt = [&](size_t j) {
    uint16_t u;
    std::memcpy(&u, row + 2 * j, 2);
    return u;
  };
  // Each value not in the table yet, once (its first occurrence stamps it), without a branch per element.
  if (missed_.size() < L) missed_.resize(L);
  size_t n = 0;
  for (size_t j = 0; j < L; ++j) {
    const uint16_t u = bitsAt(j);
    missed_[n] = u;
    n += stamp_[u] != generation_;
    stamp_[u] = generation_;
  }
  if (n > 0) {
    if (arg_.size() < n) {
      arg_.resize(L);
      exp_.resize(L);
    }
    // The direct path's argument: the element as f32, widened, less the max (arceeShiftedRow).
    for (size_t i = 0; i < n; ++i) arg_[i] = static_cast<double>(loadElementF32(missed_.data(), t, i)) - m;
    expArray(arg_.data(), exp_.data(), n);
    for (size_t i = 0; i < n; ++i) value_[missed_[i]] = exp_[i];
  }
  for (size_t j = 0; j < L; ++j) e[j] = value_[bitsAt(j)];
  hits += L - n;
  misses += n;
}

}  // namespace wm
