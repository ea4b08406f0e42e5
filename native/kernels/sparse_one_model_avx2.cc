// One model's sparse merge, bf16 in and out, 8 elements a step (sparse_one_model_avx2.h).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include "sparse_one_model_avx2.h"

#include <immintrin.h>

#include <type_traits>

#include "avx2_loads.h"
#include "exact_reciprocal.h"
#include "sparse_keep_avx2.h"

namespace wm {
namespace avx2 {
namespace {

// Where the keep rule comes from: the rank-key window and DARE's mask (sparse_keep_avx2.h), or a tensor-local job's keep bits.
enum class KeepRule { Window, Bits };
// The normalization: none, a multiply by the divisor's exact reciprocal, or the divide.
enum class Post { None, Multiply, Divide };

// The per-step constants of the arithmetic: e = ((x - base) * scale) & keep, v = weight * e, the normalization, then
// base + mixed * lambda, each product rounded alone (sparse_avx2.cc's M == 1 steps, in their order).
struct Arithmetic {
  __m256d scale, weight, lambda, divisor, factor;
};

template <Post P, bool Agree>
WM_AVX2_INLINE __m256d merged4(__m256d b, __m256d x, __m256i keep, const Arithmetic& c) {
  const __m256d e = _mm256_and_pd(_mm256_mul_pd(_mm256_sub_pd(x, b), c.scale), _mm256_castsi256_pd(keep));
  const __m256d v = rounded(_mm256_mul_pd(c.weight, e));
  __m256d mixed = v;
  if constexpr (P == Post::Multiply) mixed = _mm256_mul_pd(v, c.factor);
  if constexpr (P == Post::Divide) mixed = _mm256_div_pd(v, c.divisor);
  // Under a sign consensus the one model agrees where v is neither zero nor NaN; elsewhere +0.
  if constexpr (Agree) mixed = _mm256_and_pd(mixed, _mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_NEQ_OQ));
  return _mm256_add_pd(b, rounded(_mm256_mul_pd(mixed, c.lambda)));
}

template <KeepRule K, Post P, bool Agree>
__attribute__((target("avx2,fma,f16c"))) void oneModelLoop(const void* const* srcs, const SparseParams& p, const Arithmetic& c, uint64_t count,
                                                          uint64_t start, size_t n, void* out) {
  const SparseModel& m = p.models[0];
  const void* base = srcs[p.baseSource];
  const void* x = srcs[m.source];
  KeepSteps<false, true> steps(m, p.indexBits, count, start);
  const __m256i absMask = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i loBits = _mm256_set_epi64x(8, 4, 2, 1), hiBits = _mm256_set_epi64x(128, 64, 32, 16);
  for (size_t j = 0; j < n; j += 8) {
    const __m256 b32 = load8<Dtype::BF16>(base, j), x32 = load8<Dtype::BF16>(x, j);
    __m256i keepLo, keepHi;
    if constexpr (K == KeepRule::Bits) {
      // The step's 8 keep bits in every lane (one broadcast, not one per half), each lane testing its own.
      const __m256i bits = _mm256_set1_epi64x(keptBitsFrom(m.keepBits, start + j));
      keepLo = _mm256_cmpeq_epi64(_mm256_and_si256(bits, loBits), loBits);
      keepHi = _mm256_cmpeq_epi64(_mm256_and_si256(bits, hiBits), hiBits);
    } else {
      const __m256i a = _mm256_and_si256(_mm256_castps_si256(_mm256_sub_ps(x32, b32)), absMask);
      keepLo = steps.mask(_mm256_castsi256_si128(a));
      keepHi = steps.mask(_mm256_extracti128_si256(a, 1));
    }
    const __m256d lo = merged4<P, Agree>(_mm256_cvtps_pd(_mm256_castps256_ps128(b32)), _mm256_cvtps_pd(_mm256_castps256_ps128(x32)), keepLo, c);
    const __m256d hi = merged4<P, Agree>(_mm256_cvtps_pd(_mm256_extractf128_ps(b32, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(x32, 1)), keepHi, c);
    storeResult8<Dtype::BF16>(out, j, lo, hi);
  }
}

template <KeepRule K>
__attribute__((target("avx2,fma,f16c"))) void withPost(Post post, bool agree, const void* const* srcs, const SparseParams& p, const Arithmetic& c,
                                                      uint64_t count, uint64_t start, size_t n, void* out) {
  const auto run = [&](auto P) {
    if (agree) {
      oneModelLoop<K, decltype(P)::value, true>(srcs, p, c, count, start, n, out);
    } else {
      oneModelLoop<K, decltype(P)::value, false>(srcs, p, c, count, start, n, out);
    }
  };
  switch (post) {
    case Post::None: return run(std::integral_constant<Post, Post::None>{});
    case Post::Multiply: return run(std::integral_constant<Post, Post::Multiply>{});
    case Post::Divide: return run(std::integral_constant<Post, Post::Divide>{});
  }
}

}  // namespace

bool oneModelMergeApplies(Dtype sources, Dtype to, const SparseParams& p) {
  return p.models.size() == 1 && sources == Dtype::BF16 && to == Dtype::BF16 && p.indexBits <= 32;
}

__attribute__((target("avx2,fma,f16c"))) void sparseMergeOneModel(const void* const* srcs, const SparseParams& p, uint64_t count, uint64_t start, size_t n,
                                                                   void* out) {
  const SparseModel& m = p.models[0];
  const bool agree = p.consensus != Consensus::None;
  const double divisor = oneModelDivisor(p);
  const Post post = !p.normalize ? Post::None : hasExactReciprocal(divisor) ? Post::Multiply : Post::Divide;
  const Arithmetic c{_mm256_set1_pd(static_cast<double>(m.scale)), _mm256_set1_pd(m.weight), _mm256_set1_pd(p.lambda), _mm256_set1_pd(divisor),
                     _mm256_set1_pd(1.0 / divisor)};
  if (m.keepBits != nullptr) return withPost<KeepRule::Bits>(post, agree, srcs, p, c, count, start, n, out);
  withPost<KeepRule::Window>(post, agree, srcs, p, c, count, start, n, out);
}

}  // namespace avx2
}  // namespace wm

#endif  // WM_HAVE_AVX2_BACKEND
