// Runs a Plan: validates every range against the real files, splits jobs into pieces, groups the
// pieces into tasks of about one block, and runs the tasks on a pool of worker threads that read
// with pread, compute with the kernels and hand the bytes to one BlockAssembler per output.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "local_moments.h"
#include "plan.h"

namespace wm {

struct ExecResult {
  std::vector<Moments> moments;  // one per job (zero for jobs without `moments`), or none where no job has `moments` (or no job has elements)
  std::vector<double> stats;     // histogram counts and L1 sums, in job order (plan.h's JobStat)
  uint64_t bytesWritten = 0;
  size_t flushedEarly = 0;  // output files flushed as each was completed, while the run went on (output_flusher.h; none on tmpfs)
};

using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;
using ReservedFn = std::function<void()>;

// Throws ExecError (codes: PlanInvalid, InputChanged, ENOSPC, EIO, Aborted, ...).
// `coefficients` answers the open moments of linear dests (local_moments.h), from a worker thread.
// `reserved` is called once every output's space is reserved (output_reservations.h), from another thread; never
// where a reservation fails or the run stops first.
ExecResult executePlan(const Plan& plan, const ProgressFn& progress, const std::atomic<bool>& cancel, const CoefficientsFn& coefficients = {},
                       const ReservedFn& reserved = {});

}  // namespace wm
