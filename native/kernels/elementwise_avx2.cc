// AVX2 paths of nearswap's merge and RAM's merge and counts (elementwise.h), equal bit for bit to the scalar truths in
// elementwise.cc (native/tests/kernels_selftest.cc checks it on random inputs with special values).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "avx2_loads.h"
#include "elementwise.h"
#include "elementwise_avx512.h"

namespace wm {
namespace avx2 {
namespace {

// Whether every source RAM reads has the base's dtype (the vector loops load one dtype).
bool sameDtype(const Dtype* types, const RamParams& p) {
  if (p.sources.size() > kMaxRamModels) return false;
  for (uint32_t s : p.sources) {
    if (types[s] != types[p.base]) return false;
  }
  return true;
}

// Sources 0 .. count - 1 advanced by `full` elements, for the scalar truth on the ragged end.
std::vector<const void*> advanced(const void* const* srcs, const Dtype* types, size_t count, size_t full) {
  std::vector<const void*> rest(srcs, srcs + count);
  for (size_t s = 0; s < count; ++s) rest[s] = static_cast<const uint8_t*>(srcs[s]) + full * dtypeSize(types[s]);
  return rest;
}

// How many of the job's sources RAM's indices reach.
size_t sourceCount(const RamParams& p) {
  size_t count = p.base + 1;
  for (uint32_t s : p.sources) count = std::max<size_t>(count, s + 1);
  return count;
}

template <Dtype T, Dtype TO>
__attribute__((target("avx2,fma,f16c"))) void ramMergeLoop(const void* const* srcs, const RamParams& p, size_t n, void* out) {
  const size_t m = p.sources.size();
  const __m128 eps = _mm_set1_ps(p.epsilon), absMask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
  const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
  __m256d lambda[kMaxRamModels], d[kMaxRamModels], mask[kMaxRamModels];
  for (size_t k = 0; k < m; ++k) lambda[k] = _mm256_set1_pd(p.lambda[k]);
  for (size_t j = 0; j + 4 <= n; j += 4) {
    const __m128 b32 = load4<T>(srcs[p.base], j);
    const __m256d b = _mm256_cvtps_pd(b32);
    __m128i c = _mm_setzero_si128();
    for (size_t k = 0; k < m; ++k) {
      const __m128 x32 = load4<T>(srcs[p.sources[k]], j);
      d[k] = _mm256_sub_pd(_mm256_cvtps_pd(x32), b);
      // |fl32(x - base)| > epsilon, ordered (NaN: false); -1 where true.
      const __m128i m32 = _mm_castps_si128(_mm_cmp_ps(_mm_and_ps(_mm_sub_ps(x32, b32), absMask), eps, _CMP_GT_OQ));
      mask[k] = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(m32));
      c = _mm_sub_epi32(c, m32);
    }
    // u = (c == 1), o = (c > 1), div = c > 1 ? c : 1, as f64 lanes.
    const __m256d cd = _mm256_cvtepi32_pd(c);
    const __m256d u = _mm256_and_pd(_mm256_cmp_pd(cd, one, _CMP_EQ_OQ), one);
    const __m256d many = _mm256_cmp_pd(cd, one, _CMP_GT_OQ);
    const __m256d o = _mm256_and_pd(many, one), div = _mm256_blendv_pd(one, cd, many);
    // Where no lane is shared every divisor is 1, and x / 1 is x bit for bit (a NaN here is already quiet):
    // the division, the loop's slowest instruction, is skipped for such steps.
    const bool anyShared = _mm256_movemask_pd(many) != 0;
    __m256d sum = zero;
    for (size_t k = 0; k < m; ++k) {
      const __m256d z = _mm256_blendv_pd(rounded(_mm256_mul_pd(d[k], zero)), d[k], mask[k]);  // d * 0 keeps NaN and Inf as NaN
      const __m256d unique = rounded(_mm256_mul_pd(rounded(_mm256_mul_pd(z, u)), lambda[k]));
      const __m256d zo = rounded(_mm256_mul_pd(z, o));
      const __m256d shared = anyShared ? _mm256_div_pd(zo, div) : zo;
      sum = _mm256_add_pd(sum, _mm256_add_pd(unique, shared));
    }
    storeResult4<TO>(out, j, _mm256_add_pd(b, sum));
  }
}

// RAM with one model, 4 lanes of a step: b + (0 + (z * lambda + z * 0)), z = d where |fl32(x - base)| > epsilon (-1 in `m32`),
// else d * 0. With one model the count c is the mask, so the general loop's terms reduce to these bit for bit: z * u is z (u = 1
// where the mask holds; where not, z is ±0 or a NaN, which z * 0 leaves as it is), and (z * o) / div is z * 0 (o = 0, div = 1).
WM_AVX2_INLINE __m256d ramOneModelHalf(__m128 b32, __m128 x32, __m128i m32, __m256d lambda) {
  const __m256d zero = _mm256_setzero_pd();
  const __m256d b = _mm256_cvtps_pd(b32), d = _mm256_sub_pd(_mm256_cvtps_pd(x32), b);
  const __m256d z = _mm256_blendv_pd(rounded(_mm256_mul_pd(d, zero)), d, _mm256_castsi256_pd(_mm256_cvtepi32_epi64(m32)));
  const __m256d term = _mm256_add_pd(rounded(_mm256_mul_pd(z, lambda)), rounded(_mm256_mul_pd(z, zero)));
  return _mm256_add_pd(b, _mm256_add_pd(zero, term));
}

// RAM with one model, 8 elements a step: the mask is one 8-lane f32 compare, the 8 results one store.
template <Dtype T, Dtype TO>
__attribute__((target("avx2,fma,f16c"))) void ramOneModelLoop(const void* base, const void* model, const RamParams& p, size_t n, void* out) {
  const __m256 eps = _mm256_set1_ps(p.epsilon), absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256d lambda = _mm256_set1_pd(p.lambda[0]);
  for (size_t j = 0; j + 8 <= n; j += 8) {
    const __m256 b8 = load8<T>(base, j), x8 = load8<T>(model, j);
    const __m256i m8 = _mm256_castps_si256(_mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(x8, b8), absMask), eps, _CMP_GT_OQ));
    const __m256d lo = ramOneModelHalf(_mm256_castps256_ps128(b8), _mm256_castps256_ps128(x8), _mm256_castsi256_si128(m8), lambda);
    const __m256d hi = ramOneModelHalf(_mm256_extractf128_ps(b8, 1), _mm256_extractf128_ps(x8, 1), _mm256_extracti128_si256(m8, 1), lambda);
    storeResult8<TO>(out, j, lo, hi);
  }
}

template <Dtype T>
__attribute__((target("avx2,fma,f16c"))) void ramCountsLoop(const void* const* srcs, const RamParams& p, size_t n, uint64_t* shared, uint64_t* unique) {
  const size_t m = p.sources.size();
  const __m256 eps = _mm256_set1_ps(p.epsilon), absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256i oneI = _mm256_set1_epi32(1);
  __m256i mask[kMaxRamModels];
  for (size_t j = 0; j + 8 <= n; j += 8) {
    const __m256 b = load8<T>(srcs[p.base], j);
    __m256i c = _mm256_setzero_si256();
    for (size_t k = 0; k < m; ++k) {
      mask[k] = _mm256_castps_si256(_mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(load8<T>(srcs[p.sources[k]], j), b), absMask), eps, _CMP_GT_OQ));
      c = _mm256_sub_epi32(c, mask[k]);
    }
    const __m256i alone = _mm256_cmpeq_epi32(c, oneI), many = _mm256_cmpgt_epi32(c, oneI);
    for (size_t k = 0; k < m; ++k) {
      unique[k] += static_cast<uint64_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_and_si256(mask[k], alone))))));
      shared[k] += static_cast<uint64_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_and_si256(mask[k], many))))));
    }
  }
}

// nearswap, 4 elements (f64 lanes) per step, term by term as the scalar truth.
template <Dtype T, Dtype TO>
__attribute__((target("avx2,fma,f16c"))) void nearswapLoop(const void* a, const void* b, double t, size_t n, void* out) {
  const __m256d absMask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
  const __m256d floor = _mm256_set1_pd(1e-6), tv = _mm256_set1_pd(t), zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
  for (size_t j = 0; j + 4 <= n; j += 4) {
    const __m256d x = _mm256_cvtps_pd(load4<T>(a, j)), y = _mm256_cvtps_pd(load4<T>(b, j));
    const __m256d diff = _mm256_and_pd(_mm256_sub_pd(x, y), absMask);
    // Ordered compares: a NaN difference (and so a NaN w) passes through both, as the scalar ternaries let it.
    __m256d w = _mm256_div_pd(tv, _mm256_blendv_pd(diff, floor, _mm256_cmp_pd(diff, floor, _CMP_LT_OQ)));
    w = _mm256_blendv_pd(w, zero, _mm256_cmp_pd(w, zero, _CMP_LT_OQ));
    w = _mm256_blendv_pd(w, one, _mm256_cmp_pd(w, one, _CMP_GT_OQ));
    const __m256d r = _mm256_add_pd(rounded(_mm256_mul_pd(w, y)), rounded(_mm256_mul_pd(_mm256_sub_pd(one, w), x)));
    storeResult4<TO>(out, j, r);
  }
}

}  // namespace

void nearswapMerge(const void* const* srcs, const Dtype* types, const NearswapParams& p, size_t n, void* out, Dtype to) {
  const bool same = types[p.base] == types[p.model];
  // 8 lanes with AVX-512 where the CPU has it, then 4 lanes from `wide` on.
  const size_t wide = same && avx512Enabled() ? n - n % 8 : 0;
  if (wide > 0) nearswapAvx512(srcs[p.base], srcs[p.model], types[p.base], p.t, wide, out, to);
  const size_t full = same ? n - n % 4 : 0;
  if (full > wide) {
    const size_t at = wide * dtypeSize(types[p.base]);
    withDtype(types[p.base], [&](auto T) {
      withDtype(to, [&](auto O) {
        nearswapLoop<decltype(T)::value, decltype(O)::value>(static_cast<const uint8_t*>(srcs[p.base]) + at, static_cast<const uint8_t*>(srcs[p.model]) + at, p.t,
                                                             full - wide, static_cast<uint8_t*>(out) + wide * dtypeSize(to));
      });
    });
  }
  if (full == n) return;
  // Mixed dtypes and the ragged end: the scalar truth, on the elements from `full` on.
  const std::vector<const void*> rest = advanced(srcs, types, std::max(p.base, p.model) + 1, full);
  scalar::nearswapMerge(rest.data(), types, p, n - full, static_cast<uint8_t*>(out) + full * dtypeSize(to), to);
}

void ramMerge(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n, void* out, Dtype to) {
  const bool same = sameDtype(types, p);
  // 8 lanes with AVX-512 where the CPU has it, then 4 lanes, then the scalar truth on the ragged end.
  const size_t wide = same && avx512Enabled() ? n - n % 8 : 0;
  if (wide > 0) ramMergeAvx512(srcs, types[p.base], p, wide, out, to);
  if (wide == n) return;
  std::vector<const void*> rest;
  const void* const* at = srcs;
  if (wide > 0) {
    rest = advanced(srcs, types, sourceCount(p), wide);
    at = rest.data();
  }
  uint8_t* restOut = static_cast<uint8_t*>(out) + wide * dtypeSize(to);
  // One model: 8 a step (a whole number of them); several: 4.
  const size_t step = p.sources.size() == 1 ? 8 : 4;
  const size_t full = same ? (n - wide) - (n - wide) % step : 0;
  if (full > 0) {
    withDtype(types[p.base], [&](auto T) {
      withDtype(to, [&](auto O) {
        if (step == 8) {
          ramOneModelLoop<decltype(T)::value, decltype(O)::value>(at[p.base], at[p.sources[0]], p, full, restOut);
        } else {
          ramMergeLoop<decltype(T)::value, decltype(O)::value>(at, p, full, restOut);
        }
      });
    });
  }
  if (wide + full == n) return;
  const std::vector<const void*> tail = advanced(at, types, sourceCount(p), full);
  scalar::ramMerge(tail.data(), types, p, n - wide - full, restOut + full * dtypeSize(to), to);
}

void ramCounts(const void* const* srcs, const Dtype* types, const RamParams& p, size_t n, uint64_t* shared, uint64_t* unique) {
  const size_t full = sameDtype(types, p) ? n - n % 8 : 0;
  if (full > 0) withDtype(types[p.base], [&](auto T) { ramCountsLoop<decltype(T)::value>(srcs, p, full, shared, unique); });
  if (full == n) return;
  const std::vector<const void*> rest = advanced(srcs, types, sourceCount(p), full);
  scalar::ramCounts(rest.data(), types, p, n - full, shared, unique);
}

}  // namespace avx2
}  // namespace wm

#endif  // WM_HAVE_AVX2_BACKEND
