// SCE's merge arithmetic with AVX-512 (sce_avx512.cc): sce_avx2.cc's combineLoop in 8 lanes, the same bits as the scalar
// truth (sce.cc); sce_avx2.cc calls it where avx512Enabled() and keeps its 4-lane loop for the rest and for other CPUs.
#pragma once
#include <cstddef>

#include "kernels.h"

namespace wm {
namespace avx2 {

// sceCombine (sce.h) over elements [0, full), full a multiple of 8, m >= 1 models.
void sceCombineAvx512(const double* base, const double* t, size_t stride, const double* keep, const double* weights, size_t m, size_t full, void* out,
                      size_t at, Dtype to);

}  // namespace avx2
}  // namespace wm
