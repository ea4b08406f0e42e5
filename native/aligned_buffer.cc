// Page-aligned heap memory (aligned_buffer.h).
#include "aligned_buffer.h"

#include <sys/mman.h>

#include <cstdlib>

#include "exec_error.h"

namespace wm {

AlignedBuffer::AlignedBuffer(size_t bytes) : AlignedBuffer(bytes, kDirectAlign) {}

AlignedBuffer::AlignedBuffer(size_t bytes, size_t align) : size_(bytes) {
  if (bytes == 0) return;
  void* p = nullptr;
  size_t rounded = (bytes + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  if (posix_memalign(&p, align, rounded) != 0) throw ExecError("ENOMEM", "out of memory allocating a buffer");
  data_ = static_cast<uint8_t*>(p);
}

AlignedBuffer AlignedBuffer::hugePages(size_t bytes) {
  const bool huge = bytes >= kHugePageMin;
  const size_t span = huge ? (bytes + kHugePage - 1) / kHugePage * kHugePage : bytes;
  AlignedBuffer b(span, huge ? kHugePage : kDirectAlign);
  b.size_ = bytes;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(b.data()) + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(b.data()) + span) & ~(kHugePage - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  return b;
}
AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}
AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}
AlignedBuffer::~AlignedBuffer() { std::free(data_); }

}  // namespace wm
