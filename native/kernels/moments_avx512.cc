// moments_avx512.h: cpu_avx2.cc's momentsLoop with one 8-lane f64 register per sum instead of two 4-lane halves.
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <algorithm>
#include <cstring>

#include "avx512_loads.h"
#include "moment_lanes.h"
#include "moments_avx512.h"

namespace wm {
namespace avx2 {
namespace {

struct MomentLanes8 {
  __m512d aa, bb, ab, dd, absA, absB, absD, maxAbs;
  uint64_t nonFinite;
};

// Elements i .. i + 7: a pair with a NaN or Inf side counted and zeroed (a (0, 0) pair adds +0 to every sum, which leaves
// it unchanged: the sums are never -0), the rest summed term by term as the scalar truth, each product rounded before its add.
template <Dtype TA, Dtype TB>
WM_AVX512_INLINE void momentsStep8(MomentLanes8& s, const void* a, const void* b, size_t i) {
  const __m256 x = load8<TA>(a, i), y = load8<TB>(b, i);
  const __m256i expMask = _mm256_set1_epi32(0x7F800000);
  const __mmask8 bad = _mm256_cmpeq_epi32_mask(_mm256_and_si256(_mm256_castps_si256(x), expMask), expMask) |
                       _mm256_cmpeq_epi32_mask(_mm256_and_si256(_mm256_castps_si256(y), expMask), expMask);
  s.nonFinite += static_cast<uint64_t>(__builtin_popcount(bad));
  const __m512d xd = _mm512_cvtps_pd(_mm256_maskz_mov_ps(static_cast<__mmask8>(~bad), x));
  const __m512d yd = _mm512_cvtps_pd(_mm256_maskz_mov_ps(static_cast<__mmask8>(~bad), y));
  const __m512d d = _mm512_sub_pd(yd, xd);
  s.aa = _mm512_add_pd(s.aa, rounded8(_mm512_mul_pd(xd, xd)));
  s.bb = _mm512_add_pd(s.bb, rounded8(_mm512_mul_pd(yd, yd)));
  s.ab = _mm512_add_pd(s.ab, rounded8(_mm512_mul_pd(xd, yd)));
  s.dd = _mm512_add_pd(s.dd, rounded8(_mm512_mul_pd(d, d)));
  const __m512d absD = _mm512_abs_pd(d);
  s.absA = _mm512_add_pd(s.absA, _mm512_abs_pd(xd));
  s.absB = _mm512_add_pd(s.absB, _mm512_abs_pd(yd));
  s.absD = _mm512_add_pd(s.absD, absD);
  s.maxAbs = _mm512_max_pd(s.maxAbs, absD);
}

template <Dtype TA, Dtype TB>
__attribute__((target(WM_AVX512_TARGET))) void momentsLoop8(const void* a, const void* b, size_t n, Moments& m) {
  const __m512d zero = _mm512_setzero_pd();
  MomentLanes8 s{zero, zero, zero, zero, zero, zero, zero, zero, 0};
  const size_t full = n - n % 8;
  for (size_t i = 0; i < full; i += 8) momentsStep8<TA, TB>(s, a, b, i);
  if (full < n) {
    // The last elements through zero-padded copies: (0, 0) pairs change nothing.
    alignas(32) unsigned char pa[32] = {}, pb[32] = {};
    std::memcpy(pa, static_cast<const unsigned char*>(a) + full * dtypeSize(TA), (n - full) * dtypeSize(TA));
    std::memcpy(pb, static_cast<const unsigned char*>(b) + full * dtypeSize(TB), (n - full) * dtypeSize(TB));
    momentsStep8<TA, TB>(s, pa, pb, 0);
  }
  MomentLaneSums sums;
  const __m512d* sets[] = {&s.aa, &s.bb, &s.ab, &s.dd, &s.absA, &s.absB, &s.absD};
  double* lanes[] = {sums.aa, sums.bb, sums.ab, sums.dd, sums.absA, sums.absB, sums.absD};
  for (int k = 0; k < 7; ++k) _mm512_store_pd(lanes[k], *sets[k]);
  alignas(64) double mx[8];
  _mm512_store_pd(mx, s.maxAbs);
  sums.maxAbs = *std::max_element(mx, mx + 8);
  sums.nonFinite = s.nonFinite;
  addMomentLaneSums(m, sums);
}

}  // namespace

void accumulateMomentsAvx512(const void* a, Dtype ta, const void* b, Dtype tb, size_t n, Moments& m) {
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) { momentsLoop8<decltype(A)::value, decltype(B)::value>(a, b, n, m); });
  });
}

}  // namespace avx2
}  // namespace wm
#endif
