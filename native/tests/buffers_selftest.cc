// io.h's AlignedBuffer::hugePages: the size asked for, 2 MiB alignment from kHugePageMin on, every byte writable and
// kept, whatever the kernel's transparent huge page setting does with the advice.
#include <cstdint>

#include "io.h"
#include "selftest_support.h"

void testHugePageBuffers(uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t sizes[] = {1, 4095, wm::kHugePageMin - 1, wm::kHugePageMin, size_t(1) << 20, wm::kHugePage, wm::kHugePage + 1,
                          3 * wm::kHugePage - 4096, static_cast<size_t>(rng() % (5 * wm::kHugePage)) + 1};
  for (size_t bytes : sizes) {
    wm::AlignedBuffer b = wm::AlignedBuffer::hugePages(bytes);
    CHECK(b.size() == bytes, "hugePages(%zu).size() = %zu", bytes, b.size());
    const uintptr_t at = reinterpret_cast<uintptr_t>(b.data());
    CHECK(at % wm::kDirectAlign == 0, "hugePages(%zu) not page-aligned", bytes);
    if (bytes >= wm::kHugePageMin) CHECK(at % wm::kHugePage == 0, "hugePages(%zu) not 2 MiB-aligned", bytes);
    // Every byte written, then read back: the rounded span holds the whole size (a sanitizer build checks the bounds).
    const uint8_t salt = static_cast<uint8_t>(rng());
    for (size_t i = 0; i < bytes; ++i) b.data()[i] = static_cast<uint8_t>(i * 131 + salt);
    size_t wrong = 0;
    for (size_t i = 0; i < bytes; ++i) wrong += b.data()[i] != static_cast<uint8_t>(i * 131 + salt);
    CHECK(wrong == 0, "hugePages(%zu): %zu bytes not kept", bytes, wrong);
    wm::AlignedBuffer moved = std::move(b);
    CHECK(moved.size() == bytes && b.size() == 0 && b.data() == nullptr, "hugePages(%zu): a move leaves the source empty", bytes);
  }
}
