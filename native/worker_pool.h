// One process-wide pool of worker threads shared by every merge in the process, so that concurrent
// merges through the API divide the cores instead of oversubscribing them.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wm {

class WorkerPool {
 public:
  static WorkerPool& shared();

  // Runs `body` on up to `width` pool threads at once and returns when every started copy has
  // returned and one of them has reported the work exhausted (by returning). `body` pulls its own
  // tasks and returns when none are left.
  void runParallel(unsigned width, const std::function<void()>& body);

 private:
  struct Job {
    const std::function<void()>* body;
    unsigned width;
    unsigned started = 0;
    unsigned finished = 0;
    bool exhausted = false;
  };
  void ensureThreads(unsigned count);
  void loop();

  std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable done_;
  std::deque<Job*> queue_;
  std::vector<std::thread> threads_;
};

}  // namespace wm
