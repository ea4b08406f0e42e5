// The executor's CUDA backend (plan.device == Cuda), kept apart from its CPU scheduling as ggml
// keeps each backend in its own file: which dests a worker computes on the GPU, and one task's run
// there. Built in every configuration; without WEIGHTMIX_WITH_CUDA it refuses CUDA plans
// (CudaUnavailable), so the executor needs no #ifdef.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "../executor_work.h"
#include "../kernels/sparsify.h"
#include "../plan.h"

namespace wm {
class BlockAssembler;
namespace cuda {

// What the backend reads of a run: fixed before the first worker starts, outlives the DeviceRun.
struct RunView {
  const Plan& plan;
  const std::vector<Piece>& pieces;
  const std::vector<Task>& tasks;
  const std::vector<std::vector<SparseParams>>& sparse;  // [job][dest], decoded (empty for a job without sparse dests: job_params.h perDest)
  size_t maxSources;
};

class DeviceRun {
 public:
  // Checks device 0 and gives the run as many device seats as its free memory allows; throws
  // ExecError CudaUnavailable or CudaOutOfMemory. Called before any output file exists.
  explicit DeviceRun(const RunView& run);
  ~DeviceRun();
  DeviceRun(const DeviceRun&) = delete;
  DeviceRun& operator=(const DeviceRun&) = delete;

  // One worker's share of the device for its worker() call: a device context when a seat is left;
  // else none, and this thread computes every dest on the CPU (the same bytes). Construct it after
  // the worker's TaskReads, so that it unpins the read buffers before they are freed.
  class Seat {
   public:
    Seat(DeviceRun& run, TaskReads& reads);
    ~Seat();
    Seat(const Seat&) = delete;
    Seat& operator=(const Seat&) = delete;
    bool onDevice() const { return context_ != nullptr; }

   private:
    friend class DeviceRun;
    struct Context;
    std::unique_ptr<Context> context_;
  };

  // Whether the calling worker thread computes this dest on the GPU (it holds a seat, and the GPU
  // takes the dest: byte copies, raw bytes and over-wide arguments stay on the CPU).
  bool destOnDevice(const Job& job, const Dest& d, size_t jobIndex) const;

  // Runs a task through a seat that is on the device: its device dests are uploaded, launched and
  // copied back while cpuShare() runs the task's pieces on this thread (they skip device dests);
  // then the results go to the output blocks.
  void runTask(Seat& seat, const Task& task, const TaskReads& reads, const std::function<void()>& cpuShare,
               const std::vector<std::unique_ptr<BlockAssembler>>& assemblers);

 private:
  bool takeSeat();
  bool destFits(const Job& job, const Dest& d, size_t jobIndex) const;
  uint64_t bytesPerWorker() const;

  RunView run_;
  std::atomic<size_t> seats_{0};
};

}  // namespace cuda
}  // namespace wm
