// Reading a task's sources (task_reads.h).
#include "task_reads.h"

namespace wm {

// Runs of small tensors that lie back to back in one input file are read with one pread: the
// 18,867-tensor MoE layout otherwise pays one system call (and one disk request) per tensor.
void readTask(const Plan& plan, const std::vector<Piece>& pieces, const std::vector<std::unique_ptr<InputFile>>& inputs, size_t maxSources,
              const Task& task, TaskReads& reads) {
  reads.at.assign(task.count * maxSources, 0);
  for (size_t slot = 0; slot < maxSources; ++slot) {
    uint64_t total = 0;
    for (size_t p = task.first; p < task.first + task.count; ++p) {
      const Job& job = plan.jobs[pieces[p].job];
      if (slot < job.sources.size() && !goesStraightIntoBlock(pieces[p], job, plan.blockBytes)) total += pieces[p].count * dtypeSize(job.sources[slot].dtype);
    }
    if (total == 0) continue;
    if (reads.buffers[slot].size() < total) reads.grow(slot, total);
    uint8_t* base = reads.buffers[slot].data();
    uint64_t pos = 0, spanPos = 0, spanOffset = 0, spanLen = 0;
    uint32_t spanInput = 0;
    auto flush = [&] {
      if (spanLen > 0) inputs[spanInput]->readAt(base + spanPos, spanLen, spanOffset);
    };
    for (size_t p = task.first; p < task.first + task.count; ++p) {
      const Piece& piece = pieces[p];
      const Job& job = plan.jobs[piece.job];
      if (slot >= job.sources.size() || goesStraightIntoBlock(piece, job, plan.blockBytes)) continue;
      const Source& so = job.sources[slot];
      const uint64_t es = dtypeSize(so.dtype);
      const uint64_t offset = so.offset + piece.start * es, len = piece.count * es;
      if (spanLen == 0 || so.input != spanInput || offset != spanOffset + spanLen) {
        flush();
        spanInput = so.input;
        spanOffset = offset;
        spanPos = pos;
        spanLen = 0;
      }
      spanLen += len;
      reads.at[(p - task.first) * maxSources + slot] = pos;
      pos += len;
    }
    flush();
  }
}

// Asks the kernel to start reading a later task's sources now (POSIX_FADV_WILLNEED), so that cold
// inputs stream in while this worker computes and writes: reads and writes then overlap on disk.
void prefetchTask(const Plan& plan, const std::vector<Piece>& pieces, const std::vector<std::unique_ptr<InputFile>>& inputs, size_t maxSources,
                  const Task& task) {
  for (size_t slot = 0; slot < maxSources; ++slot) {
    uint64_t spanOffset = 0, spanLen = 0;
    uint32_t spanInput = 0;
    for (size_t p = task.first; p < task.first + task.count; ++p) {
      const Job& job = plan.jobs[pieces[p].job];
      if (slot >= job.sources.size()) continue;
      const Source& so = job.sources[slot];
      const uint64_t es = dtypeSize(so.dtype);
      const uint64_t offset = so.offset + pieces[p].start * es, len = pieces[p].count * es;
      if (spanLen > 0 && so.input == spanInput && offset == spanOffset + spanLen) {
        spanLen += len;
        continue;
      }
      if (spanLen > 0) inputs[spanInput]->willNeed(spanOffset, spanLen);
      spanInput = so.input;
      spanOffset = offset;
      spanLen = len;
    }
    if (spanLen > 0) inputs[spanInput]->willNeed(spanOffset, spanLen);
  }
}

}  // namespace wm
