// The CUDA device probe and the per-worker contexts (see device.h).
#include "device.h"

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../exec_error.h"
#include "../kernels/cuda_kernels.h"

namespace wm {
namespace cuda {
namespace {

__global__ void probeKernel() {}

std::string mib(size_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }

bool driverLoads() {
  void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (h == nullptr) return false;
  dlclose(h);
  return true;
}

// Bits of a few thousand bf16 values: a spread of ordinary magnitudes, and every special value
// (±0, subnormals, ±Inf, NaN payloads, the largest finite) at fixed places.
std::vector<uint16_t> selfCheckValues(uint64_t seed, size_t n) {
  static const uint16_t kSpecial[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81, 0x7F7F, 0xFF7F};
  std::vector<uint16_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const uint16_t sign = static_cast<uint16_t>((seed >> 63) << 15);
    v[i] = static_cast<uint16_t>(sign | (0x3A00 + ((seed >> 33) & 0x0BFF)));  // about 2^-11 .. 2^13
    if (i % 97 == 5) v[i] = kSpecial[(i / 97) % (sizeof kSpecial / sizeof kSpecial[0])];
  }
  return v;
}

// Runs each kernel once on `scratch` (device memory, at least 3 x 64 KiB) and compares its bytes with
// the CPU's for the same call. Empty when every byte agrees; else what disagreed. A GPU whose
// kernels do not reproduce the CPU's bytes is not used: `auto` merges on the CPU instead.
std::string kernelSelfCheck(uint8_t* scratch) {
  constexpr size_t n = 4099;  // odd: the kernels' tails run too
  const std::vector<uint16_t> a = selfCheckValues(1, n), b = selfCheckValues(2, n);
  uint8_t* da = scratch;
  uint8_t* db = scratch + (64u << 10);
  uint8_t* dout = scratch + (128u << 10);
  if (cudaMemcpy(da, a.data(), n * 2, cudaMemcpyHostToDevice) != cudaSuccess ||
      cudaMemcpy(db, b.data(), n * 2, cudaMemcpyHostToDevice) != cudaSuccess) {
    return std::string("copying to the GPU failed: ") + cudaGetErrorString(cudaGetLastError());
  }
  struct Case {
    const char* name;
    Dtype to;
    int (*gpu)(const void*, const void*, void*, Dtype);
    void (*cpu)(const void*, const void*, void*, Dtype);
  };
  const Case cases[] = {
      {"lerp exact λ = 0.8 into BF16", Dtype::BF16,
       [](const void* x, const void* y, void* o, Dtype to) { return lerpExact(x, Dtype::BF16, y, Dtype::BF16, o, to, n, 0.8f, nullptr); },
       [](const void* x, const void* y, void* o, Dtype to) { wm::lerpExact(x, Dtype::BF16, y, Dtype::BF16, o, to, n, 0.8f); }},
      {"lerp exact λ = 1.3 into F32", Dtype::F32,
       [](const void* x, const void* y, void* o, Dtype to) { return lerpExact(x, Dtype::BF16, y, Dtype::BF16, o, to, n, 1.3f, nullptr); },
       [](const void* x, const void* y, void* o, Dtype to) { wm::lerpExact(x, Dtype::BF16, y, Dtype::BF16, o, to, n, 1.3f); }},
      {"lerp mi λ = 0.45 into BF16", Dtype::BF16,
       [](const void* x, const void* y, void* o, Dtype to) { return lerpMi(x, y, Dtype::BF16, o, to, n, 0.45f, nullptr); },
       [](const void* x, const void* y, void* o, Dtype to) { wm::lerpMi(x, y, Dtype::BF16, o, to, n, 0.45f); }},
      {"convert BF16 to F16", Dtype::F16,
       [](const void* x, const void*, void* o, Dtype to) { return convert(x, Dtype::BF16, o, to, n, nullptr); },
       [](const void* x, const void*, void* o, Dtype to) { wm::convert(x, Dtype::BF16, o, to, n); }},
  };
  std::vector<uint8_t> gpuOut(n * 4), cpuOut(n * 4);
  for (const Case& c : cases) {
    const size_t bytes = n * dtypeSize(c.to);
    int rc = c.gpu(da, db, dout, c.to);
    if (rc == 0) rc = static_cast<int>(cudaDeviceSynchronize());
    if (rc == 0) rc = static_cast<int>(cudaMemcpy(gpuOut.data(), dout, bytes, cudaMemcpyDeviceToHost));
    if (rc != 0) {
      cudaGetLastError();
      return std::string(c.name) + " failed on the GPU: " + errorString(rc);
    }
    c.cpu(a.data(), b.data(), cpuOut.data(), c.to);
    if (std::memcmp(gpuOut.data(), cpuOut.data(), bytes) != 0) {
      size_t i = 0;
      while (std::memcmp(gpuOut.data() + i * dtypeSize(c.to), cpuOut.data() + i * dtypeSize(c.to), dtypeSize(c.to)) == 0) ++i;
      return std::string(c.name) + ": element " + std::to_string(i) + " differs from the CPU's";
    }
  }
  return "";
}

Probe runProbe() {
  Probe p;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) cudaGetLastError();
  // Which code a machine without libcuda gets depends on the runtime version (35, "driver version is
  // insufficient", with CUDA 13), so the library itself decides "no driver"; a stub libcuda is none either.
  if (e == cudaErrorStubLibrary || (e != cudaSuccess && e != cudaErrorNoDevice && !driverLoads())) {
    p.unusable = Unusable::NoDriver;
    p.reason = e == cudaErrorStubLibrary ? "no NVIDIA driver (only the CUDA stub libcuda was found)" : "no NVIDIA driver (libcuda.so.1 not found)";
    return p;
  }
  if (e == cudaErrorNoDevice || (e == cudaSuccess && count <= 0)) {
    p.unusable = Unusable::NoDevice;
    p.reason = "no CUDA device";
    return p;
  }
  if (e == cudaErrorInsufficientDriver || e == cudaErrorSystemDriverMismatch || e == cudaErrorCompatNotSupportedOnDevice) {
    p.unusable = Unusable::Unsupported;
    p.reason = std::string("the NVIDIA driver cannot run this build's CUDA 13 runtime: ") + cudaGetErrorString(e);
    return p;
  }
  if (e != cudaSuccess) {
    p.unusable = Unusable::Error;
    p.reason = std::string("CUDA failed to list devices: ") + cudaGetErrorString(e);
    return p;
  }
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop{};
    const cudaError_t pe = cudaGetDeviceProperties(&prop, d);
    if (pe != cudaSuccess) {
      cudaGetLastError();
      if (d == 0) {  // device 0 is the one used: another cannot stand in for it
        p.devices.clear();
        p.unusable = Unusable::Error;
        p.reason = std::string("GPU 0 cannot be queried: ") + cudaGetErrorString(pe);
        return p;
      }
      continue;
    }
    p.devices.push_back({prop.name, static_cast<uint64_t>(prop.totalGlobalMem), prop.major, prop.minor});
  }
  if (p.devices.empty()) {
    p.unusable = Unusable::Error;
    p.reason = "CUDA lists devices but none can be queried";
    return p;
  }
  const DeviceInfo& d0 = p.devices[0];
  const std::string gpu = d0.name + " (compute capability " + std::to_string(d0.major) + "." + std::to_string(d0.minor) + ")";
  cudaSetDevice(0);
  cudaFuncAttributes attr{};
  e = cudaFuncGetAttributes(&attr, probeKernel);
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction || e == cudaErrorUnsupportedPtxVersion) {
    cudaGetLastError();
    p.unusable = Unusable::Unsupported;
    p.reason = "GPU " + gpu + " has no kernels in this build (rebuild with --CDWEIGHTMIX_CUDA_ARCHITECTURES=" + std::to_string(d0.major) +
               std::to_string(d0.minor) + "-real)";
    return p;
  }
  void* probeBuffer = nullptr;
  if (e == cudaSuccess) e = cudaMalloc(&probeBuffer, 64u << 20);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t freeBytes = 0, totalBytes = 0;
    cudaMemGetInfo(&freeBytes, &totalBytes);
    p.unusable = Unusable::OutOfMemory;
    p.reason = "out of memory on GPU " + gpu + " (" + mib(freeBytes) + " free)";
    return p;
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    p.unusable = Unusable::Error;
    p.reason = "GPU " + gpu + " cannot be used: " + cudaGetErrorString(e);
    return p;
  }
  const std::string disagreement = kernelSelfCheck(static_cast<uint8_t*>(probeBuffer));
  cudaFree(probeBuffer);
  if (!disagreement.empty()) {
    p.unusable = Unusable::Error;
    p.reason = "GPU " + gpu + " failed weightmix's kernel self-check (" + disagreement + ")";
  }
  return p;
}

}  // namespace

const Probe& probe() {
  static const Probe p = runProbe();  // thread-safe static initialization
  return p;
}

const char* unusableCode(Unusable u) {
  switch (u) {
    case Unusable::None: return "";
    case Unusable::NoDriver: return "no-driver";
    case Unusable::NoDevice: return "no-device";
    case Unusable::Unsupported: return "unsupported";
    case Unusable::OutOfMemory: return "out-of-memory";
    default: return "error";
  }
}

void requireDevice() {
  const Probe& p = probe();
  if (p.unusable != Unusable::None) throw ExecError("CudaUnavailable", "cuda: " + p.reason);
}

uint64_t deviceMemoryBudget() {
  size_t freeBytes = 0, totalBytes = 0;
  cudaError_t e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaMemGetInfo(&freeBytes, &totalBytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return UINT64_MAX;  // unknown: the buffers' own allocations report running out
  }
  const uint64_t reserve = std::max<uint64_t>(uint64_t{256} << 20, freeBytes / 10);
  return freeBytes > reserve ? freeBytes - reserve : 0;
}

void WorkerContext::check(int code, const char* what) {
  if (code == cudaSuccess) return;
  cudaGetLastError();
  if (code == cudaErrorMemoryAllocation) {
    throw ExecError("CudaOutOfMemory", std::string("cuda: out of memory (") + what + "); use fewer --threads or --device cpu");
  }
  throw ExecError("CudaError", std::string("cuda: ") + what + ": " + cudaGetErrorString(static_cast<cudaError_t>(code)));
}

WorkerContext::WorkerContext(size_t slots) : device_(slots + 1, nullptr), capacity_(slots + 1, 0) {
  check(cudaSetDevice(0), "selecting device 0");
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "creating a stream");
  stream_ = s;
}

WorkerContext::~WorkerContext() {
  cudaStream_t s = static_cast<cudaStream_t>(stream_);
  if (s != nullptr) cudaStreamSynchronize(s);
  for (uint8_t* d : device_) cudaFree(d);
  if (hostResults_ != nullptr) cudaFreeHost(hostResults_);
  for (const Pinned& p : pinned_) cudaHostUnregister(p.host);
  if (s != nullptr) cudaStreamDestroy(s);
  cudaGetLastError();
}

void WorkerContext::pin(void* host, size_t bytes) {
  if (host == nullptr || bytes == 0) return;
  // Not every allocation can be registered (some kernels refuse); copies then stay pageable, still correct.
  if (cudaHostRegister(host, bytes, cudaHostRegisterDefault) == cudaSuccess) pinned_.push_back({host, bytes});
  else cudaGetLastError();
}

void WorkerContext::unpin(void* host) {
  auto it = std::find_if(pinned_.begin(), pinned_.end(), [host](const Pinned& p) { return p.host == host; });
  if (it == pinned_.end()) return;
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  cudaHostUnregister(it->host);
  pinned_.erase(it);
}

uint8_t* WorkerContext::grow(size_t index, size_t bytes) {
  if (capacity_[index] >= bytes) return device_[index];
  const size_t want = (bytes + (1u << 20) - 1) & ~size_t((1u << 20) - 1);
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  cudaFree(device_[index]);
  device_[index] = nullptr;
  capacity_[index] = 0;
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, want);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t freeBytes = 0, totalBytes = 0;
    cudaMemGetInfo(&freeBytes, &totalBytes);
    throw ExecError("CudaOutOfMemory", "cuda: out of device memory (a " + mib(want) + " worker buffer, " + mib(freeBytes) +
                                           " free); use fewer --threads or --device cpu");
  }
  check(e, "allocating a worker buffer");
  device_[index] = static_cast<uint8_t*>(p);
  capacity_[index] = want;
  return device_[index];
}

uint8_t* WorkerContext::sources(size_t slot, size_t bytes) { return grow(slot, bytes); }

void WorkerContext::upload(uint8_t* device, const void* host, size_t bytes) {
  check(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream_)), "copying sources to the GPU");
}

uint8_t* WorkerContext::results(size_t bytes) { return grow(device_.size() - 1, bytes); }

const uint8_t* WorkerContext::download(size_t bytes) {
  if (hostCapacity_ < bytes) {
    cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
    if (hostResults_ != nullptr) cudaFreeHost(hostResults_);
    hostResults_ = nullptr;
    hostCapacity_ = 0;
    const size_t want = (bytes + (1u << 20) - 1) & ~size_t((1u << 20) - 1);
    void* p = nullptr;
    check(cudaMallocHost(&p, want), "allocating pinned host memory");
    hostResults_ = static_cast<uint8_t*>(p);
    hostCapacity_ = want;
  }
  check(cudaMemcpyAsync(hostResults_, device_.back(), bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream_)),
        "copying results from the GPU");
  return hostResults_;
}

void WorkerContext::wait() { check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "running the kernels"); }

}  // namespace cuda
}  // namespace wm
