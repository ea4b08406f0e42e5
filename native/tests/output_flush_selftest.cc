// output_flusher.h: a file goes to the flusher at its last write, not before; the flusher flushes it and finish() then finds
// it flushed; a file whose writes stop short is never handed over, and finish() flushes it itself. Blocks are put in a random
// order from threads of their own, so that "last" is whichever write completes the count, and every byte must land in place.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "block_assembler.h"
#include "io.h"
#include "output_flusher.h"
#include "selftest_support.h"

namespace {

// Puts blocks `order[from .. to)` of `bytes` through `assembler`, each from a thread of its own.
void putBlocks(wm::BlockAssembler& assembler, const std::vector<uint8_t>& bytes, uint64_t block, const std::vector<size_t>& order, size_t from,
               size_t to) {
  std::vector<std::thread> threads;
  for (size_t k = from; k < to; ++k) {
    const uint64_t at = order[k] * block;
    const uint64_t len = std::min<uint64_t>(block, bytes.size() - at);
    threads.emplace_back([&assembler, &bytes, at, len] { assembler.put(at, bytes.data() + at, len); });
  }
  for (auto& t : threads) t.join();
}

// A file of `blocks` blocks (its last one `tail` bytes short) written all but its last-put block, checked, then completed
// unless `complete` is false.
void testFlushAtLastWrite(uint64_t seed, size_t blocks, uint64_t tail, bool complete) {
  constexpr uint64_t block = 4096;
  const std::string path = "/tmp/weightmix-output-flush-" + std::to_string(getpid()) + ".bin";
  std::vector<uint8_t> bytes(blocks * block - tail);
  std::mt19937_64 rng(seed);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  std::vector<size_t> order(blocks);
  for (size_t i = 0; i < blocks; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::atomic<int> handed{0};
  {
    wm::OutputFile file(path, bytes.size(), false);
    wm::OutputFlusher flusher;
    file.whenWritten([&](wm::OutputFile& f) {
      ++handed;
      flusher.submit(f);
    });
    file.reserve();
    wm::BlockBuffers buffers(block);
    wm::BlockAssembler assembler(file, block, buffers, nullptr);
    putBlocks(assembler, bytes, block, order, 0, blocks - 1);
    flusher.drain();
    CHECK(handed.load() == 0 && !file.flushed(), "%zu blocks: the file was handed to the flusher (%d times) or flushed before its last write",
          blocks, handed.load());
    if (complete) {
      putBlocks(assembler, bytes, block, order, blocks - 1, blocks);
      flusher.drain();
      CHECK(handed.load() == 1, "%zu blocks: the complete file was handed to the flusher %d times, not once", blocks, handed.load());
      CHECK(file.flushed(), "%zu blocks: the complete file is not flushed after the flusher drained", blocks);
    }
    file.finish();
    CHECK(file.flushed(), "%zu blocks: finish() left the file unflushed", blocks);
    CHECK(handed.load() == (complete ? 1 : 0), "%zu blocks: handed %d times by the end", blocks, handed.load());
  }
  std::vector<uint8_t> back(bytes.size() + 1);
  FILE* f = std::fopen(path.c_str(), "rb");
  const size_t got = f != nullptr ? std::fread(back.data(), 1, back.size(), f) : 0;
  if (f != nullptr) std::fclose(f);
  std::remove(path.c_str());
  if (!complete) return;  // the missing block reads as the reservation's zeros
  CHECK(got == bytes.size() && std::memcmp(back.data(), bytes.data(), bytes.size()) == 0, "%zu blocks: the file (%zu bytes) is not the %zu bytes put",
        blocks, got, bytes.size());
}

}  // namespace

void testOutputFlush(uint64_t seed) {
  testFlushAtLastWrite(seed, 9, 0, true);
  testFlushAtLastWrite(seed + 1, 7, 1000, true);  // a short tail block
  testFlushAtLastWrite(seed + 2, 1, 17, true);
  testFlushAtLastWrite(seed + 3, 6, 0, false);
  std::printf("output flush: a file goes to the flusher at its last write and is flushed there; one left short, by finish()\n");
}
