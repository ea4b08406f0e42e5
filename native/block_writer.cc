#include "block_writer.h"

#include "block_assembler.h"

namespace wm {

BlockWriter::BlockWriter(unsigned threads, size_t maxQueued) : maxQueued_(maxQueued) {
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

BlockWriter::~BlockWriter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
  }
  changed_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void BlockWriter::submit(OutputFile& file, AlignedBuffer buffer, uint64_t len, uint64_t offset, BlockBuffers& spares) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return queue_.size() < maxQueued_ || error_; });
  if (error_) std::rethrow_exception(error_);
  queue_.push_back(Write{&file, std::move(buffer), len, offset, &spares});
  lock.unlock();
  changed_.notify_all();
}

void BlockWriter::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return (queue_.empty() && writing_ == 0) || error_; });
  if (error_) std::rethrow_exception(error_);
}

void BlockWriter::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return !queue_.empty() || closing_; });
    if (closing_) return;  // a run that ends with writes still queued has failed: they are dropped
    Write w = std::move(queue_.front());
    queue_.pop_front();
    ++writing_;
    lock.unlock();
    changed_.notify_all();  // room in the queue
    std::exception_ptr failed;
    try {
      w.file->writeAt(w.buffer.data(), w.len, w.offset);
    } catch (...) {
      failed = std::current_exception();
    }
    w.spares->giveBack(std::move(w.buffer));
    lock.lock();
    --writing_;
    if (failed && !error_) error_ = failed;
    if (error_) queue_.clear();
    changed_.notify_all();
  }
}

}  // namespace wm
