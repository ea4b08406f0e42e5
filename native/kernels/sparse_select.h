// Statistics of d = fl32(x - base) over a whole tensor held in memory (a tensor-local job,
// native/local_job.h): the rank cuts and L1 sums that the planner's statistics passes (sparsify.h's
// radixHistogram, l1Buckets) find by re-reading the files, from the bytes one worker already holds.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"
#include "sparsify.h"

namespace wm {

// Above every rank key (keys have at most 31 + 32 bits): "no upper cut", or "keep nothing" as a lower one.
constexpr uint64_t kRankKeyNone = uint64_t{1} << 63;

// The cut C with exactly `rank` of the tensor's rank keys (sparsify.h) at or above it: kRankKeyNone
// for rank 0, 0 for rank >= count, else the key of the rank-th largest element. Keys are unique, so
// {key >= C} is the very set the histogram passes' cut keeps. Two or three passes over memory:
// a histogram of |d|'s high 16 bits, one of the low 16 bits inside the chosen bin, and, when the
// rank falls among equal |d|, a scan for the element index (lower index first).
uint64_t rankCut(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, uint64_t rank);
// The cuts of k ranks at once (breadcrumbs' two): one shared first pass, one second pass for all.
void rankCuts(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts);

// Exact L1 sums of |d| and of the kept |d| under `keep` (sparsify.h's l1Buckets over the whole
// tensor, the same integer buckets): {before, after}.
struct L1Sums {
  double before, after;
};
L1Sums l1Sums(const void* base, Dtype tb, const void* x, Dtype tx, const SparseModel& keep, uint64_t count);

}  // namespace wm
