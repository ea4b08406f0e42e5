// Writes complete output blocks on threads of their own, so that a worker goes back to computing
// while the disk writes: with the workers writing themselves, a batch's O_DIRECT writes ran one at
// a time (average concurrency 1.1) and the disk waited while they computed.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "io.h"

namespace wm {

class BlockBuffers;

class BlockWriter {
 public:
  // `threads` writes in flight at most; `maxQueued` more waiting (each holds one block's memory).
  BlockWriter(unsigned threads, size_t maxQueued);
  ~BlockWriter();  // discards what is still queued and joins
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;
  // Queues `len` bytes of `buffer` for `file` at `offset`, waiting while the queue is full; the
  // buffer goes back to `spares` once written. Throws a failed earlier write's error.
  void submit(OutputFile& file, AlignedBuffer buffer, uint64_t len, uint64_t offset, BlockBuffers& spares);
  // Waits until every queued write is done; throws the first write's error, if any.
  void drain();

 private:
  struct Write {
    OutputFile* file;
    AlignedBuffer buffer;
    uint64_t len;
    uint64_t offset;
    BlockBuffers* spares;
  };
  void loop();
  size_t maxQueued_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Write> queue_;
  size_t writing_ = 0;
  bool closing_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace wm
