// Page-aligned heap memory, on transparent huge pages where asked (AlignedBuffer::hugePages): the executor's read and
// write buffers (io.h), a worker's kept scratch (local_job.h's keep-bit maps, sparse_select.cc's window room).
#pragma once
#include <cstddef>
#include <cstdint>

namespace wm {

constexpr size_t kDirectAlign = 4096;
constexpr size_t kHugePage = size_t(2) << 20;
// The least buffer that AlignedBuffer::hugePages rounds up to whole huge pages: at most 4x its bytes resident, against
// one page fault per 4 KiB (~10 us each on a paravirtualized guest, BENCHMARKS.md 2026-12-04) for a 1 MiB write block.
constexpr size_t kHugePageMin = size_t(512) << 10;

// Page-aligned heap memory (O_DIRECT needs it; the kernels like it).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);
  // A buffer advised as huge pages (THP "madvise"): its first touch costs one fault per 2 MiB instead of one per 4 KiB.
  // From kHugePageMin on it spans whole 2 MiB pages (aligned, size rounded up; size() stays `bytes`), below only the
  // whole 2 MiB pages it happens to hold.
  static AlignedBuffer hugePages(size_t bytes);
  AlignedBuffer(AlignedBuffer&& o) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  AlignedBuffer(size_t bytes, size_t align);
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace wm
