// Collects the bytes of one output file into aligned blocks and writes each block once it is
// complete, so that writes are large, aligned (O_DIRECT-able) and in roughly ascending order no
// matter which worker produced which piece.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "block_writer.h"
#include "io.h"

namespace wm {

// Spare block buffers shared by every output file of a run: the block a finished shard frees is
// reused by the next shard's, so its pages are faulted in once per run instead of once per file
// (on tmpfs those page faults and their zeroing were a fifth of the CPU time). None is freed before
// the run ends, so the run holds as many as were ever open at once (a batch of five outputs: 4.9 →
// 3.8 s CPU against freeing beyond eight spares), and they lie on huge pages where THP allows.
class BlockBuffers {
 public:
  explicit BlockBuffers(uint64_t blockBytes) : blockBytes_(blockBytes) {}
  AlignedBuffer take();
  void giveBack(AlignedBuffer buffer);
  // The run's room for complete blocks queued beyond each file's first few (BlockAssembler::writeInTurn): true, and the
  // block's bytes counted, while the queued total stays within kQueuedBudgetBytes (block_assembler.cc); releaseQueued when it is written.
  bool admitQueued(uint64_t bytes);
  void releaseQueued(uint64_t bytes);

 private:
  uint64_t blockBytes_;
  std::atomic<uint64_t> queuedBytes_{0};
  std::mutex mutex_;
  std::vector<AlignedBuffer> spare_;
};

class BlockAssembler {
 public:
  // With a `writer`, complete blocks of a file written O_DIRECT to a device go to its threads.
  BlockAssembler(OutputFile& file, uint64_t blockBytes, BlockBuffers& buffers, BlockWriter* writer);
  // Copies `len` bytes destined for file offset `offset`; writes any block this completes.
  void put(uint64_t offset, const uint8_t* data, uint64_t len);
  // Where the caller may produce [offset, offset + len) in place (saves a copy), or nullptr when the
  // range spans two blocks. The bytes count once commit() is called for the same range.
  uint8_t* reserve(uint64_t offset, uint64_t len);
  void commit(uint64_t offset, uint64_t len);
  // Blocks not yet written: incomplete, or complete and still queued (non-zero after a run: the plan missed bytes, or a write was lost).
  uint64_t pendingBlocks();

 private:
  struct Block {
    AlignedBuffer buffer;
    uint64_t filled = 0;
  };
  uint64_t blockLength(uint64_t index) const;
  // Adds `n` produced bytes to block `index` (lock held); returns the block's buffer when it is complete.
  AlignedBuffer countLocked(uint64_t index, uint64_t n);
  void writeBlock(uint64_t index, AlignedBuffer buffer);
  // A copying write (tmpfs, page cache): queued for the worker already writing this file, which takes it next,
  // so the others go back to computing instead of spinning on the file's lock (writes to one inode take turns).
  void writeInTurn(uint64_t index, AlignedBuffer buffer);

  OutputFile& file_;
  uint64_t blockBytes_;
  BlockBuffers& buffers_;  // recycled block buffers: memory stays bounded and warm
  BlockWriter* writer_;
  std::mutex mutex_;
  std::unordered_map<uint64_t, Block> open_;
  struct Queued {
    uint64_t index;
    AlignedBuffer buffer;
    bool budgeted;  // counted in the run's queued bytes (BlockBuffers::admitQueued)
  };
  std::mutex turnMutex_;
  std::deque<Queued> queued_;  // complete blocks waiting for the writing worker
  bool writing_ = false;       // a worker is writing this file's blocks
};

}  // namespace wm
