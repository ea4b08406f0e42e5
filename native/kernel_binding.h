// runKernelForTest: runs one CPU kernel on caller-owned buffers so that tests can compare the SIMD
// path, the scalar path and the TypeScript oracles bit for bit. Not part of the public API.
#pragma once
#include <napi.h>

namespace wm {

// JS: runKernelForTest(op, { srcs, types, out?, outType?, w?, n, simd })
//   op: 'lerpExact' | 'lerpMi' | 'convert' | 'linear' | 'moments'
//   srcs: typed arrays (Buffers), types: 'F32' | 'F16' | 'BF16' per source, n: element count,
//   simd: false forces the scalar path for this call. Returns undefined, or for 'moments'
//   { aa, bb, ab, dd, absA, absB, absD, maxAbsDiff, nonFinite }. Bad arguments throw a TypeError.
Napi::Value RunKernelForTest(const Napi::CallbackInfo& info);

}  // namespace wm
