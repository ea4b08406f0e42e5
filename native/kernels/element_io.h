// One element in and out of a tensor buffer for f64 kernels: loads are exact, a store is one rounding
// of the f64 value (F32 directly; F16 and BF16 through an f32 rounded to odd), NaN canonical.
#pragma once
#include <cstring>

#include "kernels.h"
#include "numerics.h"

namespace wm {

// Every F32, BF16 and F16 value is exact in f32 (and so in f64). The dtype fixed at compile time, for hot loops:
template <Dtype T>
inline float loadElem(const void* p, size_t i) {
  if constexpr (T == Dtype::F32) {
    float v;
    std::memcpy(&v, static_cast<const char*>(p) + i * 4, 4);
    return v;
  } else {
    uint16_t h;
    std::memcpy(&h, static_cast<const char*>(p) + i * 2, 2);
    return T == Dtype::BF16 ? num::bf16ToF32(h) : num::f16ToF32(h);
  }
}

// ... or known at run time.
inline float loadElementF32(const void* p, Dtype t, size_t i) {
  if (t == Dtype::F32) return loadElem<Dtype::F32>(p, i);
  return t == Dtype::BF16 ? loadElem<Dtype::BF16>(p, i) : loadElem<Dtype::F16>(p, i);
}

inline double loadElement(const void* p, Dtype t, size_t i) { return loadElementF32(p, t, i); }

inline void storeRoundedOnce(void* p, Dtype t, size_t i, double x) {
  const float v = num::canonicalizeNaN(t == Dtype::F32 ? static_cast<float>(x) : num::f64ToF32Odd(x));
  if (t == Dtype::F32) {
    std::memcpy(static_cast<char*>(p) + i * 4, &v, 4);
    return;
  }
  const uint16_t h = t == Dtype::BF16 ? num::f32ToBF16(v) : num::f32ToF16(v);
  std::memcpy(static_cast<char*>(p) + i * 2, &h, 2);
}

}  // namespace wm
