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
  // The run-wide room for queued blocks (block_assembler.cc says why 32 MiB); a test passes a smaller one.
  static constexpr uint64_t kQueuedBudgetBytes = uint64_t{32} << 20;
  explicit BlockBuffers(uint64_t blockBytes, uint64_t queuedBudgetBytes = kQueuedBudgetBytes)
      : blockBytes_(blockBytes), queuedBudgetBytes_(queuedBudgetBytes) {}
  AlignedBuffer take();
  void giveBack(AlignedBuffer buffer);
  // The run's room for complete blocks queued beyond each file's first few (BlockAssembler::writeInTurn): true, and the
  // block's bytes counted, while the queued total stays within the budget; releaseQueued when it is written.
  bool admitQueued(uint64_t bytes);
  void releaseQueued(uint64_t bytes);
  uint64_t queuedBytes() const { return queuedBytes_.load(std::memory_order_relaxed); }
  // Blocks written alongside a file's writing worker because its queue and the budget were full (the self-test's witness).
  void countAlongside() { alongside_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t writesAlongside() const { return alongside_.load(std::memory_order_relaxed); }

 private:
  uint64_t blockBytes_;
  uint64_t queuedBudgetBytes_;
  std::atomic<uint64_t> queuedBytes_{0};
  std::atomic<uint64_t> alongside_{0};
  std::mutex mutex_;
  std::vector<AlignedBuffer> spare_;
};

class BlockAssembler {
 public:
  // Blocks a file queues whatever the run's budget; beyond them and the budget (BlockBuffers::admitQueued) a worker writes its
  // own at once, alongside the writing one: bounds the memory a slow write lets pile up.
  static constexpr size_t kMaxQueuedBlocks = 4;
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
