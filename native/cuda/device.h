// The CUDA device behind the executor: a run-time probe (is a GPU usable, and if not, why) and one
// context per worker thread (its own stream, device buffers and pinned staging) so that the reads,
// copies, kernels and writes of different workers overlap. Compiled only with WEIGHTMIX_WITH_CUDA;
// this header needs no CUDA headers, so executor.cc and addon.cc stay plain C++.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace wm {
namespace cuda {

struct DeviceInfo {
  std::string name;
  uint64_t memoryBytes = 0;
  int major = 0, minor = 0;  // compute capability
};

// Why no GPU can be used: NoDriver and NoDevice are ordinary CPU machines; the others mean a GPU is
// there but this build cannot use it.
enum class Unusable { None, NoDriver, NoDevice, Unsupported, OutOfMemory, Error };

struct Probe {
  std::vector<DeviceInfo> devices;  // every device found (device 0 is the one used)
  Unusable unusable = Unusable::None;
  std::string reason;  // one line, empty when usable
};

// Probed once per process (thread-safe); cheap afterwards.
const Probe& probe();
const char* unusableCode(Unusable u);  // "no-driver", "no-device", "unsupported", "out-of-memory", "error"

// Throws ExecError("CudaUnavailable", "cuda: <reason>") unless device 0 is usable.
void requireDevice();

// Bytes of device 0's memory a run may use for worker buffers now: the free memory less a reserve
// (a tenth of it, at least 256 MiB) for the CUDA context, other processes and fragmentation.
uint64_t deviceMemoryBudget();

// One worker thread's device state. Buffers grow to the largest task and are kept for the run, so
// device memory stays bounded by threads x (sources + outputs) x task size.
class WorkerContext {
 public:
  explicit WorkerContext(size_t slots);
  ~WorkerContext();
  WorkerContext(const WorkerContext&) = delete;
  WorkerContext& operator=(const WorkerContext&) = delete;

  void* stream() const { return stream_; }
  // Page-locks host memory that uploads read from (the read buffers); unpinned on destruction or unpin().
  void pin(void* host, size_t bytes);
  void unpin(void* host);
  // The device buffer of source `slot`, grown to at least `bytes` (growing waits for the stream first).
  uint8_t* sources(size_t slot, size_t bytes);
  // Starts copying `bytes` from host into device memory (a range inside a buffer of this context).
  void upload(uint8_t* device, const void* host, size_t bytes);
  // A device buffer of at least `bytes` for the task's results.
  uint8_t* results(size_t bytes);
  // Starts copying the first `bytes` results to pinned host memory; wait() makes them readable.
  const uint8_t* download(size_t bytes);
  void wait();
  // Throws ExecError naming `what` when code is not cudaSuccess (out of memory gets its own code).
  static void check(int code, const char* what);

 private:
  struct Pinned {
    void* host;
    size_t bytes;
  };
  uint8_t* grow(size_t index, size_t bytes);
  void* stream_ = nullptr;
  std::vector<uint8_t*> device_;   // [slot..., results]
  std::vector<size_t> capacity_;
  uint8_t* hostResults_ = nullptr;  // pinned
  size_t hostCapacity_ = 0;
  std::vector<Pinned> pinned_;
};

}  // namespace cuda
}  // namespace wm
