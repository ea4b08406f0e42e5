// sce_avx512.h: SCE's merge arithmetic 8 elements per step, operation for operation sce_avx2.cc's combineLoop
// (native/tests/sce_selftest.cc checks both against the scalar truth, with AVX-512 on and off).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <algorithm>
#include <cmath>
#include <cstring>

#include "avx512_loads.h"
#include "sce_avx512.h"
#include "sce_avx512_variance.h"

namespace wm {
namespace avx2 {
namespace {

// Whether every weight is finite: then combine8's w_k * e_k (e_k 1 or 0) is a masked broadcast of w_k, +0 where e_k is 0. The product
// is -0 there for a negative w_k, which no result can tell apart: den's zeros all become max(1e-6, den), num starts from 0 + (never
// -0), and t * ±0 is ±0, or NaN for a t that is not finite either way. A NaN or Inf w_k times 0 is NaN: those multiply.
inline bool plainWeights(const double* weights, size_t m) {
  return std::all_of(weights, weights + m, [](double w) { return std::isfinite(w); });
}

// The scalar truth's operations on 8 elements: the sign election on the kept sum, then num and den added model by model,
// one division; signs as masks (a lane's sign agrees with the majority only if t * keep is > 0 under a majority of +1, or
// < 0 under -1: ±0 and NaN never agree). taskAt(k) gives model k's t (f64 of x_k - base); what both merge loops call.
template <typename TaskAt>
WM_AVX512_INLINE __m512d combine8(__m512d base, TaskAt taskAt, __m512d kept, const double* weights, size_t m, bool plainWeights) {
  const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0), denFloor = _mm512_set1_pd(1e-6);
  constexpr size_t kMaxCached = 8;  // each model's t * keep once for both loops (the rest computed again, the same bits)
  __m512d cached[kMaxCached];
  // The sums start from their first term, not from 0 + it as the scalar truth's: 0 + x is x but for x = -0, which gives +0, and
  // neither the majority's sign test (>= 0) nor den (a zero den of either sign becomes max(1e-6, den) = 1e-6) can tell the two
  // apart. num keeps its 0 +: a -0 there would reach base + num / den.
  __m512d majority = zero;
  for (size_t k = 0; k < m; ++k) {
    const __m512d tk = rounded8(_mm512_mul_pd(taskAt(k), kept));
    if (k < kMaxCached) cached[k] = tk;
    majority = k == 0 ? tk : _mm512_add_pd(majority, tk);
  }
  const __mmask8 positive = _mm512_cmp_pd_mask(majority, zero, _CMP_GE_OQ);  // the majority is +1 (NaN: -1)
  __m512d num = zero, den = zero;
  for (size_t k = 0; k < m; ++k) {
    const __m512d tk = k < kMaxCached ? cached[k] : rounded8(_mm512_mul_pd(taskAt(k), kept));
    const __mmask8 agree = (positive & _mm512_cmp_pd_mask(tk, zero, _CMP_GT_OQ)) | (~positive & _mm512_cmp_pd_mask(tk, zero, _CMP_LT_OQ));
    // w_k * e_k (e_k 1 or 0): one masked broadcast of w_k where every weight is finite (plainWeights).
    const __m512d ew = plainWeights ? _mm512_maskz_broadcastsd_pd(agree, _mm_load_sd(weights + k))
                                    : rounded8(_mm512_mul_pd(_mm512_set1_pd(weights[k]), _mm512_maskz_mov_pd(agree, one)));
    num = _mm512_add_pd(num, rounded8(_mm512_mul_pd(tk, ew)));
    den = k == 0 ? ew : _mm512_add_pd(den, ew);
  }
  // max(1e-6, den) as the 4-lane loop's: den unless den < 1e-6; a NaN den (a NaN or Inf weight) is returned, as std::max(den, 1e-6) does.
  return _mm512_add_pd(base, _mm512_div_pd(num, _mm512_max_pd(denFloor, den)));
}

// combine8's task vectors stored as f64 (model k's 8 lanes at t + k * stride), or held in registers (t[k]).
struct TasksInMemory {
  const double* t;
  size_t stride;
  WM_AVX512_INLINE __m512d operator()(size_t k) const { return _mm512_loadu_pd(t + k * stride); }
};
struct TasksInRegisters {
  const __m512d* t;
  WM_AVX512_INLINE __m512d operator()(size_t k) const { return t[k]; }
};

// combine8 over chunks of f64 task vectors in memory and keep masks (1.0 or 0.0).
template <Dtype TO>
__attribute__((target(WM_AVX512_TARGET))) void combineLoop8(const double* base, const double* t, size_t stride, const double* keep, const double* weights,
                                                            size_t m, size_t full, void* out, size_t at) {
  const bool plain = plainWeights(weights, m);
  for (size_t j = 0; j < full; j += 8) {
    storeResult8<TO>(out, at + j, combine8(_mm512_loadu_pd(base + j), TasksInMemory{t + j, stride}, _mm512_loadu_pd(keep + j), weights, m, plain));
  }
}

// out[j] = (double) x[j0 + j] (- base[j]) for j < full, eight at a time.
template <Dtype T, bool kMinusBase>
__attribute__((target(WM_AVX512_TARGET))) void loadLoop8(const void* x, size_t j0, size_t full, const double* base, double* out) {
  for (size_t j = 0; j < full; j += 8) {
    const __m512d v = _mm512_cvtps_pd(load8<T>(x, j0 + j));
    _mm512_storeu_pd(out + j, kMinusBase ? _mm512_sub_pd(v, _mm512_loadu_pd(base + j)) : v);
  }
}

// sce_avx2.cc's varianceLoop in 8 lanes (sce_avx512_variance.h).
__attribute__((target(WM_AVX512_TARGET))) void varianceLoop8(const double* t, size_t stride, size_t m, size_t full, uint32_t* bits) {
  for (size_t j = 0; j < full; j += 8) _mm256_storeu_si256(reinterpret_cast<__m256i*>(bits + j), sceVarianceBits8(t + j, stride, m));
}

}  // namespace

void sceTasksAvx512(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t full, double* base, double* t, size_t stride,
                    uint32_t* bits) {
  withDtype(types[p.base], [&](auto T) { loadLoop8<decltype(T)::value, false>(srcs[p.base], j0, full, nullptr, base); });
  for (size_t k = 0; k < p.sources.size(); ++k) {
    withDtype(types[p.sources[k]], [&](auto T) { loadLoop8<decltype(T)::value, true>(srcs[p.sources[k]], j0, full, base, t + k * stride); });
  }
  if (bits != nullptr) varianceLoop8(t, stride, p.sources.size(), full, bits);
}

namespace {

// The bits of dtype T's values: 16 lanes of their exponents (where Inf and NaN have every bit set) and a canonical NaN.
template <Dtype T>
struct Bits16 {
  static constexpr bool kWide = T == Dtype::F32;
  static constexpr uint32_t kExponent = kWide ? 0x7F800000u : T == Dtype::BF16 ? 0x7F80u : 0x7C00u;
  static constexpr uint32_t kNan = kWide ? 0x7FC00000u : T == Dtype::BF16 ? 0x7FC0u : 0x7E00u;
  static constexpr uint32_t kNegativeZero = kWide ? 0x80000000u : 0x8000u;
};

// Lanes `lanes` of the 16 elements of dtype T at i as 32-bit lanes (16-bit values widened with zeros), the others 0.
template <Dtype T>
WM_AVX512_INLINE __m512i loadBits16(const void* p, size_t i, __mmask16 lanes) {
  const bool all = lanes == kAllLanes16;  // a plain load (sce_avx512_variance.h)
  if constexpr (T == Dtype::F32) {
    const uint32_t* at = static_cast<const uint32_t*>(p) + i;
    return all ? _mm512_loadu_si512(at) : _mm512_maskz_loadu_epi32(lanes, at);
  } else {
    const uint16_t* at = static_cast<const uint16_t*>(p) + i;
    return _mm512_cvtepu16_epi32(all ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at)) : _mm256_maskz_loadu_epi16(lanes, at));
  }
}

// Lanes `lanes` of 16 32-bit values stored at p (as 16-bit values where T is 16-bit); plain where all 16 are.
template <Dtype T>
WM_AVX512_INLINE void storeBits16(void* p, size_t i, __mmask16 lanes, __m512i v) {
  const bool all = lanes == kAllLanes16;
  if constexpr (T == Dtype::F32) {
    uint32_t* at = static_cast<uint32_t*>(p) + i;
    if (all) {
      _mm512_storeu_si512(at, v);
    } else {
      _mm512_mask_storeu_epi32(at, lanes, v);
    }
  } else {
    uint16_t* at = static_cast<uint16_t*>(p) + i;
    if (all) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(at), _mm512_cvtepi32_epi16(v));
    } else {
      _mm256_mask_storeu_epi16(at, lanes, _mm512_cvtepi32_epi16(v));
    }
  }
}

template <Dtype T>
WM_AVX512_INLINE __mmask16 finite16(__m512i v, __mmask16 lanes) {
  const __m512i e = _mm512_set1_epi32(static_cast<int>(Bits16<T>::kExponent));
  return _mm512_mask_cmpneq_epi32_mask(lanes, _mm512_and_si512(v, e), e);
}

// bits[j] = 0 where base[j] and x[j] (dtype T) are finite, else the f32 variance NaN (sceVarianceBits8's 0x7FC00000), j < n.
template <Dtype T>
__attribute__((target(WM_AVX512_TARGET))) void finiteOrNanBits(const void* base, const void* x, size_t n, uint32_t* bits) {
  const __m512i nan = _mm512_set1_epi32(0x7FC00000);
  for (size_t j = 0; j < n; j += 16) {
    const __mmask16 lanes = n - j >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - j)) - 1);
    const __mmask16 finite = finite16<T>(loadBits16<T>(base, j, lanes), lanes) & finite16<T>(loadBits16<T>(x, j, lanes), lanes);
    storeBits16<Dtype::F32>(bits, j, lanes, _mm512_maskz_mov_epi32(static_cast<__mmask16>(~finite), nan));
  }
}

// round(base + 0) in dtype T from the base's bits b (16 lanes): the base itself but for -0, which becomes +0, and NaN (the f64 NaN
// rounded to T) in the lanes notFinite, where the base or a model is not finite. SCE's result wherever nothing is kept.
template <Dtype T>
WM_AVX512_INLINE __m512i baseOrNanBits16(__m512i b, __mmask16 notFinite) {
  const __m512i nan = _mm512_set1_epi32(static_cast<int>(Bits16<T>::kNan)), negativeZero = _mm512_set1_epi32(static_cast<int>(Bits16<T>::kNegativeZero));
  return _mm512_mask_mov_epi32(_mm512_maskz_mov_epi32(_mm512_cmpneq_epi32_mask(b, negativeZero), b), notFinite, nan);
}

// sceMergeNone (sce.h) where the base, the models and the output share dtype T: baseOrNanBits16, 16 lanes a step.
template <Dtype T>
__attribute__((target(WM_AVX512_TARGET))) void baseOrNan16(const void* const* srcs, const SceParams& p, size_t j0, size_t n, void* out) {
  for (size_t j = 0; j < n; j += 16) {
    const __mmask16 lanes = n - j >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m512i b = loadBits16<T>(srcs[p.base], j0 + j, lanes);
    __mmask16 finite = finite16<T>(b, lanes);
    for (const uint32_t s : p.sources) finite &= finite16<T>(loadBits16<T>(srcs[s], j0 + j, lanes), lanes);
    storeBits16<T>(out, j0 + j, lanes, baseOrNanBits16<T>(b, static_cast<__mmask16>(~finite)));
  }
}

// The 8-bit exponent fields of 16 f32.
WM_AVX512_INLINE __m512i exponentField16(__m512 v) { return _mm512_srli_epi32(_mm512_slli_epi32(_mm512_castps_si512(v), 1), 24); }

// The variance bits of two bf16 task vectors in f32, 16 lanes a step, where the f64 truth's operations are all exact: base and models
// normal (exponent fields 1 .. 254) and their exponent fields at most 16 apart. Then each is m * 2^s units of 2^L (m < 256, 0 <= s <= 16,
// L >= -133 the least field's unit), an integer below 2^24: t_k = x_k - b, their sum, mean = sum * 0.5, d = t_1 - mean = (x_1 - x_2) / 2
// = -(t_2 - mean) (at most 24 significant bits, below) and d^2 (at most 48) are exact in f64, v = (0 + d^2 + d^2) * 0.5 = d^2 exactly,
// and the bits are its one rounding to f32. In f32, a = x_1 - x_2 = 2^min(s) (m_1 2^(s_1 - min) - m_2) (one of them m 2^0), an integer
// below 255 * 2^16 + 255 < 2^24 times a unit >= 2^-149, and h = a * 0.5 are exact too, or a is Inf where |x_1 - x_2| >= 2^128, where
// d^2 >= 2^254 rounds to Inf as well; so h * h is that same one rounding: zero, subnormal or Inf alike, never NaN or -0. A step with a
// lane outside takes the f64 loop (sceVarianceBits8): 17 apart, a can need 25 bits (a zero or subnormal, field 0, would be exact as
// well; left to that loop).
// Returns how many elements it did (a multiple of 16); the caller does the rest.
__attribute__((target(WM_AVX512_TARGET))) size_t pairVarianceBits(const void* base, const void* x1, const void* x2, size_t n, uint32_t* bits) {
  const __m512i one = _mm512_set1_epi32(1), top = _mm512_set1_epi32(254), span = _mm512_set1_epi32(16);
  const __m512 half = _mm512_set1_ps(0.5f);
  size_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 b = load16<Dtype::BF16>(base, j), a1 = load16<Dtype::BF16>(x1, j), a2 = load16<Dtype::BF16>(x2, j);
    const __m512i eb = exponentField16(b), e1 = exponentField16(a1), e2 = exponentField16(a2);
    const __m512i least = _mm512_min_epu32(eb, _mm512_min_epu32(e1, e2)), most = _mm512_max_epu32(eb, _mm512_max_epu32(e1, e2));
    const __mmask16 exact = _mm512_cmpge_epu32_mask(least, one) & _mm512_cmple_epu32_mask(most, top) &
                            _mm512_cmple_epu32_mask(_mm512_sub_epi32(most, least), span);
    if (exact == kAllLanes16) {
      const __m512 h = _mm512_mul_ps(_mm512_sub_ps(a1, a2), half);
      _mm512_storeu_ps(reinterpret_cast<float*>(bits + j), _mm512_mul_ps(h, h));
      continue;
    }
    for (size_t q = j; q < j + 16; q += 8) {  // the f64 truth's operations, as varianceBitsOf's loop
      const __m512d bd = loadLanes8<Dtype::BF16>(base, q, kAllLanes8);
      const __m512d t[2] = {_mm512_sub_pd(loadLanes8<Dtype::BF16>(x1, q, kAllLanes8), bd), _mm512_sub_pd(loadLanes8<Dtype::BF16>(x2, q, kAllLanes8), bd)};
      storeLanes8(bits + q, kAllLanes8, sceVarianceBits8(reinterpret_cast<const double*>(t), 8, 2));
    }
  }
  return j;
}

// sceVarianceBits (sce.h) with the task vectors in registers, M models of dtype T: no f64 task vectors stored and read back.
template <Dtype T, size_t M>
__attribute__((target(WM_AVX512_TARGET))) void varianceBitsAt(const void* base, const void* const* x, size_t n, uint32_t* bits) {
  if constexpr (M == 1) {
    // One task vector: its mean is itself, so the variance is +0 where t is finite and NaN where it is not (Inf - Inf);
    // t = x - base in f64 of two f32 is finite exactly where both are. No conversion, no division.
    return finiteOrNanBits<T>(base, x[0], n, bits);
  }
  size_t j = 0;
  if constexpr (T == Dtype::BF16 && M == 2) j = pairVarianceBits(base, x[0], x[1], n, bits);
  for (; j < n; j += 8) {
    const __mmask8 lanes = n - j >= 8 ? 0xFF : static_cast<__mmask8>((1u << (n - j)) - 1);
    const __m512d b = loadLanes8<T>(base, j, lanes);
    __m512d t[M];
    for (size_t k = 0; k < M; ++k) t[k] = _mm512_sub_pd(loadLanes8<T>(x[k], j, lanes), b);
    storeLanes8(bits + j, lanes, sceVarianceBits8(reinterpret_cast<const double*>(t), 8, M));
  }
}

// varianceBitsAt of the sources p names.
template <Dtype T, size_t M>
void varianceBitsOf(const void* const* srcs, const SceParams& p, size_t n, uint32_t* bits) {
  const void* x[M];
  for (size_t k = 0; k < M; ++k) x[k] = srcs[p.sources[k]];
  varianceBitsAt<T, M>(srcs[p.base], x, n, bits);
}

}  // namespace

bool sceMergeNoneAvx512(const void* const* srcs, const Dtype* types, const SceParams& p, size_t j0, size_t len, void* out, Dtype to) {
  if (types[p.base] != to || !std::all_of(p.sources.begin(), p.sources.end(), [&](uint32_t s) { return types[s] == to; })) return false;
  withDtype(to, [&](auto T) { baseOrNan16<decltype(T)::value>(srcs, p, j0, len, out); });
  return true;
}

bool sceVarianceBitsAvx512(const void* const* srcs, const Dtype* types, const SceParams& p, size_t n, uint32_t* bits) {
  const Dtype type = types[p.base];
  if (p.sources.size() > 8 || !std::all_of(p.sources.begin(), p.sources.end(), [&](uint32_t s) { return types[s] == type; })) return false;
  withDtype(type, [&](auto T) {
    constexpr Dtype D = decltype(T)::value;
    switch (p.sources.size()) {
      case 1: return varianceBitsOf<D, 1>(srcs, p, n, bits);
      case 2: return varianceBitsOf<D, 2>(srcs, p, n, bits);
      case 3: return varianceBitsOf<D, 3>(srcs, p, n, bits);
      case 4: return varianceBitsOf<D, 4>(srcs, p, n, bits);
      case 5: return varianceBitsOf<D, 5>(srcs, p, n, bits);
      case 6: return varianceBitsOf<D, 6>(srcs, p, n, bits);
      case 7: return varianceBitsOf<D, 7>(srcs, p, n, bits);
      default: return varianceBitsOf<D, 8>(srcs, p, n, bits);
    }
  });
  return true;
}

__attribute__((target(WM_AVX512_TARGET))) uint64_t sceZeroBitsAvx512(const uint32_t* bits, size_t n, size_t* done) {
  uint64_t zeros = 0;
  size_t j = 0;
  for (; j + 16 <= n; j += 16) zeros += static_cast<uint64_t>(__builtin_popcount(_mm512_cmpeq_epi32_mask(_mm512_loadu_si512(bits + j), _mm512_setzero_si512())));
  *done = j;
  return zeros;
}

// keep[j] = 1.0 where element first + j's key reaches cut (sceKeeps8).
__attribute__((target(WM_AVX512_TARGET))) void sceKeepAvx512(const uint32_t* bits, uint32_t indexBits, uint64_t count, uint64_t first, uint64_t cut,
                                                             size_t full, double* keep) {
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(indexBits));
  const __m512i cuts = _mm512_set1_epi64(static_cast<long long>(cut)), eight = _mm512_set1_epi64(8);
  const __m512d one = _mm512_set1_pd(1.0);
  __m512i index = _mm512_sub_epi64(_mm512_set1_epi64(static_cast<long long>(count - 1 - first)), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
  for (size_t j = 0; j < full; j += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + j));
    _mm512_storeu_pd(keep + j, _mm512_maskz_mov_pd(sceKeeps8(v, index, shift, cuts), one));
    index = _mm512_sub_epi64(index, eight);
  }
}

__attribute__((target(WM_AVX512_TARGET))) void sceKeepOfBitsAvx512(const uint8_t* bytes, unsigned shift, size_t full, double* keep) {
  const __m512d one = _mm512_set1_pd(1.0);
  if (shift == 0) {
    for (size_t j = 0; j < full; j += 8) _mm512_storeu_pd(keep + j, _mm512_maskz_mov_pd(bytes[j / 8], one));
    return;
  }
  for (size_t j = 0; j < full; j += 8) {  // elements j .. j + 7: the high bits of one byte and the low bits of the next
    const unsigned two = bytes[j / 8] | static_cast<unsigned>(bytes[j / 8 + 1]) << 8;
    _mm512_storeu_pd(keep + j, _mm512_maskz_mov_pd(static_cast<__mmask8>(two >> shift), one));
  }
}

namespace {

// Elements packed per round of mergeKeptOnly: its packed sources and results stay in L1.
constexpr size_t kPackBlock = 512;
// _mm512_fpclass_ps_mask's classes of a value that is not finite: quiet NaN, +Inf, -Inf, signalling NaN.
constexpr int kNotFinite = 0x01 | 0x08 | 0x10 | 0x80;

// mergeInRegisters' elements e .. e + full - 1 (full a multiple of 16; keep bit j of them at bit shift + j of bytes) where the output
// has the sources' dtype and every weight is finite: combine8 on the kept elements alone, packed 8 to a vector, the results put back
// among the dropped ones. A dropped element's result is combine8's with keep 0, which is the base (t * 0 is +-0 and agrees with no
// sign, so num is +0 and den max(1e-6, +0)): its bits, -0 made +0, and NaN where the base or a model is not finite (t * 0 is NaN
// there), baseOrNanBits16. SCE's merge computes the sign election, the sums and the division for half the elements at select_topk 0.5.
template <Dtype T, size_t M>
__attribute__((target(WM_AVX512_TARGET))) void mergeKeptOnly(const void* base, const void* const* x, const double* weights, const uint8_t* bytes,
                                                             unsigned shift, size_t e, size_t full, void* out) {
  // The kept elements' sources as f32 (exact), 16 slots past a round for the last vector's stores, and their results as T. Only the
  // slots a round reads past what it wrote are zeroed (below): zeroing all of them took ~16 bytes of stores per element.
  alignas(64) float packedBase[kPackBlock + 16], packed[M][kPackBlock + 16];
  alignas(64) uint32_t results[kPackBlock + 16];
  __mmask16 keeps[kPackBlock / 16], notFinite[kPackBlock / 16];  // per 16 elements: kept, and dropped with a source not finite
  const __m512d one = _mm512_set1_pd(1.0);
  for (size_t r0 = 0; r0 < full; r0 += kPackBlock) {
    const size_t end = r0 + (full - r0 < kPackBlock ? full - r0 : kPackBlock);
    size_t kept = 0;
    for (size_t j = r0; j < end; j += 16) {
      // Bits j .. j + 15 from shift on: two bytes, and a third where shift reaches into it.
      const unsigned three = bytes[j / 8] | static_cast<unsigned>(bytes[j / 8 + 1]) << 8 | (shift != 0 ? static_cast<unsigned>(bytes[j / 8 + 2]) << 16 : 0u);
      const __mmask16 keep = static_cast<__mmask16>(three >> shift);
      const __m512 b = load16<T>(base, e + j);
      __mmask16 bad = _mm512_fpclass_ps_mask(b, kNotFinite);
      _mm512_storeu_ps(packedBase + kept, _mm512_maskz_compress_ps(keep, b));
      for (size_t k = 0; k < M; ++k) {
        const __m512 v = load16<T>(x[k], e + j);
        bad |= _mm512_fpclass_ps_mask(v, kNotFinite);
        _mm512_storeu_ps(packed[k] + kept, _mm512_maskz_compress_ps(keep, v));
      }
      keeps[(j - r0) / 16] = keep;
      notFinite[(j - r0) / 16] = bad & static_cast<__mmask16>(~keep);
      kept += static_cast<size_t>(__builtin_popcount(keep));
    }
    // The last vector's lanes past `kept` read zeros: computed, stored past the results, never put back.
    _mm256_storeu_ps(packedBase + kept, _mm256_setzero_ps());
    for (size_t k = 0; k < M; ++k) _mm256_storeu_ps(packed[k] + kept, _mm256_setzero_ps());
    for (size_t k = 0; k < kept; k += 8) {
      const __m512d b = _mm512_cvtps_pd(_mm256_load_ps(packedBase + k));
      __m512d t[M];
      for (size_t q = 0; q < M; ++q) t[q] = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_load_ps(packed[q] + k)), b);
      storeResult8<T>(results, k, combine8(b, TasksInRegisters{t}, one, weights, M, true));
    }
    std::memset(reinterpret_cast<uint8_t*>(results) + (kept + 7) / 8 * 8 * dtypeSize(T), 0, 16 * dtypeSize(T));  // the put-back's loads past them
    size_t at = 0;
    for (size_t j = r0; j < end; j += 16) {
      const __mmask16 keep = keeps[(j - r0) / 16];
      const __m512i dropped = baseOrNanBits16<T>(loadBits16<T>(base, e + j, kAllLanes16), notFinite[(j - r0) / 16]);
      storeBits16<T>(out, e + j, kAllLanes16, _mm512_mask_expand_epi32(dropped, keep, loadBits16<T>(results, at, kAllLanes16)));
      at += static_cast<size_t>(__builtin_popcount(keep));
    }
  }
}

// mergeKeptOnly for 16-bit T where the CPU has AVX-512 VBMI2 (vbmi2Enabled()): the sources packed and the results put back as they
// are, 32 to a 16-bit-lane vector, instead of 16 widened to 32 bits (SCE's merge in cache, 2 models, bf16: 0.73 -> 0.59 ns per element).
template <Dtype T, size_t M>
__attribute__((target(WM_AVX512_TARGET ",avx512vbmi2"))) void mergeKeptOnlyVbmi2(const void* base, const void* const* x, const double* weights,
                                                                                 const uint8_t* bytes, unsigned shift, size_t e, size_t full, void* out) {
  static_assert(T != Dtype::F32, "16-bit values");
  alignas(64) uint16_t packedBase[kPackBlock + 32], packed[M][kPackBlock + 32], results[kPackBlock + 32];  // zeroed where read past (as mergeKeptOnly)
  __mmask32 keeps[kPackBlock / 32], notFinite[kPackBlock / 32];  // per 32 elements: kept, and dropped with a source not finite
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512i exponent = _mm512_set1_epi16(static_cast<short>(Bits16<T>::kExponent)), nan = _mm512_set1_epi16(static_cast<short>(Bits16<T>::kNan));
  const __m512i negativeZero = _mm512_set1_epi16(static_cast<short>(Bits16<T>::kNegativeZero));
  const auto* b16 = static_cast<const uint16_t*>(base);
  for (size_t r0 = 0; r0 < full; r0 += kPackBlock) {
    const size_t end = r0 + (full - r0 < kPackBlock ? full - r0 : kPackBlock);
    size_t kept = 0;
    for (size_t j = r0; j < end; j += 32) {
      // Bits j .. j + 31 from shift on: four bytes, and a fifth where shift reaches into it.
      uint32_t four;
      std::memcpy(&four, bytes + j / 8, 4);
      const uint64_t five = four | (shift != 0 ? static_cast<uint64_t>(bytes[j / 8 + 4]) << 32 : 0u);
      const __mmask32 keep = static_cast<__mmask32>(five >> shift);
      const __m512i b = _mm512_loadu_si512(b16 + e + j);
      __mmask32 bad = _mm512_cmpeq_epi16_mask(_mm512_and_si512(b, exponent), exponent);  // Inf and NaN: every exponent bit set
      _mm512_storeu_si512(packedBase + kept, _mm512_maskz_compress_epi16(keep, b));
      for (size_t k = 0; k < M; ++k) {
        const __m512i v = _mm512_loadu_si512(static_cast<const uint16_t*>(x[k]) + e + j);
        bad |= _mm512_cmpeq_epi16_mask(_mm512_and_si512(v, exponent), exponent);
        _mm512_storeu_si512(packed[k] + kept, _mm512_maskz_compress_epi16(keep, v));
      }
      keeps[(j - r0) / 32] = keep;
      notFinite[(j - r0) / 32] = bad & ~keep;
      kept += static_cast<size_t>(__builtin_popcount(keep));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(packedBase + kept), _mm_setzero_si128());
    for (size_t k = 0; k < M; ++k) _mm_storeu_si128(reinterpret_cast<__m128i*>(packed[k] + kept), _mm_setzero_si128());
    for (size_t k = 0; k < kept; k += 8) {  // as mergeKeptOnly's, the last vector's lanes past `kept` never put back
      const __m512d b = _mm512_cvtps_pd(load8<T>(packedBase, k));
      __m512d t[M];
      for (size_t q = 0; q < M; ++q) t[q] = _mm512_sub_pd(_mm512_cvtps_pd(load8<T>(packed[q], k)), b);
      storeResult8<T>(results, k, combine8(b, TasksInRegisters{t}, one, weights, M, true));
    }
    std::memset(results + (kept + 7) / 8 * 8, 0, 32 * sizeof(uint16_t));
    size_t at = 0;
    for (size_t j = r0; j < end; j += 32) {  // baseOrNanBits16 in 16-bit lanes for the dropped elements
      const __mmask32 keep = keeps[(j - r0) / 32];
      const __m512i b = _mm512_loadu_si512(b16 + e + j);
      const __m512i dropped = _mm512_mask_mov_epi16(_mm512_maskz_mov_epi16(_mm512_cmpneq_epi16_mask(b, negativeZero), b), notFinite[(j - r0) / 32], nan);
      _mm512_storeu_si512(static_cast<uint16_t*>(out) + e + j, _mm512_mask_expand_epi16(dropped, keep, _mm512_loadu_si512(results + at)));
      at += static_cast<size_t>(__builtin_popcount(keep));
    }
  }
}

// How many elements a kept-only merge takes a step: 32 16-bit values with VBMI2 (mergeKeptOnlyVbmi2), else 16 (mergeKeptOnly).
template <Dtype T>
constexpr size_t keptOnlyStep(bool vbmi2) {
  return vbmi2 && T != Dtype::F32 ? 32 : 16;
}

// The kept-only merge of elements e .. e + full - 1 (full a multiple of keptOnlyStep<T>(vbmi2)): VBMI2's where it runs, else 32-bit lanes.
template <Dtype T, size_t M>
__attribute__((target(WM_AVX512_TARGET))) void mergeKeptOnlyWith(bool vbmi2, const void* base, const void* const* x, const double* weights,
                                                                 const uint8_t* bytes, unsigned shift, size_t e, size_t full, void* out) {
  if constexpr (T != Dtype::F32) {
    if (vbmi2) return mergeKeptOnlyVbmi2<T, M>(base, x, weights, bytes, shift, e, full, out);
  }
  mergeKeptOnly<T, M>(base, x, weights, bytes, shift, e, full, out);
}

// mergeInRegisters' elements e .. e + full - 1 (full a multiple of keptOnlyStep<T>(vbmi2)) where the keep bits come from
// variances computed here (no keep map), under mergeKeptOnly's other conditions: a round's variance bits (varianceBitsAt) and sceKeep's
// rule into keep bits, then the kept-only merge over them.
template <Dtype T, size_t M>
__attribute__((target(WM_AVX512_TARGET))) void mergeFreshKeptOnly(const void* base, const void* const* x, const SceParams& p, uint64_t count,
                                                                  uint64_t start, size_t e, size_t full, void* out, bool vbmi2) {
  alignas(64) uint32_t bits[kPackBlock];
  uint8_t keepBits[kPackBlock / 8 + 8] = {};
  const __m128i indexShift = _mm_cvtsi32_si128(static_cast<int>(p.indexBits));
  const __m512i cuts = _mm512_set1_epi64(static_cast<long long>(p.cut)), lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const size_t size = dtypeSize(T);
  for (size_t r0 = 0; r0 < full; r0 += kPackBlock) {
    const size_t len = full - r0 < kPackBlock ? full - r0 : kPackBlock, at = e + r0;
    const void* xs[M];
    for (size_t k = 0; k < M; ++k) xs[k] = static_cast<const uint8_t*>(x[k]) + at * size;
    varianceBitsAt<T, M>(static_cast<const uint8_t*>(base) + at * size, xs, len, bits);
    for (size_t q = 0; q < len; q += 8) {
      const __m512i index = _mm512_sub_epi64(_mm512_set1_epi64(static_cast<long long>(count - 1 - (start + at + q))), lane);
      keepBits[q / 8] = static_cast<uint8_t>(sceKeeps8(_mm256_load_si256(reinterpret_cast<const __m256i*>(bits + q)), index, indexShift, cuts));
    }
    mergeKeptOnlyWith<T, M>(vbmi2, base, x, p.weights.data(), keepBits, 0, at, len, out);
  }
}

// sceMerge (sce.h) of elements start .. start + n - 1 of count with the task vectors in registers, M models of dtype T: t = x - base,
// the keep bits (all kept: cut 0; from the keep map; or sceKeep's rule on the variance bits computed here) and combine8, with no f64
// task vectors or keep mask stored between loops.
template <Dtype T, Dtype TO, size_t M>
__attribute__((target(WM_AVX512_TARGET))) void mergeInRegisters(const void* const* srcs, const SceParams& p, uint64_t count, uint64_t start, size_t n,
                                                                void* out) {
  const void* base = srcs[p.base];
  const void* x[M];
  for (size_t k = 0; k < M; ++k) x[k] = srcs[p.sources[k]];
  const bool all = p.cut == 0, byMap = !all && p.keepMap != nullptr, fresh = !all && !byMap, plain = plainWeights(p.weights.data(), M);
  const bool vbmi2 = vbmi2Enabled();
  const __m512d one = _mm512_set1_pd(1.0);
  const __m128i indexShift = _mm_cvtsi32_si128(static_cast<int>(p.indexBits));
  const __m512i cuts = _mm512_set1_epi64(static_cast<long long>(p.cut)), lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  for (size_t j0 = 0; j0 < n;) {  // runs that do not cross a piece of the keep map
    const SceKeepMapRun keepRun = byMap ? sceKeepMapRun(p.keepMap, p.sumPiece, start + j0, n - j0) : SceKeepMapRun{n - j0, nullptr, 0};
    const size_t run = keepRun.length;
    const uint8_t* bytes = keepRun.bytes;
    const unsigned shift = keepRun.shift;
    size_t j = 0;  // the run's whole steps by the kept elements alone (keptOnlyStep), the rest below
    if (T == TO && plain && !all) {
      j = run - run % keptOnlyStep<T>(vbmi2);
      if (byMap) {
        mergeKeptOnlyWith<T, M>(vbmi2, base, x, p.weights.data(), bytes, shift, j0, j, out);
      } else {  // the keep bits from variances computed a round at a time, then the same
        mergeFreshKeptOnly<T, M>(base, x, p, count, start, j0, j, out, vbmi2);
      }
    }
    for (; j < run; j += 8) {
      const size_t e = j0 + j;
      const __mmask8 lanes = run - j >= 8 ? 0xFF : static_cast<__mmask8>((1u << (run - j)) - 1);
      const __m512d b = loadLanes8<T>(base, e, lanes);
      __m512d t[M];
      for (size_t k = 0; k < M; ++k) t[k] = _mm512_sub_pd(loadLanes8<T>(x[k], e, lanes), b);
      __mmask8 keep = lanes;
      if (byMap) {  // elements j .. j + 7 of the run: the high bits of one byte and, past the byte's end, the low bits of the next
        const unsigned two = bytes[j / 8] | (shift + (run - j < 8 ? run - j : 8) > 8 ? static_cast<unsigned>(bytes[j / 8 + 1]) << 8 : 0u);
        keep &= static_cast<__mmask8>(two >> shift);
      } else if (fresh) {
        const __m512i index = _mm512_sub_epi64(_mm512_set1_epi64(static_cast<long long>(count - 1 - (start + e))), lane);
        keep &= sceKeeps8(sceVarianceBits8(reinterpret_cast<const double*>(t), 8, M), index, indexShift, cuts);
      }
      const __m512d result = combine8(b, TasksInRegisters{t}, _mm512_maskz_mov_pd(keep, one), p.weights.data(), M, plain);
      if (lanes == 0xFF) {
        storeResult8<TO>(out, e, result);
      } else {  // the run's last few: rounded in 8 lanes, the first of them copied out
        alignas(32) uint8_t last[8 * 4];
        storeResult8<TO>(last, 0, result);
        std::memcpy(static_cast<uint8_t*>(out) + e * dtypeSize(TO), last, (run - j) * dtypeSize(TO));
      }
    }
    j0 += run;
  }
}

template <Dtype T, Dtype TO>
void mergeInRegisters(size_t m, const void* const* srcs, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out) {
  switch (m) {
    case 1: return mergeInRegisters<T, TO, 1>(srcs, p, count, start, n, out);
    case 2: return mergeInRegisters<T, TO, 2>(srcs, p, count, start, n, out);
    case 3: return mergeInRegisters<T, TO, 3>(srcs, p, count, start, n, out);
    case 4: return mergeInRegisters<T, TO, 4>(srcs, p, count, start, n, out);
    case 5: return mergeInRegisters<T, TO, 5>(srcs, p, count, start, n, out);
    case 6: return mergeInRegisters<T, TO, 6>(srcs, p, count, start, n, out);
    case 7: return mergeInRegisters<T, TO, 7>(srcs, p, count, start, n, out);
    default: return mergeInRegisters<T, TO, 8>(srcs, p, count, start, n, out);
  }
}

}  // namespace

bool sceMergeInRegistersAvx512(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                               Dtype to) {
  const Dtype type = types[p.base];
  const size_t m = p.sources.size();
  if (m == 0 || m > 8 || !std::all_of(p.sources.begin(), p.sources.end(), [&](uint32_t s) { return types[s] == type; })) return false;
  if (p.cut != 0 && p.keepMap == nullptr && p.varianceBits != nullptr) return false;  // stored variance bits without a keep map: the chunk path
  withDtype(type, [&](auto T) {
    withDtype(to, [&](auto TO) { mergeInRegisters<decltype(T)::value, decltype(TO)::value>(m, srcs, p, count, start, n, out); });
  });
  return true;
}

void sceCombineAvx512(const double* base, const double* t, size_t stride, const double* keep, const double* weights, size_t m, size_t full, void* out,
                      size_t at, Dtype to) {
  withDtype(to, [&](auto T) { combineLoop8<decltype(T)::value>(base, t, stride, keep, weights, m, full, out, at); });
}

}  // namespace avx2
}  // namespace wm

#endif
