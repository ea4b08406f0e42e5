// arcee_fusion's per-element arithmetic (arcee_fusion.h): a row's values less its max, the softmax ratios and the
// importance order keys (and whether two row KLs give the same importances); scalar truth in arcee_fusion_rows.cc, AVX2 in arcee_fusion_avx2.cc, bit for bit the same
// (native/tests/arcee_selftest.cc). The sums over a row stay serial in arcee_fusion.cc (their order is the result).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace wm {

#define WM_ARCEE_ROW_DECLS                                                                                                  \
  /* max_j v[r0 + j] (v as f64; std::max's order: a NaN never becomes the max, the first of equal zeros does; -Inf: none). */ \
  double arceeRowMax(const void* v, Dtype t, size_t r0, size_t L);                                                           \
  /* x[j] = v[r0 + j] - m (f64), m the row's arceeRowMax (its caller has it already). */                                   \
  void arceeShiftedRow(const void* v, Dtype t, size_t r0, size_t L, double m, double* x);                                    \
  /* p[j] = eb[j] / sb + 1e-8 and r[j] = p[j] / (ea[j] / sa + 1e-8). */                                                      \
  void arceeRatios(const double* ea, double sa, const double* eb, double sb, size_t L, double* p, double* r);               \
  /* keys[i] = arceeOrderKey(f32(|b - a| * kl)) of elements j0 + i, i < n (d = b - a in f64). */                            \
  void arceeKeys(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, uint32_t* keys);              \
  /* Whether f32(|b - a| * klLo) and f32(|b - a| * klHi) have the same bits for every element j0 .. j0 + n - 1 (arcee_kl.h). */ \
  bool arceeSameImportances(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double klLo, double klHi);   \
  /* out[j] = round(a + d * (f32(|d| * kl) >= threshold ? 1 : 0)) for j = j0 .. j0 + n - 1, f64, one rounding to `to`. */       \
  void arceeMergeRow(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, float threshold, void* out, Dtype to);

namespace scalar {
WM_ARCEE_ROW_DECLS
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
namespace avx2 {
WM_ARCEE_ROW_DECLS
// arceeKeys, arceeMergeRow, arceeSameImportances, arceeRatios and arceeRowMax in 8 lanes (arcee_fusion_avx512.cc), called by the AVX2 ones where avx512Enabled().
void arceeKeysAvx512(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, uint32_t* keys);
void arceeMergeRowAvx512(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double kl, float threshold, void* out, Dtype to);
bool arceeSameImportancesAvx512(const void* a, Dtype ta, const void* b, Dtype tb, size_t j0, size_t n, double klLo, double klHi);
void arceeRatiosAvx512(const double* ea, double sa, const double* eb, double sb, size_t L, double* p, double* r);
double arceeRowMaxAvx512(const void* v, Dtype t, size_t r0, size_t L);
}
#endif
// The SIMD path where kernels.h's dispatcher takes it, else the scalar one.
WM_ARCEE_ROW_DECLS
#undef WM_ARCEE_ROW_DECLS

}  // namespace wm
