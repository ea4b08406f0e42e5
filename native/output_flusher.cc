#include "output_flusher.h"

#include <algorithm>

namespace wm {

OutputFlusher::OutputFlusher() : thread_([this] { loop(); }) {}

OutputFlusher::~OutputFlusher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void OutputFlusher::submit(OutputFile& file) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(&file);
  }
  changed_.notify_all();
}

void OutputFlusher::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return (queue_.empty() && !flushing_) || error_; });
  if (error_) std::rethrow_exception(error_);
}

void OutputFlusher::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return !queue_.empty() || closing_; });
    if (closing_) return;
    OutputFile* file = queue_.front();
    queue_.pop_front();
    flushing_ = true;
    lock.unlock();
    std::exception_ptr failed;
    try {
      file->flush();
    } catch (...) {
      failed = std::current_exception();
    }
    lock.lock();
    flushing_ = false;
    flushedCount_ += failed ? 0 : 1;
    if (failed && !error_) error_ = failed;
    changed_.notify_all();
  }
}

std::unique_ptr<OutputFlusher> flusherOfFilesOnDevices(const std::vector<std::unique_ptr<OutputFile>>& files) {
  if (std::all_of(files.begin(), files.end(), [](const auto& f) { return f->inMemory(); })) return nullptr;
  auto flusher = std::make_unique<OutputFlusher>();
  for (const auto& file : files) {
    if (!file->inMemory()) file->whenWritten([f = flusher.get()](OutputFile& written) { f->submit(written); });
  }
  return flusher;
}

}  // namespace wm
