// How the executor's workers read a task's source bytes (executor.cc): coalesced preads into the task's buffers, and
// the kernel's read-ahead asked for a later task's.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "executor_work.h"
#include "io.h"
#include "plan.h"

namespace wm {

// The task's source bytes into `reads` (each slot's buffer grown to the task's bytes), reads.at telling where each piece's
// are; plain copies read straight into their output block are left out (goesStraightIntoBlock).
void readTask(const Plan& plan, const std::vector<Piece>& pieces, const std::vector<std::unique_ptr<InputFile>>& inputs, size_t maxSources,
              const Task& task, TaskReads& reads);
void prefetchTask(const Plan& plan, const std::vector<Piece>& pieces, const std::vector<std::unique_ptr<InputFile>>& inputs, size_t maxSources,
                  const Task& task);

}  // namespace wm
