// The kernel surface the executor calls. Every function has a portable scalar path (numerics.h is
// the truth) and, where the CPU has it, an AVX2+FMA+F16C path that must produce the same bits.
#pragma once
#include <cstddef>
#include <cstdint>

namespace wm {

// U8 stands for any non-float tensor: the executor only ever byte-copies it; kernels never see it.
enum class Dtype : int { F32 = 0, F16 = 1, BF16 = 2, U8 = 3 };

inline size_t dtypeSize(Dtype t) { return t == Dtype::F32 ? 4 : t == Dtype::U8 ? 1 : 2; }

// torch.lerp's formula in f32 (fma(w, b-a, a) when |w| < 0.5, else fma(w-1, b-a, b)), one
// round-to-nearest-even to `to` (NaN becomes the canonical quiet NaN, as torch does).
void lerpExact(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n, float w);

// The paper's released script: a + w*(b - a) evaluated in dtype `t` (both inputs share it), each of
// the three ops computed in f32 and rounded to `t`; then converted to `to` (a no-op when to == t).
void lerpMi(const void* a, const void* b, Dtype t, void* out, Dtype to, size_t n, float w);

// Element-wise dtype conversion with one round-to-nearest-even (a byte copy when ts == to).
void convert(const void* src, Dtype ts, void* out, Dtype to, size_t n);

// out = sum_k w[k] * src[k], accumulated in f32 in order k = 0..count-1, one rounding to `to`.
void linear(const void* const* srcs, const Dtype* types, const float* w, size_t count, void* out, Dtype to,
            size_t n);

// Streaming statistics of two tensors for `weightmix diff`, accumulated in f64.
struct Moments {
  double aa = 0, bb = 0, ab = 0, dd = 0;  // sum a^2, sum b^2, sum a*b, sum (b-a)^2
  double absA = 0, absB = 0, absD = 0;    // sum |a|, sum |b|, sum |b-a|: the L1 ratio of the paper's sigma (lib/analysis/diff.ts)
  double maxAbsDiff = 0;                   // max |b - a| over finite pairs
  uint64_t nonFinite = 0;                  // pairs where a or b is NaN or Inf (excluded from the sums)
  // Adds a later piece's sums: the moments pass and a local job reduce pieces in order with this, so their f64 sums agree.
  void add(const Moments& x) {
    aa += x.aa;
    bb += x.bb;
    ab += x.ab;
    dd += x.dd;
    absA += x.absA;
    absB += x.absB;
    absD += x.absD;
    maxAbsDiff = maxAbsDiff < x.maxAbsDiff ? x.maxAbsDiff : maxAbsDiff;  // std::max's choice, without <algorithm> here
    nonFinite += x.nonFinite;
  }
};
// A Moments as JavaScript reads it (lib/engine/moments-layout.ts's MOMENTS_LAYOUT): kMomentsStride numbers in that order.
constexpr size_t kMomentsStride = 9;
inline void flattenMoments(const Moments& x, double* out) {
  const double vals[kMomentsStride] = {x.aa, x.bb, x.ab, x.dd, x.maxAbsDiff, static_cast<double>(x.nonFinite), x.absA, x.absB, x.absD};
  for (size_t k = 0; k < kMomentsStride; ++k) out[k] = vals[k];
}
void accumulateMoments(const void* a, Dtype ta, const void* b, Dtype tb, size_t n, Moments& m);

// out[i] = the f32 bit pattern of |fl32(x[i] - base[i])| (sign cleared): the magnitude part of the
// sparse methods' rank keys (sparsify.h). Scalar in sparse_select.cc, AVX2 in sparse_avx2.cc.
void absDeltaBits(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* out);

// "avx2+fma+f16c+avx512" (AVX-512F/DQ/BW/VL too), "avx2+fma+f16c" or "scalar": the path the dispatcher picked for this CPU.
const char* simdPathName();
// Tests force the scalar path to compare it with the SIMD one; returns the previous setting.
bool setSimdEnabled(bool enabled);

}  // namespace wm
