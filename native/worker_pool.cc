#include "worker_pool.h"

#include <algorithm>

namespace wm {

WorkerPool& WorkerPool::shared() {
  // Never destroyed: detached workers may outlive static destruction at process exit.
  static WorkerPool* pool = new WorkerPool();
  return *pool;
}

void WorkerPool::ensureThreads(unsigned count) {
  while (threads_.size() < count) {
    threads_.emplace_back([this] { loop(); });
    threads_.back().detach();
  }
}

void WorkerPool::runParallel(unsigned width, const std::function<void()>& body) {
  Job job{&body, std::max(1u, width)};
  std::unique_lock<std::mutex> lock(mutex_);
  // The pool grows to the widest request (at least the core count); threads are reused afterwards.
  ensureThreads(std::max(job.width, std::max(1u, std::thread::hardware_concurrency())));
  queue_.push_back(&job);
  work_.notify_all();
  done_.wait(lock, [&] { return job.exhausted && job.finished == job.started; });
}

void WorkerPool::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    // Round-robin over the open jobs: the first that still has room for another worker.
    Job* job = nullptr;
    work_.wait(lock, [&] {
      for (Job* j : queue_) {
        if (j->started < j->width) {
          job = j;
          return true;
        }
      }
      return false;
    });
    ++job->started;
    // Move it to the back so concurrent jobs take turns at getting workers.
    queue_.erase(std::find(queue_.begin(), queue_.end(), job));
    queue_.push_back(job);
    lock.unlock();
    (*job->body)();
    lock.lock();
    ++job->finished;
    if (!job->exhausted) {
      job->exhausted = true;
      queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
    }
    done_.notify_all();
  }
}

}  // namespace wm
