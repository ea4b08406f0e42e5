// GPU bandwidth of the lerp kernel against a device-to-device cudaMemcpy on the same card (bytes
// read + written per second), for scripts/gpu-check.sh:
//   nvcc -std=c++17 -arch=sm_90 -O3 -fmad=false -Inative native/tests/cuda_bench.cu native/kernels/cuda/cuda.cu -o /tmp/cuda_bench
//   /tmp/cuda_bench [MiB per input, default 1024]
// Prints one JSON line: {"device", "memcpyGBs", "lerpBf16GBs", "lerpRatio", ...}.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/cuda_kernels.h"

static void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(2);
  }
}

template <class F>
static double bestSeconds(F&& f, int reps) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  f();  // warm-up
  check(cudaDeviceSynchronize(), "warm-up");
  float best = 1e30f;
  for (int r = 0; r < reps; ++r) {
    check(cudaEventRecord(a), "record");
    f();
    check(cudaEventRecord(b), "record");
    check(cudaEventSynchronize(b), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "elapsed");
    if (ms < best) best = ms;
  }
  return best / 1e3;
}

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024;
  const size_t bytes = mib << 20;
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  void *a, *b, *o;
  check(cudaMalloc(&a, bytes), "malloc");
  check(cudaMalloc(&b, bytes), "malloc");
  check(cudaMalloc(&o, bytes), "malloc");
  check(cudaMemset(a, 0x3c, bytes), "memset");
  check(cudaMemset(b, 0x3d, bytes), "memset");
  const int reps = 10;
  const double copy = bestSeconds([&] { check(cudaMemcpyAsync(o, a, bytes, cudaMemcpyDeviceToDevice), "memcpy"); }, reps);
  const size_t n16 = bytes / 2, n32 = bytes / 4;
  auto lerp = [&](wm::Dtype t, size_t n) {
    return bestSeconds([&] { check((cudaError_t)wm::cuda::lerpExact(a, t, b, t, o, t, n, 0.3f, nullptr), "lerp"); }, reps);
  };
  const double lbf16 = lerp(wm::Dtype::BF16, n16), lf32 = lerp(wm::Dtype::F32, n32);
  const double linear3 = bestSeconds([&] {
    const void* s[2] = {a, b};
    const wm::Dtype t[2] = {wm::Dtype::BF16, wm::Dtype::BF16};
    const float w[2] = {0.4f, 0.6f};
    check((cudaError_t)wm::cuda::linear(s, t, w, 2, o, wm::Dtype::BF16, n16, nullptr), "linear");
  }, reps);
  const double memcpyGBs = 2.0 * bytes / copy / 1e9;    // read + write
  const double lerpGBs = 3.0 * bytes / lbf16 / 1e9;     // two reads + one write
  std::printf(
      "{\"device\":\"%s\",\"bytesPerInput\":%zu,\"memcpyGBs\":%.1f,\"lerpBf16GBs\":%.1f,\"lerpF32GBs\":%.1f,\"linearBf16GBs\":%.1f,"
      "\"lerpRatio\":%.3f}\n",
      prop.name, bytes, memcpyGBs, lerpGBs, 3.0 * bytes / lf32 / 1e9, 3.0 * bytes / linear3 / 1e9, lerpGBs / memcpyGBs);
  return 0;
}
