// SCE's passes over a tensor with the task vectors in 4-lane AVX2 registers (sce_registers_avx2.cc, sce_sums_avx2.cc): what
// sce_avx512.h's in-register kernels do, for CPUs without AVX-512, the same bits as the scalar truth (native/tests/sce_selftest.cc
// runs them with AVX-512 off). sce_avx2.cc and sce_sums_avx512.cc call them where avx512Enabled() is false.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"
#include "sce.h"

namespace wm {
namespace avx2 {

// sceVarianceBits (sce.h) where the base and models share one dtype and there are at most 8 models; false (nothing written) otherwise.
bool sceVarianceBitsAvx2(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits);
// sceMergeInRegisters (sce.h) under sceMergeInRegistersAvx512's conditions (sce_avx512.h); false (nothing written) otherwise.
bool sceMergeInRegistersAvx2(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                             Dtype to);
// sceSumSquaresPieces (sce.h) where the sources share one dtype, there are at most 8 models and the cut lies below kRankKeyNone; false
// (nothing written) otherwise.
bool sceSumSquaresPiecesAvx2(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, double* sums, uint8_t* keepMap);

}  // namespace avx2
}  // namespace wm
