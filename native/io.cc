#include "io.h"

#include <algorithm>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "exec_error.h"

namespace wm {

ExecError systemError(int err, const std::string& what, const std::string& path) {
  const char* code = err == ENOSPC                    ? "ENOSPC"
                     : err == EIO                     ? "EIO"
                     : err == EDQUOT                  ? "EDQUOT"
                     : err == EMFILE                  ? "EMFILE"  // JavaScript adds the open-file limit's remedy
                                                      : "SystemError";
  return ExecError(code, what + " " + path + ": " + std::strerror(err));
}

InputFile::InputFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw systemError(errno, "cannot open input", path);
  struct stat st;
  // A throwing constructor runs no destructor: close the descriptor here.
  if (fstat(fd_, &st) != 0) {
    ExecError e = systemError(errno, "cannot stat input", path);
    ::close(fd_);
    throw e;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw ExecError("InputChanged", "input is not a regular file: " + path);
  }
  size_ = static_cast<uint64_t>(st.st_size);
  // Shards are read front to back: let the kernel read ahead generously.
  posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::readAt(void* dst, uint64_t len, uint64_t offset) const {
  auto* p = static_cast<uint8_t*>(dst);
  while (len > 0) {
    ssize_t n = ::pread(fd_, p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw systemError(errno, "read failed on", path_);
    }
    if (n == 0) {
      throw ExecError("InputChanged", "input file changed during the merge (it is now shorter than " +
                                          std::to_string(offset + len) + " bytes): " + path_);
    }
    p += n;
    len -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

// Names what is missing: this file's size against the free space plus what it already holds.
static ExecError noSpace(int fd, const std::string& path, uint64_t size, int err) {
  std::string detail = std::to_string(size) + " bytes needed";
  struct statvfs vfs;
  struct stat st;
  if (err == ENOSPC && fstatvfs(fd, &vfs) == 0 && fstat(fd, &st) == 0) {
    uint64_t usable = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize + static_cast<uint64_t>(st.st_blocks) * 512;
    if (usable < size) detail += ", " + std::to_string(size - usable) + " missing";
  }
  return ExecError("ENOSPC", "not enough space for output " + path + " (" + detail + "): " + std::strerror(err));
}

// In 2 MiB steps: the kernel reads at most the larger of the read-ahead window and the device's I/O size per hint (with the
// default 128 KiB read-ahead, 256 KiB of a 50 MB tensor); cold interpolate and della with that read-ahead: −5 % and −8 % wall.
void InputFile::willNeed(uint64_t offset, uint64_t len) const {
  constexpr uint64_t kStep = uint64_t{2} << 20;
  for (uint64_t at = 0; at < len; at += kStep) {
    posix_fadvise(fd_, static_cast<off_t>(offset + at), static_cast<off_t>(std::min(kStep, len - at)), POSIX_FADV_WILLNEED);
  }
}

OutputFile::OutputFile(const std::string& path, uint64_t size, bool wantDirect) : path_(path), size_(size) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw systemError(errno, "cannot create output", path);
  if (wantDirect) {
    directFd_ = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);  // EINVAL on tmpfs before Linux 6.6: stay buffered
  }
  struct statfs fs;
  inMemory_ = fstatfs(fd_, &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
}

void OutputFile::reserve() {
  int err = size_ > 0 ? posix_fallocate(fd_, 0, static_cast<off_t>(size_)) : 0;
  std::exception_ptr failure;
  if (err == ENOSPC || err == EDQUOT) {
    failure = std::make_exception_ptr(noSpace(fd_, path_, size_, err));
  } else if (err == EIO) {
    failure = std::make_exception_ptr(systemError(err, "cannot reserve space for output", path_));
  } else if (err != 0 && ftruncate(fd_, static_cast<off_t>(size_)) != 0) {  // no fallocate here: size it instead
    failure = std::make_exception_ptr(systemError(errno, "cannot size output", path_));
  }
  settleReservation(failure);
  if (failure) std::rethrow_exception(failure);
}

void OutputFile::failReservation(std::exception_ptr error) { settleReservation(error); }

void OutputFile::settleReservation(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(reserveMutex_);
    if (settled_) return;
    settled_ = true;
    failure_ = error;
  }
  if (!error) reserved_.store(true, std::memory_order_release);
  reserveSettled_.notify_all();
}

void OutputFile::awaitReservation() {
  if (reserved_.load(std::memory_order_acquire)) return;
  std::unique_lock<std::mutex> lock(reserveMutex_);
  reserveSettled_.wait(lock, [this] { return settled_; });
  if (failure_) std::rethrow_exception(failure_);
}

OutputFile::~OutputFile() {
  if (directFd_ >= 0) ::close(directFd_);
  if (fd_ >= 0) ::close(fd_);
}

static void writeAll(int fd, const uint8_t* p, uint64_t len, uint64_t offset, const std::string& path, uint64_t fileSize) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, p, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ExecError e = systemError(err, "write failed on", path);
      throw ExecError(e.code, std::string(e.what()) + " (" + std::to_string(len) + " of " + std::to_string(fileSize) +
                                  " bytes not written at offset " + std::to_string(offset) + ")");
    }
    if (n == 0) throw ExecError("EIO", "write made no progress on " + path);
    p += n;
    len -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void OutputFile::writeAt(const void* src, uint64_t len, uint64_t offset) {
  awaitReservation();
  const auto* p = static_cast<const uint8_t*>(src);
  bool aligned = directFd_ >= 0 && offset % kDirectAlign == 0 && len % kDirectAlign == 0 &&
                 reinterpret_cast<uintptr_t>(p) % kDirectAlign == 0;
  if (aligned) {
    writeAll(directFd_, p, len, offset, path_, size_);
    noteWritten(len);
    return;
  }
  writeAll(fd_, p, len, offset, path_, size_);
  startWriteBehind(offset, len);
  noteWritten(len);
}

// Each byte is written once (the block assembler's blocks do not overlap), so the count reaches the size at the last write.
void OutputFile::noteWritten(uint64_t len) {
  if (written_.fetch_add(len, std::memory_order_acq_rel) + len == size_ && onWritten_) onWritten_(*this);
}

void OutputFile::startWriteBehind(uint64_t offset, uint64_t len) {
#ifdef SYNC_FILE_RANGE_WRITE
  // Start writeback now, and wait for and drop a range well behind the front, so that the page
  // cache never fills with output (buffered writing of 8 GB otherwise stalls in one big flush).
  constexpr uint64_t kLag = 64u << 20;
  sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(len), SYNC_FILE_RANGE_WRITE);
  if (offset >= kLag) {
    uint64_t behind = offset - kLag;
    sync_file_range(fd_, static_cast<off_t>(behind), static_cast<off_t>(len),
                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    posix_fadvise(fd_, static_cast<off_t>(behind), static_cast<off_t>(len), POSIX_FADV_DONTNEED);
  }
#endif
}

void OutputFile::flush() {
  if (fdatasync(fd_) != 0) throw systemError(errno, "cannot flush output", path_);
  posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  flushed_.store(true, std::memory_order_release);
}

void OutputFile::finish() {
  awaitReservation();
  if (!flushed()) flush();
}

}  // namespace wm
