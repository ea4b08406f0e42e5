// CUDA path of sparseMerge (TIES / DARE / breadcrumbs / task arithmetic, kernels/sparsify.h): the
// same f32 rank keys and f64 operations in the same order through numerics.h's explicit roundings,
// and the same counter-based DARE mask, so the device produces the CPU's bits.
#include <cuda_runtime.h>

#include <cstdint>

#include "../cpu_backends.h"
#include "../cuda_kernels.h"
#include "../numerics.h"
#include "../sparsify.h"

namespace wm {
namespace cuda {
namespace {

constexpr int kThreads = 256;

struct SparseModelArgs {
  uint64_t lowKey, highKey, seedKey;
  double density;
  uint32_t source;
  double weight;
  float scale;
};

struct SparseArgs {
  const void* srcs[kMaxLinearSources];
  Dtype types[kMaxLinearSources];
  SparseModelArgs models[kMaxSparseModels];
  int m;
  int consensus;
  bool normalize;
  double lambda;
  uint32_t indexBits, baseSource;
  uint64_t count, start;
};

__device__ __forceinline__ float loadAny(const void* p, Dtype t, size_t i) {
  if (t == Dtype::F32) return static_cast<const float*>(p)[i];
  const uint16_t h = static_cast<const uint16_t*>(p)[i];
  return t == Dtype::BF16 ? num::bf16ToF32(h) : num::f16ToF32(h);
}

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ bool bernoulliKeep(uint64_t seedKey, uint64_t i, double density) {
  const uint64_t u = splitmix64(seedKey + (i + 1) * 0x9E3779B97F4A7C15ull);
  return __dmul_rn(static_cast<double>(u >> 11), 0x1.0p-53) < density;
}

__device__ __forceinline__ int signOf(double v) { return v > 0 ? 1 : (v < 0 ? -1 : 0); }

template <Dtype TO>
__global__ void sparseKernel(SparseArgs a, void* out, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t j = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += stride) {
    const uint64_t i = a.start + j;
    const float b = loadAny(a.srcs[a.baseSource], a.types[a.baseSource], j);
    double vs[kMaxSparseModels];
    double sum = 0, wsum = 0;
    int signs = 0;
    for (int k = 0; k < a.m; ++k) {
      const SparseModelArgs& sm = a.models[k];
      const float x = loadAny(a.srcs[sm.source], a.types[sm.source], j);
      const float d = num::subRn(x, b);
      const uint64_t key = (static_cast<uint64_t>(num::f32Bits(d) & 0x7FFFFFFFu) << a.indexBits) | (a.count - 1 - i);
      bool keep = key >= sm.lowKey && key < sm.highKey;
      if (keep && sm.density > 0 && sm.density < 1) keep = bernoulliKeep(sm.seedKey, i, sm.density);
      const double e = keep ? num::mulRn(num::subRn(static_cast<double>(x), static_cast<double>(b)), static_cast<double>(sm.scale)) : 0.0;
      vs[k] = num::mulRn(sm.weight, e);
      sum = k == 0 ? vs[k] : num::addRn(sum, vs[k]);
      wsum = k == 0 ? sm.weight : num::addRn(wsum, sm.weight);
      signs += signOf(vs[k]);
    }
    double mixed, div;
    if (a.consensus == static_cast<int>(Consensus::None)) {
      mixed = sum;
      div = fabs(wsum) < 1e-8 ? 1.0 : wsum;
    } else {
      const int s = a.consensus == static_cast<int>(Consensus::Sum) ? (sum >= 0 ? 1 : -1) : (signs >= 0 ? 1 : -1);
      mixed = 0;
      div = 0;
      for (int k = 0; k < a.m; ++k) {
        if (signOf(vs[k]) != s) continue;
        mixed = num::addRn(mixed, vs[k]);
        div = num::addRn(div, a.models[k].weight);
      }
      if (div == 0) div = 1;
    }
    if (a.normalize) mixed = __ddiv_rn(mixed, div);
    const double x64 = num::addRn(static_cast<double>(b), num::mulRn(mixed, a.lambda));
    const float r = num::canonicalizeNaN(TO == Dtype::F32 ? __double2float_rn(x64) : num::f64ToF32Odd(x64));
    if constexpr (TO == Dtype::F32) static_cast<float*>(out)[j] = r;
    else if constexpr (TO == Dtype::BF16) static_cast<uint16_t*>(out)[j] = num::f32ToBF16(r);
    else static_cast<uint16_t*>(out)[j] = num::f32ToF16(r);
  }
}

}  // namespace

bool sparseFits(const SparseParams& p, size_t sourceCount) {
  return p.models.size() <= kMaxSparseModels && sourceCount <= kMaxLinearSources;
}

int sparseMerge(const void* const* srcs, const Dtype* types, size_t sourceCount, const SparseParams& p, uint64_t count,
                uint64_t start, size_t n, void* out, Dtype to, void* stream) {
  if (n == 0) return 0;
  if (!sparseFits(p, sourceCount) || to == Dtype::U8) return static_cast<int>(cudaErrorInvalidValue);
  SparseArgs a{};
  for (size_t s = 0; s < sourceCount; ++s) {
    if (types[s] == Dtype::U8) return static_cast<int>(cudaErrorInvalidValue);
    a.srcs[s] = srcs[s];
    a.types[s] = types[s];
  }
  a.m = static_cast<int>(p.models.size());
  for (size_t k = 0; k < p.models.size(); ++k) {
    const SparseModel& sm = p.models[k];
    a.models[k] = {sm.lowKey, sm.highKey, sm.seedKey, sm.density, sm.source, sm.weight, sm.scale};
  }
  a.consensus = static_cast<int>(p.consensus);
  a.normalize = p.normalize;
  a.lambda = p.lambda;
  a.indexBits = p.indexBits;
  a.baseSource = p.baseSource;
  a.count = count;
  a.start = start;
  const size_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks > (1u << 20) ? (1u << 20) : blocks);
  withDtype(to, [&](auto O) {
    sparseKernel<decltype(O)::value><<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a, out, n);
  });
  return static_cast<int>(cudaGetLastError());
}

}  // namespace cuda
}  // namespace wm
