// A stand-in for the CUDA device (native/cuda/device.cu + the kernels) in host memory, for testing the
// executor's device path on machines without a GPU: build with -DWEIGHTMIX_CUDA_EMULATION=ON. Every
// stream operation is queued and runs only at wait(), the most adversarial timing a real stream
// allows, so a task that reads results early or reuses a buffer the GPU still reads fails here too.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../cuda/device.h"
#include "../exec_error.h"
#include "../kernels/cuda_kernels.h"
#include "../kernels/kernels.h"
#include "../kernels/sparsify.h"

namespace wm {
namespace cuda {
namespace {

// A stream: the queued operations, and the device buffers of its context, against which every
// device pointer a kernel or copy is given is checked as the GPU would fault on it: in bounds, and
// aligned to its element size (a misaligned 4-byte load is cudaErrorMisalignedAddress on a GPU,
// while the CPU kernels that stand in for it here load with memcpy and would not notice).
struct Queue {
  std::vector<std::function<void()>> ops;
  std::vector<std::pair<const uint8_t*, size_t>> buffers;  // [slot..., results]
};

thread_local std::string lastError;

int fail(const std::string& why) {
  lastError = why;
  return 700;  // any non-zero code: WorkerContext::check reports lastError
}

// 0 when [p, p + bytes) lies inside one device buffer of the stream's context and p is `align`-aligned.
int checkDevice(void* stream, const void* p, size_t bytes, size_t align, const char* what) {
  const uint8_t* q = static_cast<const uint8_t*>(p);
  if (reinterpret_cast<uintptr_t>(q) % align != 0) {
    return fail(std::string(what) + ": misaligned address (" + std::to_string(reinterpret_cast<uintptr_t>(q) % align) + " bytes past a " +
                std::to_string(align) + "-byte boundary)");
  }
  for (const auto& b : static_cast<Queue*>(stream)->buffers) {
    if (b.first != nullptr && q >= b.first && bytes <= b.second && static_cast<size_t>(q - b.first) <= b.second - bytes) return 0;
  }
  return fail(std::string(what) + ": " + std::to_string(bytes) + " bytes outside every device buffer");
}

int checkTensor(void* stream, const void* p, Dtype t, size_t n, const char* what) {
  if (t == Dtype::U8) return fail(std::string(what) + ": raw bytes given to a kernel");
  return checkDevice(stream, p, n * dtypeSize(t), dtypeSize(t), what);
}

// Emulated device memory: WEIGHTMIX_EMULATED_DEVICE_MEMORY bytes (default 1 GiB, as the probe says),
// shared by every context; a buffer that would exceed it fails as cudaMalloc would.
uint64_t deviceMemory() {
  static const uint64_t bytes = [] {
    const char* e = std::getenv("WEIGHTMIX_EMULATED_DEVICE_MEMORY");
    return e != nullptr && *e != 0 ? std::strtoull(e, nullptr, 10) : uint64_t{1} << 30;
  }();
  return bytes;
}
std::atomic<uint64_t> allocated{0};

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
// All of the emulated memory that no context holds yet (no reserve: tests set it to the byte).
uint64_t deviceMemoryBudget() { return deviceMemory() > allocated.load() ? deviceMemory() - allocated.load() : 0; }

void WorkerContext::check(int code, const char* what) {
  if (code != 0) throw ExecError("CudaError", std::string("cuda (emulated): ") + what + ": " + (lastError.empty() ? "failed" : lastError));
}

WorkerContext::WorkerContext(size_t slots) : device_(slots + 1, nullptr), capacity_(slots + 1, 0) {
  Queue* q = new Queue();
  q->buffers.resize(slots + 1, {nullptr, 0});
  stream_ = q;
}

WorkerContext::~WorkerContext() {
  delete static_cast<Queue*>(stream_);
  for (uint8_t* d : device_) std::free(d);
  for (size_t c : capacity_) allocated.fetch_sub(c);
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
  device_[index] = nullptr;
  allocated.fetch_sub(capacity_[index]);
  capacity_[index] = 0;
  // The real context rounds to a MiB; cudaMalloc's alignment is 256 bytes (a malloc'd block would
  // often be only 16-byte aligned).
  const size_t want = (bytes + (size_t{1} << 20) - 1) & ~((size_t{1} << 20) - 1);
  if (allocated.fetch_add(want) + want > deviceMemory()) {
    allocated.fetch_sub(want);
    static_cast<Queue*>(stream_)->buffers[index] = {nullptr, 0};
    throw ExecError("CudaOutOfMemory", "cuda (emulated): out of device memory (a " + std::to_string(want >> 20) + " MiB worker buffer)");
  }
  device_[index] = static_cast<uint8_t*>(std::aligned_alloc(256, want));
  static_cast<Queue*>(stream_)->buffers[index] = {device_[index], device_[index] == nullptr ? 0 : want};
  if (device_[index] == nullptr) {
    allocated.fetch_sub(want);
    throw ExecError("CudaOutOfMemory", "cuda (emulated): out of memory");
  }
  std::memset(device_[index], 0xA5, want);  // garbage, as cudaMalloc gives
  capacity_[index] = want;
  return device_[index];
}

uint8_t* WorkerContext::sources(size_t slot, size_t bytes) { return grow(slot, bytes); }

void WorkerContext::upload(uint8_t* device, const void* host, size_t bytes) {
  check(checkDevice(stream_, device, bytes, 1, "copying sources to the GPU"), "copying sources to the GPU");
  enqueue(stream_, [device, host, bytes] { std::memcpy(device, host, bytes); });
}

uint8_t* WorkerContext::results(size_t bytes) { return grow(device_.size() - 1, bytes); }

const uint8_t* WorkerContext::download(size_t bytes) {
  if (hostCapacity_ < bytes) {
    wait();
    std::free(hostResults_);
    hostResults_ = static_cast<uint8_t*>(std::malloc(bytes));
    hostCapacity_ = bytes;
  }
  check(checkDevice(stream_, device_.back(), bytes, 1, "copying results from the GPU"), "copying results from the GPU");
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
  if (int e = checkTensor(stream, src, ts, n, "convert: source")) return e;
  if (int e = checkTensor(stream, out, to, n, "convert: output")) return e;
  return enqueue(stream, [=] { wm::convert(src, ts, out, to, n); });
}
int lerpExact(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n, float w, void* stream) {
  if (int e = checkTensor(stream, a, ta, n, "lerp: a")) return e;
  if (int e = checkTensor(stream, b, tb, n, "lerp: b")) return e;
  if (int e = checkTensor(stream, out, to, n, "lerp: output")) return e;
  return enqueue(stream, [=] { wm::lerpExact(a, ta, b, tb, out, to, n, w); });
}
int lerpMi(const void* a, const void* b, Dtype t, void* out, Dtype to, size_t n, float w, void* stream) {
  if (int e = checkTensor(stream, a, t, n, "lerp mi: a")) return e;
  if (int e = checkTensor(stream, b, t, n, "lerp mi: b")) return e;
  if (int e = checkTensor(stream, out, to, n, "lerp mi: output")) return e;
  return enqueue(stream, [=] { wm::lerpMi(a, b, t, out, to, n, w); });
}
int linear(const void* const* srcs, const Dtype* types, const float* w, size_t count, void* out, Dtype to, size_t n, void* stream) {
  if (count > kMaxLinearSources) return fail("linear: more sources than the kernel takes");
  for (size_t k = 0; k < count; ++k) {
    if (int e = checkTensor(stream, srcs[k], types[k], n, "linear: source")) return e;
  }
  if (int e = checkTensor(stream, out, to, n, "linear: output")) return e;
  // The caller's arrays are host arrays valid only during the call (as kernel arguments are copied).
  std::vector<const void*> s(srcs, srcs + count);
  std::vector<Dtype> t(types, types + count);
  std::vector<float> ws(w, w + count);
  return enqueue(stream, [=] { wm::linear(s.data(), t.data(), ws.data(), count, out, to, n); });
}
bool sparseFits(const SparseParams& p, size_t sourceCount) { return p.models.size() <= kMaxSparseModels && sourceCount <= kMaxLinearSources; }
int sparseMerge(const void* const* srcs, const Dtype* types, size_t sourceCount, const SparseParams& p, uint64_t count, uint64_t start,
                size_t n, void* out, Dtype to, void* stream) {
  if (!sparseFits(p, sourceCount)) return fail("sparse: more sources or models than the kernel takes");
  for (size_t k = 0; k < sourceCount; ++k) {
    if (int e = checkTensor(stream, srcs[k], types[k], n, "sparse: source")) return e;
  }
  if (int e = checkTensor(stream, out, to, n, "sparse: output")) return e;
  std::vector<const void*> s(srcs, srcs + sourceCount);
  std::vector<Dtype> t(types, types + sourceCount);
  return enqueue(stream, [=] { wm::sparseMerge(s.data(), t.data(), p, count, start, n, out, to); });
}
const char* errorString(int) { return "emulated"; }

}  // namespace cuda
}  // namespace wm
