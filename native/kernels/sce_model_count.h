// The model count of SCE's in-register AVX2 kernels made a compile-time one (sce_registers_avx2.cc, sce_sums_avx2.cc): their task
// vectors, sources and sums stay in registers.
#pragma once
#include <cstddef>
#include <type_traits>

#include "kernels.h"
#include "sce.h"

namespace wm {

constexpr size_t kSceRegisterModels = 8;  // the most models whose task vectors the kernels hold in registers

// Whether the in-register AVX2 kernels take p: 1 .. kSceRegisterModels models, each of the base's dtype.
inline bool sceFitsRegisters(const Dtype* types, const SceParams& p) {
  const size_t m = p.sources.size();
  if (m == 0 || m > kSceRegisterModels) return false;
  for (const uint32_t s : p.sources) {
    if (types[s] != types[p.base]) return false;
  }
  return true;
}

// f(std::integral_constant<size_t, m>{}) for m in 1 .. N (the caller checks the range).
template <size_t N = kSceRegisterModels, typename F>
void withSceModelCount(size_t m, F f) {
  if constexpr (N > 1) {
    if (m < N) return withSceModelCount<N - 1>(m, f);
  }
  f(std::integral_constant<size_t, N>{});
}

}  // namespace wm
