// A stand-in for the CUDA device (native/cuda/device.cu + the kernels) in host memory, for testing the
// executor's device path on machines without a GPU: build with -DWEIGHTMIX_CUDA_EMULATION=ON. Every
// stream operation is queued and runs only at wait(), the most adversarial timing a real stream
// allows, so a task that reads results early or reuses a buffer the GPU still reads fails here too.
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "../cuda/device.h"
#include "../exec_error.h"
#include "../kernels/cuda_kernels.h"
#include "../kernels/kernels.h"
#include "../kernels/sparsify.h"

namespace wm {
namespace cuda {
namespace {

struct Queue {
  std::vector<std::function<void()>> ops;
};

int enqueue(void* stream, std::function<void()> op) {
  static_cast<Queue*>(stream)->ops.push_back(std::move(op));
  return 0;
}

}  // namespace

const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    r.devices.push_back({"emulated GPU (host memory, for tests)", uint64_t{1} << 30, 0, 0});
    return r;
  }();
  return p;
}

const char* unusableCode(Unusable) { return ""; }
void requireDevice() {}

void WorkerContext::check(int code, const char* what) {
  if (code != 0) throw ExecError("CudaError", std::string("cuda (emulated): ") + what + " failed");
}

WorkerContext::WorkerContext(size_t slots) : device_(slots + 1, nullptr), capacity_(slots + 1, 0) { stream_ = new Queue(); }

WorkerContext::~WorkerContext() {
  delete static_cast<Queue*>(stream_);
  for (uint8_t* d : device_) std::free(d);
  std::free(hostResults_);
}

void WorkerContext::pin(void* host, size_t bytes) { pinned_.push_back({host, bytes}); }
void WorkerContext::unpin(void* host) {
  wait();
  for (size_t i = 0; i < pinned_.size(); ++i) {
    if (pinned_[i].host == host) {
      pinned_.erase(pinned_.begin() + static_cast<long>(i));
      return;
    }
  }
}

uint8_t* WorkerContext::grow(size_t index, size_t bytes) {
  if (capacity_[index] >= bytes) return device_[index];
  wait();
  std::free(device_[index]);
  device_[index] = static_cast<uint8_t*>(std::malloc(bytes));
  if (device_[index] == nullptr) throw ExecError("CudaOutOfMemory", "cuda (emulated): out of memory");
  std::memset(device_[index], 0xA5, bytes);  // garbage, as cudaMalloc gives
  capacity_[index] = bytes;
  return device_[index];
}

uint8_t* WorkerContext::upload(size_t slot, const void* host, size_t bytes) {
  uint8_t* d = grow(slot, bytes);
  enqueue(stream_, [d, host, bytes] { std::memcpy(d, host, bytes); });
  return d;
}

uint8_t* WorkerContext::results(size_t bytes) { return grow(device_.size() - 1, bytes); }

const uint8_t* WorkerContext::download(size_t bytes) {
  if (hostCapacity_ < bytes) {
    wait();
    std::free(hostResults_);
    hostResults_ = static_cast<uint8_t*>(std::malloc(bytes));
    hostCapacity_ = bytes;
  }
  std::memset(hostResults_, 0x5A, bytes);  // stale until wait()
  uint8_t* h = hostResults_;
  const uint8_t* d = device_.back();
  enqueue(stream_, [h, d, bytes] { std::memcpy(h, d, bytes); });
  return hostResults_;
}

void WorkerContext::wait() {
  auto& ops = static_cast<Queue*>(stream_)->ops;
  for (auto& op : ops) op();
  ops.clear();
}

int convert(const void* src, Dtype ts, void* out, Dtype to, size_t n, void* stream) {
  return enqueue(stream, [=] { wm::convert(src, ts, out, to, n); });
}
int lerpExact(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n, float w, void* stream) {
  return enqueue(stream, [=] { wm::lerpExact(a, ta, b, tb, out, to, n, w); });
}
int lerpMi(const void* a, const void* b, Dtype t, void* out, Dtype to, size_t n, float w, void* stream) {
  return enqueue(stream, [=] { wm::lerpMi(a, b, t, out, to, n, w); });
}
int linear(const void* const* srcs, const Dtype* types, const float* w, size_t count, void* out, Dtype to, size_t n, void* stream) {
  // The caller's arrays are host arrays valid only during the call (as kernel arguments are copied).
  std::vector<const void*> s(srcs, srcs + count);
  std::vector<Dtype> t(types, types + count);
  std::vector<float> ws(w, w + count);
  return enqueue(stream, [=] { wm::linear(s.data(), t.data(), ws.data(), count, out, to, n); });
}
bool sparseFits(const SparseParams& p, size_t sourceCount) { return p.models.size() <= kMaxSparseModels && sourceCount <= kMaxLinearSources; }
int sparseMerge(const void* const* srcs, const Dtype* types, size_t sourceCount, const SparseParams& p, uint64_t count, uint64_t start,
                size_t n, void* out, Dtype to, void* stream) {
  std::vector<const void*> s(srcs, srcs + sourceCount);
  std::vector<Dtype> t(types, types + sourceCount);
  return enqueue(stream, [=] { wm::sparseMerge(s.data(), t.data(), p, count, start, n, out, to); });
}
const char* errorString(int) { return "emulated"; }

}  // namespace cuda
}  // namespace wm
