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

// A local job read in chunks (executor.cc's runLocalTaskInChunks): each pass of its statistics reads the tensor in order, so the
// next kChunksAhead chunks are asked for as one is read, and a cold disk streams them in while it is computed (without, a cold
// pass over the bench pair's embedding waited on every chunk).
class ChunkReads {
 public:
  ChunkReads(const Job& job, const std::vector<std::unique_ptr<InputFile>>& inputs, uint64_t chunk) : job_(job), inputs_(inputs), chunk_(chunk) {}
  // Elements [start, start + n) of each source into reads.buffers[s] (grown to them), srcPtr[s] pointing there.
  void read(uint64_t start, uint64_t n, TaskReads& reads, std::vector<const void*>& srcPtr);

 private:
  static constexpr uint64_t kChunksAhead = 4;
  const Job& job_;
  const std::vector<std::unique_ptr<InputFile>>& inputs_;
  uint64_t chunk_;
  uint64_t hintedTo_ = 0, lastStart_ = 0;  // the elements asked for ahead in the current pass; the last chunk read
};

}  // namespace wm
