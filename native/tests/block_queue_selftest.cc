// block_assembler.h's queue of complete blocks while a file's writing worker is busy: kMaxQueuedBlocks of the file's own,
// then as many as the run's budget admits, then a block is written alongside. A file whose space is not yet reserved holds
// every write (OutputFile::writeAt waits for reserve()), so the writing worker and those writing alongside stay put while
// the test counts who returned; then reserve() lets them through, and every byte must land once, in its place.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "block_assembler.h"
#include "io.h"
#include "selftest_support.h"

namespace {

// admitQueued counts up to the budget and refuses past it; releaseQueued gives room back.
void testQueuedBudget() {
  constexpr uint64_t block = 4096;
  wm::BlockBuffers buffers(block, 3 * block);
  for (int i = 0; i < 3; ++i) CHECK(buffers.admitQueued(block), "block %d within a 3-block budget refused", i);
  CHECK(!buffers.admitQueued(block), "a 4th block admitted into a 3-block budget");
  CHECK(buffers.queuedBytes() == 3 * block, "queued %llu bytes, not 3 blocks", static_cast<unsigned long long>(buffers.queuedBytes()));
  buffers.releaseQueued(block);
  CHECK(buffers.admitQueued(block), "a block refused after one was released");
  CHECK(!buffers.admitQueued(1), "a byte admitted into a full budget");
}

// Waits (up to 10 s, for threads a loaded machine starts late) until arrived() holds, then 50 ms more, so that a thread that
// should stay held but does not has time to show it.
template <class F>
void waitUntil(F arrived) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!arrived() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

// One writer held, kMaxQueuedBlocks queued as the file's own, `budgetBlocks` queued in the run's budget, `alongside` more
// written alongside (held too); every block put by its own thread.
void testBlocksHeldByAWrite(uint64_t seed, uint64_t budgetBlocks, int alongside) {
  constexpr uint64_t block = 4096;
  const int blocks = 1 + static_cast<int>(wm::BlockAssembler::kMaxQueuedBlocks + budgetBlocks) + alongside;
  const std::string path = "/tmp/weightmix-block-queue-" + std::to_string(getpid()) + ".bin";
  std::vector<uint8_t> bytes(blocks * block);
  std::mt19937_64 rng(seed);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  {
    wm::OutputFile file(path, bytes.size(), false);
    wm::BlockBuffers buffers(block, budgetBlocks * block);
    wm::BlockAssembler assembler(file, block, buffers, nullptr);
    std::atomic<int> returned{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < blocks; ++i) {
      threads.emplace_back([&, i] {
        assembler.put(i * block, bytes.data() + i * block, block);
        ++returned;
      });
    }
    const int queued = static_cast<int>(wm::BlockAssembler::kMaxQueuedBlocks + budgetBlocks);
    // Every thread has arrived once the queued ones have returned and the rest have started their writes alongside.
    waitUntil([&] { return returned.load() >= queued && buffers.writesAlongside() >= static_cast<uint64_t>(alongside); });
    CHECK(returned.load() == queued, "budget %llu: %d of %d puts returned while the file's writes were held, not the %d queued",
          static_cast<unsigned long long>(budgetBlocks), returned.load(), blocks, queued);
    CHECK(buffers.queuedBytes() == budgetBlocks * block, "budget %llu blocks: %llu bytes counted as queued",
          static_cast<unsigned long long>(budgetBlocks), static_cast<unsigned long long>(buffers.queuedBytes()));
    CHECK(buffers.writesAlongside() == static_cast<uint64_t>(alongside), "budget %llu: %llu writes alongside, not %d",
          static_cast<unsigned long long>(budgetBlocks), static_cast<unsigned long long>(buffers.writesAlongside()), alongside);
    file.reserve();
    for (auto& t : threads) t.join();
    CHECK(assembler.pendingBlocks() == 0, "budget %llu: %llu blocks left pending", static_cast<unsigned long long>(budgetBlocks),
          static_cast<unsigned long long>(assembler.pendingBlocks()));
    CHECK(buffers.queuedBytes() == 0, "budget %llu: %llu queued bytes never released", static_cast<unsigned long long>(budgetBlocks),
          static_cast<unsigned long long>(buffers.queuedBytes()));
  }
  std::vector<uint8_t> back(bytes.size() + 1);
  FILE* f = std::fopen(path.c_str(), "rb");
  const size_t got = f != nullptr ? std::fread(back.data(), 1, back.size(), f) : 0;
  if (f != nullptr) std::fclose(f);
  std::remove(path.c_str());
  CHECK(got == bytes.size() && std::memcmp(back.data(), bytes.data(), bytes.size()) == 0,
        "budget %llu: the file (%zu bytes) is not the %zu bytes put", static_cast<unsigned long long>(budgetBlocks), got, bytes.size());
}

}  // namespace

void testBlockQueue(uint64_t seed) {
  testQueuedBudget();
  testBlocksHeldByAWrite(seed, 0, 3);  // no budget: past the file's own, every block written alongside
  testBlocksHeldByAWrite(seed + 1, 2, 2);
  testBlocksHeldByAWrite(seed + 2, 5, 0);  // room for all: nothing alongside
  std::printf("block queue: a held write's file queues %zu blocks, then its budget's, then writes alongside; every byte in place\n",
              wm::BlockAssembler::kMaxQueuedBlocks);
}
