// SCE's chunk kernels with AVX-512 (sce_avx512.cc): sce_avx2.cc's loads, variance bits, keep mask and merge arithmetic in
// 8 lanes, the same bits as the scalar truth (sce.cc); sce_avx2.cc calls them where avx512Enabled() and keeps its 4-lane
// loops for the rest and for other CPUs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"
#include "sce.h"

namespace wm {
namespace avx2 {

// sceTasks (sce.h) over elements j0 .. j0 + full - 1, full a multiple of 8.
void sceTasksAvx512(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t full, double* base, double* t, size_t stride,
                    uint32_t* bits);
// sceVarianceBits (sce.h) with the task vectors in registers where the base and models share one dtype and there are at most 8
// models; false (nothing written) otherwise.
bool sceVarianceBitsAvx512(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits);
// sceZeroBits (sce.h) of the whole 16s of bits[0..n): the count, and *done = how many elements it looked at.
uint64_t sceZeroBitsAvx512(const uint32_t* bits, size_t n, size_t* done);
// sceMergeNone (sce.h) where the base, the models and the output share one dtype, on the values' bits; false (nothing written) otherwise.
bool sceMergeNoneAvx512(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, void* out, Dtype to);
// sceKeep (sce.h) over elements first .. first + full - 1, full a multiple of 8, cut below kRankKeyNone.
void sceKeepAvx512(const uint32_t* bits, uint32_t indexBits, uint64_t count, uint64_t first, uint64_t cut, size_t full, double* keep);
// keep[j] = 1.0 where bit shift + j of the bytes (bit b: bit b % 8 of bytes[b / 8]) is set, else 0.0, for j < full, full a multiple
// of 8, shift < 8 (sceKeepOfMap's bits of one piece); reads only the bytes that hold those bits.
void sceKeepOfBitsAvx512(const uint8_t* bytes, unsigned shift, size_t full, double* keep);
// sceMergeInRegisters (sce.h) where the base and models share one dtype, there are 1 to 8 models and the keep bits come from the
// keep map, the cut (0: all) or variances computed here; false (nothing written) otherwise.
bool sceMergeInRegistersAvx512(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                               Dtype to);
// sceCombine (sce.h) over elements [0, full), full a multiple of 8, m >= 1 models.
void sceCombineAvx512(const double* base, const double* t, size_t stride, const double* keep, const double* weights, size_t m, size_t full, void* out,
                      size_t at, Dtype to);

}  // namespace avx2
}  // namespace wm
