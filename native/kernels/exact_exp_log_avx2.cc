// exact_exp_log_simd.h's exp and log in 4 lanes of AVX2 + FMA.
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <cmath>
#include <cstddef>

#include "exact_exp_log_tables.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace wm {
namespace {

struct Avx2Lanes {
  using V = __m256d;
  using I = __m256i;
  using M = __m256d;
  static constexpr size_t kLanes = 4;
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V set(double d) { return _mm256_set1_pd(d); }
  static I seti(long long v) { return _mm256_set1_epi64x(v); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static V mul(V a, V b) {  // rounded on its own: never contracted into a following add
    V p = _mm256_mul_pd(a, b);
    __asm__("" : "+x"(p));
    return p;
  }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V fms(V a, V b, V c) { return _mm256_fmsub_pd(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm256_fnmadd_pd(a, b, c); }
  static V abs(V a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static M ge(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
  static M le(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LE_OQ); }
  static M lt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static M eq(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
  static M andM(M a, M b) { return _mm256_and_pd(a, b); }
  static M notM(M a) { return _mm256_xor_pd(a, _mm256_castsi256_pd(_mm256_set1_epi64x(-1))); }
  static unsigned maskBits(M m) { return static_cast<unsigned>(_mm256_movemask_pd(m)); }
  static I asI(V v) { return _mm256_castpd_si256(v); }
  static V asV(I v) { return _mm256_castsi256_pd(v); }
  static I iadd(I a, I b) { return _mm256_add_epi64(a, b); }
  static I isub(I a, I b) { return _mm256_sub_epi64(a, b); }
  static I iand(I a, I b) { return _mm256_and_si256(a, b); }
  static I ior(I a, I b) { return _mm256_or_si256(a, b); }
  template <int N>
  static I shl(I a) { return _mm256_slli_epi64(a, N); }
  template <int N>
  static I shr(I a) { return _mm256_srli_epi64(a, N); }
  static void pairs(const double* base, I offsets, V& first, V& second) {  // two 16-byte loads per 128-bit half, unpacked
    alignas(32) long long k[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(k), offsets);
    const V a = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(base + k[0])), _mm_loadu_pd(base + k[2]), 1);
    const V b = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(base + k[1])), _mm_loadu_pd(base + k[3]), 1);
    first = _mm256_unpacklo_pd(a, b);
    second = _mm256_unpackhi_pd(a, b);
  }
};

}  // namespace
}  // namespace wm

#include "exact_exp_log_simd.h"

namespace wm {

size_t avx2::expArray(const double* x, double* out, size_t n) {
  return avx512Enabled() ? expArray512(x, out, n) : exactexp::expOver<Avx2Lanes>(x, out, n);
}
size_t avx2::logArray(const double* x, double* out, size_t n) {
  return avx512Enabled() ? logArray512(x, out, n) : exactexp::logOver<Avx2Lanes>(x, out, n);
}

}  // namespace wm

#pragma GCC pop_options
#endif
