// CUDA paths of the kernels: numerics.h compiled for the device (every rounding explicit through
// the __*_rn intrinsics, so -fmad cannot change a bit), 8 elements per thread with 16-byte loads
// where every buffer is 16-byte aligned, one element per thread otherwise.
#include <cuda_runtime.h>

#include <cstdint>

#include "../cpu_backends.h"
#include "../cuda_kernels.h"
#include "../numerics.h"

namespace wm {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kVec = 8;

template <Dtype T>
__device__ __forceinline__ float loadElem(const void* p, size_t i) {
  if constexpr (T == Dtype::F32) {
    return static_cast<const float*>(p)[i];
  } else {
    const uint16_t h = static_cast<const uint16_t*>(p)[i];
    return T == Dtype::BF16 ? num::bf16ToF32(h) : num::f16ToF32(h);
  }
}

template <Dtype T>
__device__ __forceinline__ uint32_t encode(float v) {
  if constexpr (T == Dtype::F32) return num::f32Bits(v);
  if constexpr (T == Dtype::BF16) return num::f32ToBF16(v);
  return num::f32ToF16(v);
}

// Conversion store (c10's NaN rules); arithmetic results are canonicalized by the caller.
template <Dtype T>
__device__ __forceinline__ void storeElem(void* p, size_t i, float v) {
  if constexpr (T == Dtype::F32) {
    static_cast<float*>(p)[i] = v;
  } else {
    static_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(encode<T>(v));
  }
}

template <Dtype T>
__device__ __forceinline__ void load8(const void* p, size_t i, float (&v)[kVec]) {
  if constexpr (T == Dtype::F32) {
    const float4* q = reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
    const float4 x = q[0], y = q[1];
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w, v[4] = y.x, v[5] = y.y, v[6] = y.z, v[7] = y.w;
  } else {
    const uint4 r = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p) + i);
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const uint16_t lo = static_cast<uint16_t>(w[k] & 0xFFFFu), hi = static_cast<uint16_t>(w[k] >> 16);
      v[2 * k] = T == Dtype::BF16 ? num::bf16ToF32(lo) : num::f16ToF32(lo);
      v[2 * k + 1] = T == Dtype::BF16 ? num::bf16ToF32(hi) : num::f16ToF32(hi);
    }
  }
}

template <Dtype T>
__device__ __forceinline__ void store8(void* p, size_t i, const float (&v)[kVec]) {
  if constexpr (T == Dtype::F32) {
    float4* q = reinterpret_cast<float4*>(static_cast<float*>(p) + i);
    q[0] = make_float4(v[0], v[1], v[2], v[3]);
    q[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) w[k] = encode<T>(v[2 * k]) | (encode<T>(v[2 * k + 1]) << 16);
    *reinterpret_cast<uint4*>(static_cast<uint16_t*>(p) + i) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

struct LerpExactOp {
  float w;
  __device__ __forceinline__ float operator()(float a, float b) const {
    return num::canonicalizeNaN(num::lerpExactF32(a, b, w));
  }
};

struct LerpMiOp {
  float w;
  num::RoundTo t;
  __device__ __forceinline__ float operator()(float a, float b) const { return num::lerpMiF32(a, b, w, t); }
};

// out[i] = op(a[i], b[i]); op returns canonical results, which every store converts exactly.
template <Dtype TA, Dtype TB, Dtype TO, class Op>
__global__ void binaryKernel(const void* a, const void* b, void* out, size_t n, Op op, bool vec) {
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t chunks = vec ? n / kVec : 0;
  for (size_t c = tid; c < chunks; c += stride) {
    float x[kVec], y[kVec], r[kVec];
    load8<TA>(a, c * kVec, x);
    load8<TB>(b, c * kVec, y);
#pragma unroll
    for (int k = 0; k < kVec; ++k) r[k] = op(x[k], y[k]);
    store8<TO>(out, c * kVec, r);
  }
  for (size_t i = chunks * kVec + tid; i < n; i += stride) storeElem<TO>(out, i, op(loadElem<TA>(a, i), loadElem<TB>(b, i)));
}

template <Dtype TS, Dtype TO>
__global__ void convertKernel(const void* src, void* out, size_t n, bool vec) {
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t chunks = vec ? n / kVec : 0;
  for (size_t c = tid; c < chunks; c += stride) {
    float x[kVec];
    load8<TS>(src, c * kVec, x);
    store8<TO>(out, c * kVec, x);
  }
  for (size_t i = chunks * kVec + tid; i < n; i += stride) storeElem<TO>(out, i, loadElem<TS>(src, i));
}

struct LinearArgs {
  const void* srcs[kMaxLinearSources];
  Dtype types[kMaxLinearSources];
  float w[kMaxLinearSources];
  int count;
};

__device__ __forceinline__ float loadAny(const void* p, Dtype t, size_t i) {
  switch (t) {
    case Dtype::F32: return loadElem<Dtype::F32>(p, i);
    case Dtype::F16: return loadElem<Dtype::F16>(p, i);
    default: return loadElem<Dtype::BF16>(p, i);
  }
}

template <Dtype TO>
__global__ void linearKernel(LinearArgs args, void* out, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float acc = 0.0f;
    for (int k = 0; k < args.count; ++k) {
      const float x = loadAny(args.srcs[k], args.types[k], i);
      acc = k == 0 ? num::mulRn(args.w[0], x) : num::fmaF32(args.w[k], x, acc);
    }
    storeElem<TO>(out, i, num::canonicalizeNaN(acc));
  }
}

unsigned blocksFor(size_t work) {
  const size_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks == 0 ? 1 : (blocks > (1u << 20) ? (1u << 20) : blocks));
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

cudaStream_t asStream(void* s) { return static_cast<cudaStream_t>(s); }

int launched() { return static_cast<int>(cudaGetLastError()); }

bool validDtype(Dtype t) { return t == Dtype::F32 || t == Dtype::F16 || t == Dtype::BF16; }

}  // namespace

int convert(const void* src, Dtype ts, void* out, Dtype to, size_t n, void* stream) {
  if (n == 0) return 0;
  if (!validDtype(ts) || !validDtype(to)) return static_cast<int>(cudaErrorInvalidValue);
  if (ts == to) return static_cast<int>(cudaMemcpyAsync(out, src, n * dtypeSize(ts), cudaMemcpyDeviceToDevice, asStream(stream)));
  const bool vec = aligned16(src) && aligned16(out);
  withDtype(ts, [&](auto S) {
    withDtype(to, [&](auto O) {
      convertKernel<decltype(S)::value, decltype(O)::value>
          <<<blocksFor(vec ? n / kVec + kVec : n), kThreads, 0, asStream(stream)>>>(src, out, n, vec);
    });
  });
  return launched();
}

int lerpExact(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n, float w, void* stream) {
  if (n == 0) return 0;
  if (!validDtype(ta) || !validDtype(tb) || !validDtype(to)) return static_cast<int>(cudaErrorInvalidValue);
  switch (num::lerpEndpoint(w)) {
    case 0: return convert(a, ta, out, to, n, stream);  // λ = 0 reproduces a, bit for bit
    case 1: return convert(b, tb, out, to, n, stream);
    default: break;
  }
  const bool vec = aligned16(a) && aligned16(b) && aligned16(out);
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) {
      withDtype(to, [&](auto O) {
        binaryKernel<decltype(A)::value, decltype(B)::value, decltype(O)::value>
            <<<blocksFor(vec ? n / kVec + kVec : n), kThreads, 0, asStream(stream)>>>(a, b, out, n, LerpExactOp{w}, vec);
      });
    });
  });
  return launched();
}

int lerpMi(const void* a, const void* b, Dtype t, void* out, Dtype to, size_t n, float w, void* stream) {
  if (n == 0) return 0;
  if (!validDtype(t) || !validDtype(to)) return static_cast<int>(cudaErrorInvalidValue);
  const bool vec = aligned16(a) && aligned16(b) && aligned16(out);
  const LerpMiOp op{w, static_cast<num::RoundTo>(static_cast<int>(t))};
  withDtype(t, [&](auto T) {
    withDtype(to, [&](auto O) {
      binaryKernel<decltype(T)::value, decltype(T)::value, decltype(O)::value>
          <<<blocksFor(vec ? n / kVec + kVec : n), kThreads, 0, asStream(stream)>>>(a, b, out, n, op, vec);
    });
  });
  return launched();
}

int linear(const void* const* srcs, const Dtype* types, const float* w, size_t count, void* out, Dtype to, size_t n,
           void* stream) {
  if (n == 0) return 0;
  if (count > kMaxLinearSources || !validDtype(to)) return static_cast<int>(cudaErrorInvalidValue);
  LinearArgs args{};
  args.count = static_cast<int>(count);
  for (size_t k = 0; k < count; ++k) {
    if (!validDtype(types[k])) return static_cast<int>(cudaErrorInvalidValue);
    args.srcs[k] = srcs[k];
    args.types[k] = types[k];
    args.w[k] = w[k];
  }
  withDtype(to, [&](auto O) {
    linearKernel<decltype(O)::value><<<blocksFor(n), kThreads, 0, asStream(stream)>>>(args, out, n);
  });
  return launched();
}

const char* errorString(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace cuda
}  // namespace wm
