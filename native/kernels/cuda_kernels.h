// The CUDA kernels: the same formulas as the CPU paths (numerics.h), over device buffers.
// Compiled only where nvcc is found (WEIGHTMIX_WITH_CUDA); this header needs no CUDA headers.
#pragma once
#include <cstddef>

#include "kernels.h"
#include "sparsify.h"

namespace wm {
namespace cuda {

constexpr size_t kMaxLinearSources = 16;
constexpr size_t kMaxSparseModels = 16;

// All tensor pointers are device pointers; `stream` is a cudaStream_t (nullptr: the legacy default
// stream). Calls are asynchronous; each returns 0 (cudaSuccess) or the cudaError_t of the launch.
int lerpExact(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n, float w, void* stream);
int lerpMi(const void* a, const void* b, Dtype t, void* out, Dtype to, size_t n, float w, void* stream);
int convert(const void* src, Dtype ts, void* out, Dtype to, size_t n, void* stream);
// srcs, types and w are host arrays (the pointers in srcs are device pointers); count <= kMaxLinearSources.
int linear(const void* const* srcs, const Dtype* types, const float* w, size_t count, void* out, Dtype to, size_t n,
           void* stream);

// sparsify.h's sparseMerge on the device (srcs: device pointers at element `start`); sparseFits says
// whether the parameters fit the kernel's fixed-size arguments (else the caller runs the CPU path).
bool sparseFits(const SparseParams& p, size_t sourceCount);
int sparseMerge(const void* const* srcs, const Dtype* types, size_t sourceCount, const SparseParams& p, uint64_t count,
                uint64_t start, size_t n, void* out, Dtype to, void* stream);

const char* errorString(int code);

}  // namespace cuda
}  // namespace wm
