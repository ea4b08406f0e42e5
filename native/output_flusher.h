// Flushes each output file to stable storage as soon as its last byte is written, on a thread of its own: a disk's flush
// of the early shards then overlaps the merge of the later ones instead of every flush waiting at the end. On this VM's
// disk the one fdatasync at the end of a cold run took 0.9-1.4 s with the CPUs idle; flushed as each shard completed, a
// cold della merge of the dense bench pair took 4.1-4.6 s against 4.5-5.4 s (BENCHMARKS.md 2026-12-06, session of 04:57Z).
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "io.h"

namespace wm {

class OutputFlusher {
 public:
  OutputFlusher();
  ~OutputFlusher();  // a file still queued is left to OutputFile::finish (the run has failed, or finish was not reached)
  OutputFlusher(const OutputFlusher&) = delete;
  OutputFlusher& operator=(const OutputFlusher&) = delete;
  // Queues `file` (every byte of it written) for OutputFile::flush; returns at once.
  void submit(OutputFile& file);
  // Waits until every queued file is flushed; throws the first flush's error, if any.
  void drain();
  // Files flushed here (after drain(): every one submitted, where none failed).
  size_t flushedCount() {
    std::lock_guard<std::mutex> lock(mutex_);
    return flushedCount_;
  }

 private:
  void loop();
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<OutputFile*> queue_;
  bool flushing_ = false;
  size_t flushedCount_ = 0;
  bool closing_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: started once the members above exist
};

// A flusher that each of `files` not in memory is handed to at its last write (OutputFile::whenWritten); null where every one
// is on tmpfs or ramfs (nothing to wait for there). It must go before the files do.
std::unique_ptr<OutputFlusher> flusherOfFilesOnDevices(const std::vector<std::unique_ptr<OutputFile>>& files);

}  // namespace wm
