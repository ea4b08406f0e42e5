// The executor's units of work, shared by its CPU scheduling (executor.cc) and its CUDA backend
// (cuda/executor_cuda.cc): pieces of jobs, tasks of pieces, and the read buffers of one task.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "io.h"
#include "plan.h"

namespace wm {

// A slice of one job: elements [start, start + count).
struct Piece {
  uint32_t job;
  uint64_t start;
  uint64_t count;
};

// Pieces [first, first + count) of the run's piece list, run by one worker in one go.
struct Task {
  size_t first;
  size_t count;
  bool local = false;  // a tensor-local job (local_job.h): one worker, sources held whole (or read in chunks), CPU only
};

// The source bytes of one task, read with as few preads as the file layout allows.
struct TaskReads {
  explicit TaskReads(size_t slots) : buffers(slots) {}
  std::vector<AlignedBuffer> buffers;  // one per source slot, grown to the largest task
  std::vector<uint64_t> at;            // [piece - task.first][slot]: offset of the piece's bytes in buffers[slot]
  std::function<void(AlignedBuffer& old, AlignedBuffer& now)> regrown;  // the CUDA path pins read buffers
  void grow(size_t slot, uint64_t bytes) {
    AlignedBuffer next = AlignedBuffer::hugePages(bytes);
    if (regrown) regrown(buffers[slot], next);
    buffers[slot] = std::move(next);
  }
};

// A plain copy inside one output block is read straight into that block: it needs no read buffer
// and no kernel.
inline bool goesStraightIntoBlock(const Piece& piece, const Job& job, uint64_t blockBytes) {
  if (job.sources.size() != 1 || job.dests.size() != 1 || job.moments || job.stat != JobStat::None) return false;
  const Dest& d = job.dests[0];
  if (d.op != DestOp::Copy || d.dtype != job.sources[0].dtype) return false;
  const uint64_t es = dtypeSize(d.dtype);
  const uint64_t at = d.offset + piece.start * es;
  return piece.count > 0 && at / blockBytes == (at + piece.count * es - 1) / blockBytes;
}

}  // namespace wm
