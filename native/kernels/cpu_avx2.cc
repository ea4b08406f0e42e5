// AVX2 + FMA + F16C paths: 16 elements per step (two 8-lane halves), the ragged end through a
// padded stack copy so that it runs the very same vector code. Target attributes on the functions
// (no per-file compiler flags): both build systems compile this file like every other one.
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "avx2_loads.h"
#include "moment_lanes.h"
#include "moments_avx512.h"
#include "numerics.h"

#define WM_AVX2 __attribute__((target("avx2,fma,f16c")))
#define WM_AVX2_LAMBDA __attribute__((target("avx2,fma,f16c"), always_inline))

namespace wm {
namespace avx2 {
namespace {

constexpr size_t kStep = 16;

// ---- NaN and rounding helpers ----------------------------------------------------------------------

WM_AVX2_INLINE __m256 canonicalizeNaN(__m256 x) {
  const __m256 nan = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(num::kF32CanonicalNaN)));
  return _mm256_blendv_ps(x, nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

// c10's bf16 rounding on the bits, as 32-bit lanes holding the bf16 pattern in the low half.
// NaN lanes must already be canonical (0x7FC00000 rounds to 0x7FC0) or be fixed by the caller.
WM_AVX2_INLINE __m256i bf16Bits(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i biased = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb);
  return _mm256_srli_epi32(biased, 16);
}

// f32 -> bf16 as a conversion: any NaN becomes 0x7FC0.
WM_AVX2_INLINE __m256i bf16BitsConvert(__m256 x) {
  const __m256i r = bf16Bits(x);
  const __m256i isNan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(num::kBF16CanonicalNaN), isNan);
}

// f32 -> f16 as a conversion: F16C rounds to nearest even; a NaN keeps only its sign (| 0x7E00).
WM_AVX2_INLINE __m128i f16BitsConvert(__m256 x) {
  const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // F16C keeps the top payload bits of a NaN (always with the quiet bit set): clear them.
  const __m128i isNan = _mm_cmpgt_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7FFF)), _mm_set1_epi16(0x7C00));
  return _mm_andnot_si128(_mm_and_si128(isNan, _mm_set1_epi16(0x01FF)), h);
}

// R of lerpMi: round to t's precision and back, NaN canonical.
template <Dtype T>
WM_AVX2_INLINE __m256 roundTo(__m256 x) {
  x = canonicalizeNaN(x);
  if constexpr (T == Dtype::BF16) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i biased = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb);
    return _mm256_castsi256_ps(_mm256_and_si256(biased, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
  } else if constexpr (T == Dtype::F16) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else {
    return x;
  }
}

// ---- stores: 16 values (two halves) ------------------------------------------------------------------

// How much a store must still do: Convert applies c10's NaN rules; Canonical says NaN lanes
// already hold 0x7FC00000 (which every conversion maps to its dtype's canonical NaN); Exact also
// says every value is representable in T, so a bf16 store only takes the high halves.
enum class Ready { Convert, Canonical, Exact };

template <Dtype T, Ready K>
WM_AVX2_INLINE void store16(void* p, size_t i, __m256 lo, __m256 hi) {
  constexpr bool Canonical = K != Ready::Convert;
  if constexpr (T == Dtype::F32) {
    float* o = static_cast<float*>(p) + i;
    _mm256_storeu_ps(o, lo);
    _mm256_storeu_ps(o + 8, hi);
  } else if constexpr (T == Dtype::BF16) {
    __m256i rl, rh;
    if constexpr (K == Ready::Exact) {
      rl = _mm256_srli_epi32(_mm256_castps_si256(lo), 16);
      rh = _mm256_srli_epi32(_mm256_castps_si256(hi), 16);
    } else if constexpr (K == Ready::Canonical) {
      rl = bf16Bits(lo);
      rh = bf16Bits(hi);
    } else {
      rl = bf16BitsConvert(lo);
      rh = bf16BitsConvert(hi);
    }
    // packus works per 128-bit lane: [l0 h0 | l1 h1] -> reorder the quadwords to [l0 l1 | h0 h1].
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(rl, rh), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(p) + i), packed);
  } else {
    __m128i hl, hh;
    if constexpr (Canonical) {
      hl = _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      hh = _mm256_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else {
      hl = f16BitsConvert(lo);
      hh = f16BitsConvert(hi);
    }
    uint16_t* o = static_cast<uint16_t*>(p) + i;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), hl);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 8), hh);
  }
}

// All-bf16 kernels skip the widening loads and the lane fix-up after packing: unpacking 16 bf16
// with zeros yields lanes {0-3, 8-11} and {4-7, 12-15}, exactly the order packus puts back.
WM_AVX2_INLINE void loadBF16x16(const void* p, size_t i, __m256& lo, __m256& hi) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i));
  lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), v));
  hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), v));
}

// lo, hi: bf16 patterns in the low half of each 32-bit lane, in loadBF16x16's order.
WM_AVX2_INLINE void storeBF16x16(void* p, size_t i, __m256i lo, __m256i hi) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(p) + i), _mm256_packus_epi32(lo, hi));
}

// ---- the ragged end: copy it into zeroed 16-element buffers and run the same step on them --------

struct alignas(32) Pad {
  unsigned char bytes[kStep * 4];
};

inline const void* padIn(Pad& pad, const void* p, Dtype t, size_t i, size_t len) {
  std::memset(pad.bytes, 0, sizeof pad.bytes);
  const size_t es = dtypeSize(t);
  std::memcpy(pad.bytes, static_cast<const char*>(p) + i * es, len * es);
  return pad.bytes;
}

inline void padOut(const Pad& pad, void* p, Dtype t, size_t i, size_t len) {
  const size_t es = dtypeSize(t);
  std::memcpy(static_cast<char*>(p) + i * es, pad.bytes, len * es);
}

// Runs step(a, b, out, i) over [0, n) in steps of 16, then once on padded copies of the rest.
template <class Step>
WM_AVX2_INLINE void forEachStep2(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n,
                                 Step&& step) {
  const size_t full = n - n % kStep;
  for (size_t i = 0; i < full; i += kStep) step(a, b, out, i);
  if (full < n) {
    Pad pa, pb, po;
    const void* ra = padIn(pa, a, ta, full, n - full);
    const void* rb = padIn(pb, b, tb, full, n - full);
    step(ra, rb, static_cast<void*>(po.bytes), size_t{0});
    padOut(po, out, to, full, n - full);
  }
}

template <Dtype TA, Dtype TB, Dtype TO, bool Small>
WM_AVX2 void lerpExactLoop(const void* a, const void* b, void* out, size_t n, float w) {
  const __m256 coeff = _mm256_set1_ps(Small ? w : num::subRn(w, 1.0f));
  constexpr bool allBF16 = TA == Dtype::BF16 && TB == Dtype::BF16 && TO == Dtype::BF16;
  auto step = [coeff](const void* pa, const void* pb, void* po, size_t i) WM_AVX2_LAMBDA {
    __m256 x[2], y[2], r[2];
    if constexpr (allBF16) {
      loadBF16x16(pa, i, x[0], x[1]);
      loadBF16x16(pb, i, y[0], y[1]);
    } else {
      for (int h = 0; h < 2; ++h) {
        x[h] = load8<TA>(pa, i + 8 * h);
        y[h] = load8<TB>(pb, i + 8 * h);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const __m256 diff = _mm256_sub_ps(y[h], x[h]);
      r[h] = canonicalizeNaN(_mm256_fmadd_ps(coeff, diff, Small ? x[h] : y[h]));
    }
    if constexpr (allBF16) {
      storeBF16x16(po, i, bf16Bits(r[0]), bf16Bits(r[1]));
    } else {
      store16<TO, Ready::Canonical>(po, i, r[0], r[1]);
    }
  };
  forEachStep2(a, TA, b, TB, out, TO, n, step);
}

template <Dtype T, Dtype TO>
WM_AVX2 void lerpMiLoop(const void* a, const void* b, void* out, size_t n, float w) {
  const __m256 wv = _mm256_set1_ps(w);
  constexpr bool allBF16 = T == Dtype::BF16 && TO == Dtype::BF16;
  auto step = [wv](const void* pa, const void* pb, void* po, size_t i) WM_AVX2_LAMBDA {
    __m256 x[2], y[2], r[2];
    if constexpr (allBF16) {
      loadBF16x16(pa, i, x[0], x[1]);
      loadBF16x16(pb, i, y[0], y[1]);
    } else {
      for (int h = 0; h < 2; ++h) {
        x[h] = load8<T>(pa, i + 8 * h);
        y[h] = load8<T>(pb, i + 8 * h);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const __m256 d = roundTo<T>(_mm256_sub_ps(y[h], x[h]));
      __m256 prod = _mm256_mul_ps(d, wv);
      WM_OPAQUE(prod);  // the script rounds the product: never fuse it into the add
      const __m256 p = roundTo<T>(prod);
      r[h] = roundTo<T>(_mm256_add_ps(x[h], p));
    }
    if constexpr (allBF16) {
      storeBF16x16(po, i, _mm256_srli_epi32(_mm256_castps_si256(r[0]), 16),
                   _mm256_srli_epi32(_mm256_castps_si256(r[1]), 16));
    } else {
      // r holds t-values: exact in t, and in any wider dtype; bf16 <-> f16 still rounds.
      constexpr bool exact = TO == T || TO == Dtype::F32;
      store16<TO, exact ? Ready::Exact : Ready::Canonical>(po, i, r[0], r[1]);
    }
  };
  forEachStep2(a, T, b, T, out, TO, n, step);
}

template <Dtype TS, Dtype TO>
WM_AVX2 void convertLoop(const void* src, void* out, size_t n) {
  auto step = [](const void* ps, const void*, void* po, size_t i) WM_AVX2_LAMBDA {
    store16<TO, Ready::Convert>(po, i, load8<TS>(ps, i), load8<TS>(ps, i + 8));
  };
  forEachStep2(src, TS, src, TS, out, TO, n, step);
}

// linear: f32 accumulators for one L1-sized block at a time; sources are added in order.
constexpr size_t kLinearBlock = 1024;

template <Dtype TS>
WM_AVX2 void linearAccumulate(float* acc, const void* src, size_t start, size_t len, float w, bool first) {
  const __m256 wv = _mm256_set1_ps(w);
  size_t j = 0;
  for (; j + 8 <= len; j += 8) {
    const __m256 x = load8<TS>(src, start + j);
    const __m256 r = first ? _mm256_mul_ps(wv, x) : _mm256_fmadd_ps(wv, x, _mm256_loadu_ps(acc + j));
    _mm256_storeu_ps(acc + j, r);
  }
  if (j < len) {
    Pad pad;
    const void* rs = padIn(pad, src, TS, start + j, len - j);
    const __m256 x = load8<TS>(rs, 0);
    const __m256 r = first ? _mm256_mul_ps(wv, x) : _mm256_fmadd_ps(wv, x, _mm256_loadu_ps(acc + j));
    _mm256_storeu_ps(acc + j, r);  // acc has room for a whole vector past len (see linear)
  }
}

template <Dtype TO>
WM_AVX2 void linearStore(const float* acc, void* out, size_t start, size_t len) {
  size_t j = 0;
  for (; j + kStep <= len; j += kStep) {
    store16<TO, Ready::Canonical>(out, start + j, canonicalizeNaN(_mm256_loadu_ps(acc + j)),
                      canonicalizeNaN(_mm256_loadu_ps(acc + j + 8)));
  }
  if (j < len) {
    Pad po;
    store16<TO, Ready::Canonical>(po.bytes, 0, canonicalizeNaN(_mm256_loadu_ps(acc + j)),
                      canonicalizeNaN(_mm256_loadu_ps(acc + j + 8)));
    padOut(po, out, TO, start + j, len - j);
  }
}

// moments: lane l of the pair (lo, hi) of 4-wide f64 vectors is lane l of numerics.h's 8 lanes.
struct MomentLanes {
  __m256d aa[2], bb[2], ab[2], dd[2], absA[2], absB[2], absD[2], maxAbs;
  uint64_t nonFinite;
};

template <Dtype TA, Dtype TB>
WM_AVX2_INLINE void momentsStep8(MomentLanes& s, const void* a, const void* b, size_t i) {
  __m256 x = load8<TA>(a, i);
  __m256 y = load8<TB>(b, i);
  const __m256i expMask = _mm256_set1_epi32(0x7F800000);
  const __m256i xe = _mm256_and_si256(_mm256_castps_si256(x), expMask);
  const __m256i ye = _mm256_and_si256(_mm256_castps_si256(y), expMask);
  const __m256 bad =
      _mm256_castsi256_ps(_mm256_or_si256(_mm256_cmpeq_epi32(xe, expMask), _mm256_cmpeq_epi32(ye, expMask)));
  s.nonFinite += static_cast<uint64_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(bad))));
  // A skipped pair adds +0 to every sum, which leaves it unchanged (the sums are never -0).
  x = _mm256_andnot_ps(bad, x);
  y = _mm256_andnot_ps(bad, y);
  const __m256d signBit = _mm256_set1_pd(-0.0);
  for (int h = 0; h < 2; ++h) {
    const __m256d xd = _mm256_cvtps_pd(h == 0 ? _mm256_castps256_ps128(x) : _mm256_extractf128_ps(x, 1));
    const __m256d yd = _mm256_cvtps_pd(h == 0 ? _mm256_castps256_ps128(y) : _mm256_extractf128_ps(y, 1));
    __m256d xx = _mm256_mul_pd(xd, xd), yy = _mm256_mul_pd(yd, yd), xy = _mm256_mul_pd(xd, yd);
    const __m256d d = _mm256_sub_pd(yd, xd);
    __m256d d2 = _mm256_mul_pd(d, d);
    WM_OPAQUE(xx);
    WM_OPAQUE(yy);
    WM_OPAQUE(xy);
    WM_OPAQUE(d2);  // (b-a)^2 is rounded before it is added: never fused
    s.aa[h] = _mm256_add_pd(s.aa[h], xx);
    s.bb[h] = _mm256_add_pd(s.bb[h], yy);
    s.ab[h] = _mm256_add_pd(s.ab[h], xy);
    s.dd[h] = _mm256_add_pd(s.dd[h], d2);
    const __m256d absD = _mm256_andnot_pd(signBit, d);
    s.absA[h] = _mm256_add_pd(s.absA[h], _mm256_andnot_pd(signBit, xd));
    s.absB[h] = _mm256_add_pd(s.absB[h], _mm256_andnot_pd(signBit, yd));
    s.absD[h] = _mm256_add_pd(s.absD[h], absD);
    s.maxAbs = _mm256_max_pd(s.maxAbs, absD);
  }
}

template <Dtype TA, Dtype TB>
WM_AVX2 void momentsLoop(const void* a, const void* b, size_t n, Moments& m) {
  MomentLanes s;
  for (int h = 0; h < 2; ++h) s.aa[h] = s.bb[h] = s.ab[h] = s.dd[h] = s.absA[h] = s.absB[h] = s.absD[h] = _mm256_setzero_pd();
  s.maxAbs = _mm256_setzero_pd();
  s.nonFinite = 0;
  const size_t full = n - n % 8;
  for (size_t i = 0; i < full; i += 8) momentsStep8<TA, TB>(s, a, b, i);
  if (full < n) {
    Pad pa, pb;  // zero padding: (0, 0) pairs change nothing
    momentsStep8<TA, TB>(s, padIn(pa, a, TA, full, n - full), padIn(pb, b, TB, full, n - full), 0);
  }
  MomentLaneSums sums;
  const __m256d* halves[] = {s.aa, s.bb, s.ab, s.dd, s.absA, s.absB, s.absD};
  double* lanes[] = {sums.aa, sums.bb, sums.ab, sums.dd, sums.absA, sums.absB, sums.absD};
  for (int k = 0; k < 7; ++k) {
    _mm256_store_pd(lanes[k], halves[k][0]);
    _mm256_store_pd(lanes[k] + 4, halves[k][1]);
  }
  alignas(32) double mx[4];
  _mm256_store_pd(mx, s.maxAbs);
  sums.maxAbs = std::max(std::max(mx[0], mx[1]), std::max(mx[2], mx[3]));
  sums.nonFinite = s.nonFinite;
  addMomentLaneSums(m, sums);
}

}  // namespace

bool cpuSupported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

void lerpExact(const void* a, Dtype ta, const void* b, Dtype tb, void* out, Dtype to, size_t n, float w) {
  const bool small = num::lerpWeightIsSmall(w);
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) {
      withDtype(to, [&](auto O) {
        constexpr Dtype TA = decltype(A)::value, TB = decltype(B)::value, TO = decltype(O)::value;
        if (small) {
          lerpExactLoop<TA, TB, TO, true>(a, b, out, n, w);
        } else {
          lerpExactLoop<TA, TB, TO, false>(a, b, out, n, w);
        }
      });
    });
  });
}

void lerpMi(const void* a, const void* b, Dtype t, void* out, Dtype to, size_t n, float w) {
  withDtype(t, [&](auto T) {
    withDtype(to, [&](auto O) { lerpMiLoop<decltype(T)::value, decltype(O)::value>(a, b, out, n, w); });
  });
}

void convert(const void* src, Dtype ts, void* out, Dtype to, size_t n) {
  if (ts == to) {
    std::memcpy(out, src, n * dtypeSize(ts));
    return;
  }
  withDtype(ts, [&](auto S) {
    withDtype(to, [&](auto O) { convertLoop<decltype(S)::value, decltype(O)::value>(src, out, n); });
  });
}

void linear(const void* const* srcs, const Dtype* types, const float* w, size_t count, void* out, Dtype to,
            size_t n) {
  alignas(32) float acc[kLinearBlock + kStep];  // + a padded vector past the block's end
  withDtype(to, [&](auto O) {
    for (size_t start = 0; start < n; start += kLinearBlock) {
      const size_t len = std::min(kLinearBlock, n - start);
      std::fill(acc, acc + len + kStep, 0.0f);
      for (size_t k = 0; k < count; ++k) {
        withDtype(types[k], [&](auto S) {
          linearAccumulate<decltype(S)::value>(acc, srcs[k], start, len, w[k], k == 0);
        });
      }
      linearStore<decltype(O)::value>(acc, out, start, len);
    }
  });
}

void accumulateMoments(const void* a, Dtype ta, const void* b, Dtype tb, size_t n, Moments& m) {
  if (avx512Enabled()) return accumulateMomentsAvx512(a, ta, b, tb, n, m);
  withDtype(ta, [&](auto A) {
    withDtype(tb, [&](auto B) { momentsLoop<decltype(A)::value, decltype(B)::value>(a, b, n, m); });
  });
}

}  // namespace avx2
}  // namespace wm

#endif  // WM_HAVE_AVX2_BACKEND
