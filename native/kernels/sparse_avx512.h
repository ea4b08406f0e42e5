// The sparse kernels' AVX-512 loops (sparse_avx512.cc): sparsify.h's merge and keep rule in 8 lanes,
// sparse_select.h's |d| bits 16 and window keys 8 per step, each the same bits as its scalar truth; sparse_avx2.cc calls them
// where the CPU has AVX-512F/DQ/BW/VL and keeps its AVX2 loops for the rest and for other CPUs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"
#include "sparsify.h"

namespace wm {
namespace avx2 {

// Elements [start, start + n) of a job of `count`, n a multiple of 8, every source the merge reads of
// dtype t, at most kSimdSparseMaxModels models: srcs[s] and out point at element `start`.
void sparseMergeAvx512(const void* const* srcs, Dtype t, const SparseParams& p, uint64_t count, uint64_t start, size_t n, void* out, Dtype to);

// absDeltaBits' elements [0, n - n % 16): returns how many it did.
size_t absDeltaBitsAvx512(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* out);

// sparseKeep's elements [0, n), n a multiple of 8.
void sparseKeepAvx512(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n, uint8_t* keep);

// sparse_select.h's l1Slots over elements [0, n), n a multiple of 8.
void l1SlotsAvx512(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n, uint32_t* slot,
                   uint32_t* mant, uint8_t* bits);

// windowKeys over a[0..n), n a multiple of 8 (its contract: keys in element order, keys[0..n) as scratch).
size_t windowKeysAvx512(const uint32_t* a, size_t n, uint32_t lo, uint32_t hi, uint32_t indexBits, uint64_t count, uint64_t start, uint64_t* keys,
                        uint64_t* above);

}  // namespace avx2
}  // namespace wm
