// exact_exp_log_simd.h's exp and log in 8 lanes of AVX-512F/DQ (run where avx2::avx512Enabled(), exact_exp_log.cc).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's _mm512_undefined_*() starts (avx512_loads.h)
#include <immintrin.h>

#include <cmath>
#include <cstddef>

#include "exact_exp_log_tables.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512dq")

namespace wm {
namespace {

struct Avx512Lanes {
  using V = __m512d;
  using I = __m512i;
  using M = __mmask8;
  static constexpr size_t kLanes = 8;
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V set(double d) { return _mm512_set1_pd(d); }
  static I seti(long long v) { return _mm512_set1_epi64(v); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static V mul(V a, V b) {  // rounded on its own: never contracted into a following add
    V p = _mm512_mul_pd(a, b);
    __asm__("" : "+v"(p));
    return p;
  }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V fms(V a, V b, V c) { return _mm512_fmsub_pd(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm512_fnmadd_pd(a, b, c); }
  static V abs(V a) { return _mm512_abs_pd(a); }
  static M ge(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
  static M le(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ); }
  static M lt(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static M eq(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
  static M andM(M a, M b) { return static_cast<M>(a & b); }
  static M notM(M a) { return static_cast<M>(~a); }
  static unsigned maskBits(M m) { return m; }
  static I asI(V v) { return _mm512_castpd_si512(v); }
  static V asV(I v) { return _mm512_castsi512_pd(v); }
  static I iadd(I a, I b) { return _mm512_add_epi64(a, b); }
  static I isub(I a, I b) { return _mm512_sub_epi64(a, b); }
  static I iand(I a, I b) { return _mm512_and_si512(a, b); }
  static I ior(I a, I b) { return _mm512_or_si512(a, b); }
  template <int N>
  static I shl(I a) { return _mm512_slli_epi64(a, N); }
  template <int N>
  static I shr(I a) { return _mm512_srli_epi64(a, N); }
  static void pairs(const double* base, I offsets, V& first, V& second) {  // 16-byte loads into each 128-bit lane, unpacked
    alignas(64) long long k[8];
    _mm512_store_si512(k, offsets);
    auto quad = [&](int l) {  // lanes l, l + 2, l + 4, l + 6
      const __m256d low = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(base + k[l])), _mm_loadu_pd(base + k[l + 2]), 1);
      const __m256d high = _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(base + k[l + 4])), _mm_loadu_pd(base + k[l + 6]), 1);
      return _mm512_insertf64x4(_mm512_castpd256_pd512(low), high, 1);
    };
    const V a = quad(0), b = quad(1);
    first = _mm512_unpacklo_pd(a, b);
    second = _mm512_unpackhi_pd(a, b);
  }
};

}  // namespace
}  // namespace wm

#include "exact_exp_log_simd.h"

namespace wm {

size_t avx2::expArray512(const double* x, double* out, size_t n) { return exactexp::expOver<Avx512Lanes>(x, out, n); }
size_t avx2::logArray512(const double* x, double* out, size_t n) { return exactexp::logOver<Avx512Lanes>(x, out, n); }

}  // namespace wm

#pragma GCC pop_options
#endif
