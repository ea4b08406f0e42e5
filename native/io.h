// Files as the executor uses them: positional reads that detect a shrinking input, and outputs
// written through O_DIRECT where the file system allows it, with a buffered fallback.
#pragma once
#include <cstddef>
#include <cstdint>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "aligned_buffer.h"

namespace wm {

class InputFile {
 public:
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Reads exactly `len` bytes or throws: a short read means the file shrank under us.
  void readAt(void* dst, uint64_t len, uint64_t offset) const;
  // Starts reading a range into the page cache in the background, all of it however long (a hint: never fails).
  void willNeed(uint64_t offset, uint64_t len) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

class OutputFile {
 public:
  // Creates (truncates) the file and opens a second O_DIRECT descriptor when `wantDirect` and the
  // file system supports it; its space is reserved by reserve(), which every write waits for.
  OutputFile(const std::string& path, uint64_t size, bool wantDirect);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  // Reserves `size` bytes (posix_fallocate: a full disk fails here, and extents stay contiguous), then
  // lets writes in; throws the reservation's error after failing the file with it. Once, on any thread.
  void reserve();
  // Fails a file that will not be reserved: its writes, waiting or to come, throw `error`.
  void failReservation(std::exception_ptr error);
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  bool direct() const { return directFd_ >= 0; }
  // O_DIRECT onto a device: a write the CPU does not copy (tmpfs and ramfs take O_DIRECT as a copy).
  bool directToDevice() const { return direct() && !inMemory_; }
  // On tmpfs or ramfs: nothing for a flush to wait for.
  bool inMemory() const { return inMemory_; }
  // Calls `onWritten` (once, on the writing thread) when the writes have covered all `size` bytes; set before the first write.
  void whenWritten(std::function<void(OutputFile&)> onWritten) { onWritten_ = std::move(onWritten); }
  // Writes a whole range; `aligned` ranges (offset, length and buffer at kDirectAlign) go through
  // O_DIRECT when available, the rest through the page cache with write-behind.
  void writeAt(const void* src, uint64_t len, uint64_t offset);
  // Flushes everything written to stable storage and drops the output from the page cache (output_flusher.h calls it
  // once the file is complete, on its own thread).
  void flush();
  bool flushed() const { return flushed_.load(std::memory_order_acquire); }
  // The file made durable: flush(), unless a flush after its last write has done that already.
  void finish();

 private:
  void startWriteBehind(uint64_t offset, uint64_t len);
  void awaitReservation();
  void settleReservation(std::exception_ptr error);
  std::string path_;
  int fd_ = -1;
  int directFd_ = -1;
  bool inMemory_ = false;
  uint64_t size_ = 0;
  std::atomic<bool> reserved_{false};  // the writes' fast path; settled_ and failure_ under reserveMutex_
  bool settled_ = false;
  std::exception_ptr failure_;
  std::mutex reserveMutex_;
  std::condition_variable reserveSettled_;
  std::atomic<uint64_t> written_{0};
  std::function<void(OutputFile&)> onWritten_;
  std::atomic<bool> flushed_{false};
  void noteWritten(uint64_t len);
};

}  // namespace wm
