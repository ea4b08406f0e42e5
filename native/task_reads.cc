// Reading a task's sources (task_reads.h).
#include "task_reads.h"

#include <algorithm>

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

void ChunkReads::read(uint64_t start, uint64_t n, TaskReads& reads, std::vector<const void*>& srcPtr) {
  if (start < lastStart_ || start + n > hintedTo_) hintedTo_ = start + n;  // a new pass, or past what was asked for
  lastStart_ = start;
  const uint64_t aheadTo = std::min(job_.count, start + n + kChunksAhead * chunk_);
  for (size_t s = 0; s < job_.sources.size(); ++s) {
    const Source& so = job_.sources[s];
    const uint64_t es = dtypeSize(so.dtype);
    if (aheadTo > hintedTo_) inputs_[so.input]->willNeed(so.offset + hintedTo_ * es, (aheadTo - hintedTo_) * es);
    if (reads.buffers[s].size() < n * es) reads.grow(s, n * es);
    inputs_[so.input]->readAt(reads.buffers[s].data(), n * es, so.offset + start * es);
    srcPtr[s] = reads.buffers[s].data();
  }
  hintedTo_ = std::max(hintedTo_, aheadTo);
}

}  // namespace wm
