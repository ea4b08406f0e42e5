// Tensor-local jobs: a job whose statistics come from the tensor itself (a sparse dest with open
// cuts or rescale factors, kernels/sparsify.h's SparseOpen) runs as one task on one worker, which
// reads all of the tensor's sources into memory once, resolves the statistics there and then merges
// and writes it, instead of the planner's statistics passes re-reading the files (the streaming
// fallback, lib/recipes/sparsify.ts, kept for tensors above the budget). A run holds at most
// kLocalBudgetBytes of such source bytes at once (LocalBudget); the planner only makes a job local
// when its sources fit in 256 MiB (lib/recipes/sparsify.ts's localStatistics.maxTensorBytes).
//
// Later whole-tensor or per-row statistics (per-row ranks, variance top-k, quantiles, filter-wise
// norms) plug in here: their open parameters are resolved by resolveLocal from the same in-memory sources.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "kernels/sparsify.h"
#include "plan.h"

namespace wm {

constexpr uint64_t kLocalBudgetBytes = uint64_t{768} << 20;

// Bytes of local sources in memory at once, across the run's workers.
class LocalBudget {
 public:
  explicit LocalBudget(uint64_t bytes) : left_(bytes), total_(bytes) {}
  // Waits until `bytes` (at most the whole budget) are free, takes them, and gives them back on destruction.
  class Hold {
   public:
    Hold(LocalBudget& budget, uint64_t bytes);
    ~Hold();
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    LocalBudget& budget_;
    uint64_t bytes_;
  };

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t left_, total_;
};

// Whether any dest of the job has statistics left to resolve.
bool isLocalJob(const std::vector<SparseParams>& destParams);

// Source bytes a local job holds in memory.
uint64_t localJobBytes(const Job& job);

// Resolves every open statistic of the job's dests from its sources in memory (srcs[s]: element 0 of source s).
void resolveLocal(std::vector<SparseParams>& destParams, const void* const* srcs, const Dtype* types, uint64_t count);

}  // namespace wm
