// The compile-time shapes of the SIMD sparse merges (sparse_avx2.cc's 4-lane loop, sparse_avx512.cc's
// 8-lane one): dtype in, dtype out, model count and consensus fixed, so that each loop is unrolled for them.
#pragma once
#include <cstddef>
#include <type_traits>

#include "cpu_backends.h"
#include "sparsify.h"

namespace wm {

constexpr size_t kSimdSparseMaxModels = 16;  // more models take the scalar path

// Calls loop(T, TO, M, C), each an integral_constant: T the sources' dtype, TO `to`, M the model count
// (1..3, else 0: read from p at run time), C p.consensus.
template <class Loop>
inline void withSparseMergeShape(Dtype t, Dtype to, const SparseParams& p, Loop&& loop) {
  withDtype(t, [&](auto T) {
    withDtype(to, [&](auto TO) {
      const auto byModels = [&](auto C) {
        switch (p.models.size()) {
          case 1: return loop(T, TO, std::integral_constant<size_t, 1>{}, C);
          case 2: return loop(T, TO, std::integral_constant<size_t, 2>{}, C);
          case 3: return loop(T, TO, std::integral_constant<size_t, 3>{}, C);
          default: return loop(T, TO, std::integral_constant<size_t, 0>{}, C);
        }
      };
      switch (p.consensus) {
        case Consensus::None: return byModels(std::integral_constant<Consensus, Consensus::None>{});
        case Consensus::Sum: return byModels(std::integral_constant<Consensus, Consensus::Sum>{});
        case Consensus::Count: return byModels(std::integral_constant<Consensus, Consensus::Count>{});
      }
    });
  });
}

}  // namespace wm
