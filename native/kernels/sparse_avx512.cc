// sparse_avx512.h: the sparse kernels twice as wide as sparse_avx2.cc's, with AVX-512's unsigned 64-bit
// compares, mask registers, VPMULLQ and VPCOMPRESSQ (the AVX2 merge spent ~70 instructions per 4 elements).
// Every operation is the AVX2 loop's, lane for lane (kernels_selftest.cc checks both against scalar).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "avx2_splitmix.h"
#include "avx512_loads.h"
#include "numerics.h"
#include "sparse_avx512.h"
#include "sparse_merge_shapes.h"

namespace wm {
namespace avx2 {
namespace {

struct ModelLanes8 {
  __m512i low, high;  // keep low <= key < high
  bool masked;        // 0 < density < 1
  __m512i maskLimit;  // keep when (u >> 11) < ceil(density * 2^53): bernoulliKeep's double compare, in integers
  __m512i counter;    // seedKey + (i + 1) * golden for the step's 8 elements
  __m512d scale, weight;
  const uint8_t* bits;  // SparseModel::keepBits: the keep rule read, not computed
};

// sparse_avx2.cc's sparseMergeLoop, 8 lanes per step (M, C as there).
template <Dtype T, Dtype TO, size_t M, Consensus C>
__attribute__((target(WM_AVX512_TARGET))) void sparseMergeLoop8(const void* const* srcs, const SparseParams& p, uint64_t count, uint64_t start,
                                                                size_t n, void* out) {
  const size_t m = M > 0 ? M : p.models.size();
  const void* base = srcs[p.baseSource];
  ModelLanes8 lanes[kSimdSparseMaxModels];
  double wsum = 0;
  for (size_t k = 0; k < m; ++k) {
    const SparseModel& sm = p.models[k];
    ModelLanes8& l = lanes[k];
    l.low = _mm512_set1_epi64(static_cast<long long>(sm.lowKey));
    l.high = _mm512_set1_epi64(static_cast<long long>(sm.highKey));
    l.masked = sm.density > 0 && sm.density < 1;
    l.bits = sm.keepBits;
    l.maskLimit = _mm512_set1_epi64(l.masked ? static_cast<long long>(std::ceil(sm.density * 0x1.0p53)) : 0);
    l.counter = splitmixCounters8(sm.seedKey, start);
    l.scale = _mm512_set1_pd(static_cast<double>(sm.scale));
    l.weight = _mm512_set1_pd(sm.weight);
    wsum = k == 0 ? sm.weight : wsum + sm.weight;
  }
  const __m512i step = _mm512_set1_epi64(static_cast<long long>(8 * kSplitmixGolden));
  const double constDiv = weightSumDivisor(wsum);
  const __m256i absMask = _mm256_set1_epi32(0x7FFFFFFF);
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(p.indexBits));
  // Rank keys' low part, count - 1 - i, for the step's 8 elements.
  __m512i rev = _mm512_sub_epi64(_mm512_set1_epi64(static_cast<long long>(count - 1 - start)), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
  const __m512i eight = _mm512_set1_epi64(8);
  const __m512d lambda = _mm512_set1_pd(p.lambda), zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
  // One model with a sign consensus: as sparse_avx2.cc's soleDiv.
  const __m512d soleDiv = _mm512_set1_pd(p.models.empty() ? 1.0 : agreeingDivisor(0.0 + p.models[0].weight));
  __m512d vs[kSimdSparseMaxModels];
  for (size_t j = 0; j + 8 <= n; j += 8) {
    const __m256 b32 = load8<T>(base, j);
    const __m512d b = _mm512_cvtps_pd(b32);
    __m512d sum = zero;
    __m512i signs = _mm512_setzero_si512();
    for (size_t k = 0; k < m; ++k) {
      ModelLanes8& l = lanes[k];
      const __m256 x32 = load8<T>(srcs[p.models[k].source], j);
      __mmask8 keep;
      if (l.bits != nullptr) {
        keep = static_cast<__mmask8>(keptBitsFrom(l.bits, start + j));
      } else {
        const __m256i abs = _mm256_and_si256(_mm256_castps_si256(_mm256_sub_ps(x32, b32)), absMask);
        const __m512i key = _mm512_or_si512(_mm512_sll_epi64(_mm512_cvtepu32_epi64(abs), shift), rev);
        keep = _mm512_mask_cmplt_epu64_mask(_mm512_cmpge_epu64_mask(key, l.low), key, l.high);
        if (l.masked) {
          keep = _mm512_mask_cmplt_epu64_mask(keep, _mm512_srli_epi64(splitmix64x8(l.counter), 11), l.maskLimit);
          l.counter = _mm512_add_epi64(l.counter, step);
        }
      }
      const __m512d e = _mm512_maskz_mov_pd(keep, _mm512_mul_pd(_mm512_sub_pd(_mm512_cvtps_pd(x32), b), l.scale));
      const __m512d v = rounded8(_mm512_mul_pd(l.weight, e));
      vs[k] = v;
      sum = k == 0 ? v : _mm512_add_pd(sum, v);
      if constexpr (C == Consensus::Count) {
        // signOf(v): +1, -1, or 0 (zero and NaN).
        signs = _mm512_mask_add_epi64(signs, _mm512_cmp_pd_mask(v, zero, _CMP_GT_OQ), signs, _mm512_set1_epi64(1));
        signs = _mm512_mask_sub_epi64(signs, _mm512_cmp_pd_mask(v, zero, _CMP_LT_OQ), signs, _mm512_set1_epi64(1));
      }
    }
    __m512d mixed, div;
    if constexpr (M == 1 && C != Consensus::None) {
      const __mmask8 agree = _mm512_cmp_pd_mask(vs[0], zero, _CMP_NEQ_OQ);
      mixed = _mm512_maskz_mov_pd(agree, p.normalize ? _mm512_div_pd(vs[0], soleDiv) : vs[0]);
      storeResult8<TO>(out, j, _mm512_add_pd(b, rounded8(_mm512_mul_pd(mixed, lambda))));
      rev = _mm512_sub_epi64(rev, eight);
      continue;
    }
    if constexpr (C == Consensus::None) {
      mixed = sum;
      div = _mm512_set1_pd(constDiv);
    } else {
      const __mmask8 positive = C == Consensus::Sum ? _mm512_cmp_pd_mask(sum, zero, _CMP_GE_OQ) : _mm512_cmpge_epi64_mask(signs, _mm512_setzero_si512());
      mixed = zero;
      div = zero;
      for (size_t k = 0; k < m; ++k) {
        const __mmask8 agree = (positive & _mm512_cmp_pd_mask(vs[k], zero, _CMP_GT_OQ)) | (~positive & _mm512_cmp_pd_mask(vs[k], zero, _CMP_LT_OQ));
        mixed = _mm512_mask_add_pd(mixed, agree, mixed, vs[k]);
        div = _mm512_mask_add_pd(div, agree, div, lanes[k].weight);
      }
      div = _mm512_mask_mov_pd(div, _mm512_cmp_pd_mask(div, zero, _CMP_EQ_OQ), one);
    }
    if (p.normalize) mixed = _mm512_div_pd(mixed, div);
    storeResult8<TO>(out, j, _mm512_add_pd(b, rounded8(_mm512_mul_pd(mixed, lambda))));
    rev = _mm512_sub_epi64(rev, eight);
  }
}

// One model whose keep rule is a keepBits map (della's merge, a local DARE's) or its rank cuts alone (TIES, breadcrumbs: no
// random mask): a dropped element's result is base + z, z the zero (or NaN) the formula gives for e = 0, so the f64
// arithmetic runs on the kept elements only (about half at density 0.5), packed 8 a step by VCOMPRESSPS, and VEXPANDPS
// puts the results back. Lane for lane sparseMergeLoop8's.
constexpr size_t kSoleBlock = 512;  // elements per round of packing: the packed values stay in L1

// sparse_avx2.cc's sparseKeepLoop's rule, 8 lanes per step: the rank keys inside the cuts, and DARE's mask where masked; next()
// gives the mask of the next 8 elements from their |d| bits.
struct KeepRule8 {
  __m512i low, high, limit, counter, step, rev;
  __m128i shift;
  bool masked;
  WM_AVX512_INLINE KeepRule8(const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start)
      : low(_mm512_set1_epi64(static_cast<long long>(m.lowKey))),
        high(_mm512_set1_epi64(static_cast<long long>(m.highKey))),
        limit(_mm512_set1_epi64(m.density > 0 && m.density < 1 ? static_cast<long long>(std::ceil(m.density * 0x1.0p53)) : 0)),
        counter(splitmixCounters8(m.seedKey, start)),
        step(_mm512_set1_epi64(static_cast<long long>(8 * kSplitmixGolden))),
        rev(_mm512_sub_epi64(_mm512_set1_epi64(static_cast<long long>(count - 1 - start)), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0))),
        shift(_mm_cvtsi32_si128(static_cast<int>(indexBits))),
        masked(m.density > 0 && m.density < 1) {}
  WM_AVX512_INLINE __mmask8 next(__m256i a) {
    const __m512i key = _mm512_or_si512(_mm512_sll_epi64(_mm512_cvtepu32_epi64(a), shift), rev);
    __mmask8 k = _mm512_mask_cmplt_epu64_mask(_mm512_cmpge_epu64_mask(key, low), key, high);
    if (masked) {
      k = _mm512_mask_cmplt_epu64_mask(k, _mm512_srli_epi64(splitmix64x8(counter), 11), limit);
      counter = _mm512_add_epi64(counter, step);
    }
    rev = _mm512_sub_epi64(rev, _mm512_set1_epi64(8));
    return k;
  }
};

// The rule's masks of the next 16 elements from their f32 values (sparseMergeLoop8's |d| bits: x - base, sign cleared).
WM_AVX512_INLINE __mmask16 keep16(KeepRule8& rule, __m512 b, __m512 x) {
  const __m512i abs = _mm512_and_si512(_mm512_castps_si512(_mm512_sub_ps(x, b)), _mm512_set1_epi32(0x7FFFFFFF));
  const __mmask8 low = rule.next(_mm512_castsi512_si256(abs));
  return static_cast<__mmask16>(low | (static_cast<unsigned>(rule.next(_mm512_extracti64x4_epi64(abs, 1))) << 8));
}

template <Dtype T, Dtype TO, Consensus C, bool kCuts>
__attribute__((target(WM_AVX512_TARGET))) void soleKeepLoop(const void* const* srcs, const SparseParams& p, uint64_t count, uint64_t start, size_t n,
                                                            void* out) {
  const SparseModel& sm = p.models[0];
  const void* base = srcs[p.baseSource];
  const void* x = srcs[sm.source];
  const double div = oneModelDivisor(p);  // sparseMergeLoop8's soleDiv under a consensus, constDiv without
  // z: a dropped element's mixed * lambda (e = +0), in f64 as the loop computes it; +-0 or NaN, so base + z is the same in f32.
  const double v0 = sm.weight * 0.0;
  const double mixed0 = C != Consensus::None ? (v0 != 0 ? (p.normalize ? v0 / div : v0) : 0.0) : (p.normalize ? v0 / div : v0);
  const __m512 z = _mm512_set1_ps(static_cast<float>(mixed0 * p.lambda));
  const __m512 canonicalNaN = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(num::kF32CanonicalNaN)));
  const __m512d scale = _mm512_set1_pd(static_cast<double>(sm.scale)), weight = _mm512_set1_pd(sm.weight), divs = _mm512_set1_pd(div);
  const __m512d lambda = _mm512_set1_pd(p.lambda), zero = _mm512_setzero_pd();
  // Packed bases (bf16: base and source pairs), sources and results; 16 slots past the block, which the full-width stores
  // and loads reach.
  alignas(64) float pb[kSoleBlock + 16], px[kSoleBlock + 16], pr[kSoleBlock + 16] = {};
  __mmask16 keeps[kSoleBlock / 16];  // the block's keep masks, for putting the results back
  KeepRule8 cuts(sm, p.indexBits, count, start);  // read where kCuts, when the model has no random mask (sparseMergeAvx512 checks)
  for (size_t j0 = 0; j0 < n; j0 += kSoleBlock) {
    const size_t end = j0 + (n - j0 < kSoleBlock ? n - j0 : kSoleBlock);
    size_t kept = 0;
    for (size_t j = j0; j < end; j += 16) {
      __mmask16 keep = 0;
      if constexpr (!kCuts) keep = static_cast<__mmask16>(keptBitsFrom(sm.keepBits, start + j));
      if constexpr (T == Dtype::BF16) {
        // bf16 pairs: base in a lane's low half, the model's in its high half, packed at once.
        const __m512i bh = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + j)));
        const __m512i xh = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(x) + j)));
        if constexpr (kCuts) keep = keep16(cuts, _mm512_castsi512_ps(_mm512_slli_epi32(bh, 16)), _mm512_castsi512_ps(_mm512_slli_epi32(xh, 16)));
        _mm512_storeu_si512(pb + kept, _mm512_maskz_compress_epi32(keep, _mm512_or_si512(bh, _mm512_slli_epi32(xh, 16))));
      } else {
        const __m512 bv = load16<T>(base, j), xv = load16<T>(x, j);
        if constexpr (kCuts) keep = keep16(cuts, bv, xv);
        _mm512_storeu_ps(pb + kept, _mm512_maskz_compress_ps(keep, bv));
        _mm512_storeu_ps(px + kept, _mm512_maskz_compress_ps(keep, xv));
      }
      keeps[(j - j0) / 16] = keep;
      kept += static_cast<size_t>(__builtin_popcount(keep));
    }
    for (size_t k = 0; k < kept; k += 8) {
      __m256 b32, x32;
      if constexpr (T == Dtype::BF16) {
        const __m256i pair = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + k));
        b32 = _mm256_castsi256_ps(_mm256_slli_epi32(pair, 16));
        x32 = _mm256_castsi256_ps(_mm256_and_si256(pair, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
      } else {
        b32 = _mm256_load_ps(pb + k);
        x32 = _mm256_load_ps(px + k);
      }
      const __m512d b = _mm512_cvtps_pd(b32);
      const __m512d e = _mm512_mul_pd(_mm512_sub_pd(_mm512_cvtps_pd(x32), b), scale);
      const __m512d v = rounded8(_mm512_mul_pd(weight, e));
      __m512d mixed = v;
      if constexpr (C != Consensus::None) {
        mixed = _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(v, zero, _CMP_NEQ_OQ), p.normalize ? _mm512_div_pd(v, divs) : v);
      } else {
        if (p.normalize) mixed = _mm512_div_pd(v, divs);
      }
      _mm256_store_ps(pr + k, roundedToF32<TO>(_mm512_add_pd(b, rounded8(_mm512_mul_pd(mixed, lambda)))));
    }
    size_t at = 0;
    for (size_t j = j0; j < end; j += 16) {
      const __mmask16 keep = keeps[(j - j0) / 16];
      __m512 dropped = _mm512_add_ps(load16<T>(base, j), z);
      dropped = _mm512_mask_mov_ps(dropped, _mm512_cmp_ps_mask(dropped, dropped, _CMP_UNORD_Q), canonicalNaN);
      const __m512 r = _mm512_mask_expand_ps(dropped, keep, _mm512_loadu_ps(pr + at));
      at += static_cast<size_t>(__builtin_popcount(keep));
      storeF32As8<TO>(out, j, _mm512_castps512_ps256(r));
      storeF32As8<TO>(out, j + 8, _mm512_extractf32x8_ps(r, 1));
    }
  }
}

template <Dtype B, Dtype X>
__attribute__((target(WM_AVX512_TARGET))) size_t absDeltaBitsLoop16(const void* base, const void* x, size_t n, uint32_t* out) {
  const __m512i mask = _mm512_set1_epi32(0x7FFFFFFF);
  size_t i = 0;
  // vsubps takes the first operand's NaN as subss does: the same payloads as the scalar x - base.
  for (; i + 16 <= n; i += 16) {
    const __m512 d = _mm512_sub_ps(load16<X>(x, i), load16<B>(base, i));
    _mm512_storeu_si512(out + i, _mm512_and_si512(_mm512_castps_si512(d), mask));
  }
  return i;
}

__attribute__((target(WM_AVX512_TARGET))) size_t windowKeysLoop8(const uint32_t* a, size_t n, uint32_t lo, uint32_t hi, uint32_t indexBits,
                                                                uint64_t count, uint64_t start, uint64_t* keys, uint64_t* above) {
  const __m256i loV = _mm256_set1_epi32(static_cast<int>(lo)), hiV = _mm256_set1_epi32(static_cast<int>(hi));
  const __m256i spanV = _mm256_set1_epi32(static_cast<int>(hi - lo));
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(indexBits));
  __m512i rev = _mm512_sub_epi64(_mm512_set1_epi64(static_cast<long long>(count - 1 - start)), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
  const __m512i eight = _mm512_set1_epi64(8);
  uint64_t over = 0;
  size_t m = 0;
  for (size_t j = 0; j + 8 <= n; j += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + j));
    over += static_cast<uint64_t>(__builtin_popcount(_mm256_cmpgt_epu32_mask(v, hiV)));
    // lo <= v <= hi as one unsigned compare: v - lo <= hi - lo.
    const __mmask8 inside = _mm256_cmple_epu32_mask(_mm256_sub_epi32(v, loV), spanV);
    const __m512i key = _mm512_or_si512(_mm512_sll_epi64(_mm512_cvtepu32_epi64(v), shift), rev);
    // The register form of VPCOMPRESSQ, then a plain store (the memory form is slow on some CPUs).
    _mm512_storeu_si512(keys + m, _mm512_maskz_compress_epi64(inside, key));
    m += static_cast<size_t>(__builtin_popcount(inside));
    rev = _mm512_sub_epi64(rev, eight);
  }
  *above += over;
  return m;
}

// sparse_avx2.cc's sparseKeepLoop, 8 lanes per step.
__attribute__((target(WM_AVX512_TARGET))) void sparseKeepLoop8(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count,
                                                               uint64_t start, size_t n, uint8_t* keep) {
  KeepRule8 rule(m, indexBits, count, start);
  const __m128i ones = _mm_set1_epi8(1);
  for (size_t j = 0; j + 8 <= n; j += 8) {
    const __mmask8 k = rule.next(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(absBits + j)));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(keep + j), _mm_maskz_mov_epi8(k, ones));  // the eight 0/1 bytes
  }
}

// sparse_select.h's l1Slots, 8 lanes per step: sparseKeepLoop8's keep mask, then each lane's l1Slot (lane l of a step
// is element j + l, so its set is l) and l1Addend, and the mask itself as the step's byte of keep bits.
__attribute__((target(WM_AVX512_TARGET))) void l1SlotsLoop8(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count,
                                                            uint64_t start, size_t n, uint32_t* slot, uint32_t* mant, uint8_t* bits) {
  KeepRule8 rule(m, indexBits, count, start);
  constexpr int kSet = static_cast<int>(2 * kL1Buckets);
  const __m256i sets = _mm256_setr_epi32(0, kSet, 2 * kSet, 3 * kSet, 4 * kSet, 5 * kSet, 6 * kSet, 7 * kSet);
  const __m256i one = _mm256_set1_epi32(1), fraction = _mm256_set1_epi32(0x7FFFFF), hidden = _mm256_set1_epi32(0x800000);
  const __m256i infinity = _mm256_set1_epi32(0x7F800000), zero = _mm256_setzero_si256();
  for (size_t j = 0; j + 8 <= n; j += 8) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(absBits + j));
    const __mmask8 k = rule.next(a);
    const __m256i e = _mm256_srli_epi32(a, 23);
    const __mmask8 normal = _mm256_cmpneq_epi32_mask(e, zero);
    // 2 * (e + (e == 0)) + kept, in set l.
    const __m256i bucket = _mm256_mask_add_epi32(e, static_cast<__mmask8>(~normal), e, one);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(slot + j), _mm256_mask_add_epi32(_mm256_add_epi32(sets, _mm256_slli_epi32(bucket, 1)), k,
                                                                                     _mm256_add_epi32(sets, _mm256_slli_epi32(bucket, 1)), one));
    const __m256i addend = _mm256_mask_or_epi32(_mm256_and_si256(a, fraction), normal, _mm256_and_si256(a, fraction), hidden);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(mant + j), _mm256_maskz_mov_epi32(_mm256_cmplt_epu32_mask(a, infinity), addend));
    if (bits != nullptr) bits[j / 8] = k;
  }
}

}  // namespace

void l1SlotsAvx512(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n, uint32_t* slot,
                   uint32_t* mant, uint8_t* bits) {
  l1SlotsLoop8(absBits, m, indexBits, count, start, n, slot, mant, bits);
}

size_t absDeltaBitsAvx512(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* out) {
  size_t done = 0;
  withDtype(tb, [&](auto B) { withDtype(tx, [&](auto X) { done = absDeltaBitsLoop16<decltype(B)::value, decltype(X)::value>(base, x, n, out); }); });
  return done;
}

void sparseKeepAvx512(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n, uint8_t* keep) {
  sparseKeepLoop8(absBits, m, indexBits, count, start, n, keep);
}

size_t windowKeysAvx512(const uint32_t* a, size_t n, uint32_t lo, uint32_t hi, uint32_t indexBits, uint64_t count, uint64_t start, uint64_t* keys,
                        uint64_t* above) {
  return windowKeysLoop8(a, n, lo, hi, indexBits, count, start, keys, above);
}

void sparseMergeAvx512(const void* const* srcs, Dtype t, const SparseParams& p, uint64_t count, uint64_t start, size_t n, void* out, Dtype to) {
  // One model with a keepBits map, or with its cuts alone (no random mask): its kept elements packed, 16 a step; the rest
  // (n % 16) in the general loop.
  const bool bits = p.models.size() == 1 && p.models[0].keepBits != nullptr;
  const bool cuts = p.models.size() == 1 && !bits && !(p.models[0].density > 0 && p.models[0].density < 1);
  const size_t sole = bits || cuts ? n - n % 16 : 0;
  withSparseMergeShape(t, to, p, [&](auto T, auto TO, auto M, auto C) {
    constexpr Dtype kT = decltype(T)::value, kTO = decltype(TO)::value;
    constexpr Consensus kC = decltype(C)::value;
    if constexpr (decltype(M)::value == 1) {
      if (sole > 0) {
        if (bits) {
          soleKeepLoop<kT, kTO, kC, false>(srcs, p, count, start, sole, out);
        } else {
          soleKeepLoop<kT, kTO, kC, true>(srcs, p, count, start, sole, out);
        }
        if (sole == n) return;
        // The base's and the model's pointers moved past the packed elements (the only sources the loop reads).
        std::vector<const void*> rest(srcs, srcs + std::max(p.baseSource, p.models[0].source) + 1);
        for (const uint32_t s : {p.baseSource, p.models[0].source}) rest[s] = static_cast<const uint8_t*>(srcs[s]) + sole * dtypeSize(t);
        return sparseMergeLoop8<kT, kTO, 1, kC>(rest.data(), p, count, start + sole, n - sole, static_cast<uint8_t*>(out) + sole * dtypeSize(to));
      }
    }
    sparseMergeLoop8<kT, kTO, decltype(M)::value, kC>(srcs, p, count, start, n, out);
  });
}

}  // namespace avx2
}  // namespace wm

#endif  // WM_HAVE_AVX2_BACKEND
