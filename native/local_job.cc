// Tensor-local jobs (local_job.h): the budget, and the statistics resolved from memory.
#include "local_job.h"

#include <algorithm>

#include "kernels/sparse_select.h"

namespace wm {

LocalBudget::Hold::Hold(LocalBudget& budget, uint64_t bytes) : budget_(budget), bytes_(std::min(bytes, budget.total_)) {
  std::unique_lock<std::mutex> lock(budget_.mutex_);
  budget_.cv_.wait(lock, [&] { return budget_.left_ >= bytes_; });
  budget_.left_ -= bytes_;
}

LocalBudget::Hold::~Hold() {
  {
    std::lock_guard<std::mutex> lock(budget_.mutex_);
    budget_.left_ += bytes_;
  }
  budget_.cv_.notify_all();
}

bool isLocalJob(const std::vector<SparseParams>& destParams) {
  return std::any_of(destParams.begin(), destParams.end(), [](const SparseParams& p) { return !p.open.empty(); });
}

uint64_t localJobBytes(const Job& job) {
  uint64_t bytes = 0;
  for (const Source& s : job.sources) bytes += job.count * dtypeSize(s.dtype);
  return bytes;
}

void resolveLocal(std::vector<SparseParams>& destParams, const void* const* srcs, const Dtype* types, uint64_t count) {
  for (SparseParams& p : destParams) {
    const void* base = srcs[p.baseSource];
    const Dtype tb = types[p.baseSource];
    for (size_t k = 0; k < p.open.size(); ++k) {
      const SparseOpen& open = p.open[k];
      SparseModel& m = p.models[k];
      if (open.select) {
        m.lowKey = rankCut(base, tb, srcs[m.source], types[m.source], count, open.lowRank);
        m.highKey = rankCut(base, tb, srcs[m.source], types[m.source], count, open.highRank);
      }
      if (open.l1) {
        // The same integer buckets and totals as the planner's L1 pass: the factor does not depend on who sums.
        std::vector<uint64_t> sums(2 * kL1Buckets, 0);
        l1Buckets(base, tb, srcs[m.source], types[m.source], m, p.indexBits, count, 0, count, sums.data(), sums.data() + kL1Buckets);
        const double before = l1Total(sums.data()), after = l1Total(sums.data() + kL1Buckets);
        m.scale = static_cast<float>(before < 1e-7 || after < 1e-7 ? 1.0 : before / after);  // lib/recipes/sparsify.ts's l1Scale
      }
    }
  }
}

}  // namespace wm
