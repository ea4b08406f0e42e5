// A run's output files reserved (OutputFile::reserve) in output order on a thread of their own while the
// workers start, which wait for a file only at their first write into it: on tmpfs, reserving the 2 x 2.4 GB
// pair's 16 shards takes 0.6 s of one core, which a CPU-bound merge otherwise spent with one core idle.
#pragma once
#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "io.h"

namespace wm {

class OutputReservations {
 public:
  // Starts reserving `files`, on the reserving thread: `onReserved` (if any) once all are; at the first failure,
  // `onFailure` gets its error instead, and that file and every later one fail with it.
  OutputReservations(const std::vector<std::unique_ptr<OutputFile>>& files, std::function<void()> onReserved,
                     std::function<void(std::exception_ptr)> onFailure);
  ~OutputReservations();  // stop(), then joins
  OutputReservations(const OutputReservations&) = delete;
  OutputReservations& operator=(const OutputReservations&) = delete;
  // Waits until every file is reserved or failed.
  void join();
  // No file is reserved after the one in progress: the rest fail with `error` (a run that stopped early), then join().
  void stop(std::exception_ptr error);

 private:
  void run();
  std::vector<OutputFile*> files_;
  std::function<void()> onReserved_;
  std::function<void(std::exception_ptr)> onFailure_;
  std::atomic<bool> stopping_{false};
  std::exception_ptr stopError_;  // written before stopping_ is set
  std::thread thread_;
};

}  // namespace wm
