// The command line's heap on huge pages (process_heap.h).
#include "process_heap.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#include <sys/mman.h>
#endif

#include "aligned_buffer.h"

namespace wm {

namespace {

constexpr size_t kMmapThreshold = size_t{32} << 20;  // glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
constexpr size_t kTrimThreshold = 2 * kMmapThreshold;  // what its dynamic trim threshold becomes beside that

bool growAdvised(size_t bytes) {
#if defined(__GLIBC__)
  if (bytes < 2 * kHugePage || bytes > kMmapThreshold) return false;
  if (mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThreshold)) != 1 || mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThreshold)) != 1) {
    return false;
  }
  // Below the mmap threshold, so from the main heap's top; freed, it stays there as the top (below the trim threshold).
  void* block = std::malloc(bytes);
  if (block == nullptr) return false;
  const uintptr_t at = reinterpret_cast<uintptr_t>(block);
  const uintptr_t begin = (at + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (at + bytes) & ~(kHugePage - 1);
  const bool advised = end > begin && madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) == 0;
  std::free(block);
  return advised;
#else
  (void)bytes;
  return false;
#endif
}

}  // namespace

bool preferHugePageHeap(size_t bytes) {
  static std::once_flag once;
  static bool advised = false;
  std::call_once(once, [&] { advised = growAdvised(bytes); });
  return advised;
}

}  // namespace wm
