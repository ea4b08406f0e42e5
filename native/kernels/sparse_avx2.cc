// AVX2 paths of the sparse methods' kernels (sparse_select.h's |d| bits, sparsify.h's merge with
// its rank-key and DARE-mask keep rules), each equal bit for bit to its scalar truth
// (native/tests/kernels_selftest.cc checks it on random inputs with special values).
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "avx2_loads.h"
#include "avx2_splitmix.h"
#include "exact_reciprocal.h"
#include "numerics.h"
#include "sparse_avx512.h"
#include "sparse_keep_avx2.h"
#include "sparse_merge_shapes.h"
#include "sparse_one_model_avx2.h"
#include "sparse_select.h"
#include "sparsify.h"

namespace wm {
namespace avx2 {
namespace {

template <Dtype B, Dtype X>
__attribute__((target("avx2,fma,f16c"))) void absDeltaBitsLoop(const void* base, const void* x, size_t n, uint32_t* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), absDeltaBits8<B, X>(base, x, i));
  if (i < n) {
    // The ragged end through zero-padded copies, so that it runs the same vector code.
    alignas(32) unsigned char pb[8 * 4] = {}, px[8 * 4] = {};
    alignas(32) uint32_t r[8];
    std::memcpy(pb, static_cast<const unsigned char*>(base) + i * dtypeSize(B), (n - i) * dtypeSize(B));
    std::memcpy(px, static_cast<const unsigned char*>(x) + i * dtypeSize(X), (n - i) * dtypeSize(X));
    _mm256_store_si256(reinterpret_cast<__m256i*>(r), absDeltaBits8<B, X>(pb, px, 0));
    std::memcpy(out + i, r, (n - i) * 4);
  }
}

// ---- the sparse merge, 4 elements (f64 lanes) per step ----------------------------------------------


struct ModelLanes {
  KeepSteps<false, true> rule;  // the rank-key window and DARE's mask (sparse_keep_avx2.h), where bits is null
  __m256d scale, weight;
  const uint8_t* bits;  // SparseModel::keepBits: the keep rule read, not computed
};


size_t sourceCountOf(const SparseParams& p) {
  size_t n = p.baseSource + 1;
  for (const SparseModel& sm : p.models) n = std::max<size_t>(n, sm.source + 1);
  return n;
}

// Windowed false where the window holds every key (lowKey 0, highKey at or above every key: DARE's L1 pass, whose keep rule is
// then its random mask alone). 8 elements a step, their keep bytes in one store; the last few 4 a step, then the scalar truth.
template <bool Wide, bool Windowed>
__attribute__((target("avx2,fma,f16c"))) void sparseKeepLoop(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits,
                                                             uint64_t count, uint64_t start, size_t n, uint8_t* keep) {
  KeepSteps<Wide, Windowed> steps(m, indexBits, count, start);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(absBits + j));
    const unsigned low = steps.next(_mm256_castsi256_si128(a));
    const unsigned bits = low | steps.next(_mm256_extracti128_si256(a, 1)) << 4;
    std::memcpy(keep + j, &kSpreadBits.bytes[bits], 8);  // one store for the eight 0/1 bytes
  }
  for (; j + 4 <= n; j += 4) std::memcpy(keep + j, &kSpreadBits.bytes[steps.next(_mm_loadu_si128(reinterpret_cast<const __m128i*>(absBits + j)))], 4);
  if (j < n) scalar::sparseKeep(absBits + j, m, indexBits, count, start + j, n - j, keep + j);
}

// Whether m's rank-key window holds every key (sparseKeepLoop's Windowed false): keys lie below 2^63 (kRankKeyNone) where the
// index takes at most 32 bits (|d| bits below 2^31).
bool windowHoldsAll(const SparseModel& m, uint32_t indexBits) { return m.lowKey == 0 && m.highKey >= kRankKeyNone && indexBits <= 32; }

// sparseKeepLoop<true>, compiled where VPMULLQ may be emitted (its callers check avx512Enabled()).
__attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl"), flatten)) void sparseKeepLoopWide(const uint32_t* absBits, const SparseModel& m,
                                                                                          uint32_t indexBits, uint64_t count, uint64_t start,
                                                                                          size_t n, uint8_t* keep) {
  sparseKeepLoop<true, true>(absBits, m, indexBits, count, start, n, keep);
}

// l1Slots 8 lanes a step, fused: the keep rule's lane masks (sparse_keep_avx2.h) give each lane's kept slot and the step's byte of
// keep bits at once (no keep bytes stored and read back, no packBits). Every lane's slot in set 0 (the sets' sums add up the same: on
// the Zen 3 the adds to one set forward each other's stores for less than the 8 sets' spread costs, L1Accumulator::add ~30 % fewer
// samples in dare_ties). Elements [0, n - n % 8); the caller does the rest.
template <bool Windowed>
__attribute__((target("avx2,fma,f16c"))) void l1SlotsLoop(const uint32_t* a, const SparseModel& m, uint32_t indexBits, uint64_t count,
                                                          uint64_t start, size_t n, uint32_t* slot, uint32_t* mant, uint8_t* bits) {
  KeepSteps<false, Windowed> steps(m, indexBits, count, start);
  const __m256i zero = _mm256_setzero_si256(), fraction = _mm256_set1_epi32(0x7FFFFF), implicit = _mm256_set1_epi32(1 << 23);
  const __m256i infinite = _mm256_set1_epi32(0x7F800000);  // |d| bits: the sign is clear, so the signed compare orders them
  for (size_t j = 0; j + 8 <= n; j += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + j));
    const __m256i keepLo = steps.mask(_mm256_castsi256_si128(v)), keepHi = steps.mask(_mm256_extracti128_si256(v, 1));
    // The two halves' 64-bit masks as 8 lanes of 32 bits in element order (the shuffle interleaves their pairs; the permute
    // restores them), 1 where kept.
    const __m256 pairs = _mm256_shuffle_ps(_mm256_castsi256_ps(keepLo), _mm256_castsi256_ps(keepHi), 0x88);
    const __m256i kept32 = _mm256_permute4x64_epi64(_mm256_castps_si256(pairs), 0xD8);
    const __m256i e = _mm256_srli_epi32(v, 23);
    const __m256i subnormal = _mm256_cmpeq_epi32(e, zero);  // -1: bucket e + 1, no implicit bit
    const __m256i s = _mm256_add_epi32(_mm256_slli_epi32(_mm256_sub_epi32(e, subnormal), 1), _mm256_srli_epi32(kept32, 31));
    const __m256i addend = _mm256_or_si256(_mm256_and_si256(v, fraction), _mm256_andnot_si256(subnormal, implicit));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(slot + j), s);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(mant + j), _mm256_and_si256(addend, _mm256_cmpgt_epi32(infinite, v)));
    if (bits != nullptr) {
      bits[j / 8] = static_cast<uint8_t>(_mm256_movemask_pd(_mm256_castsi256_pd(keepLo)) | _mm256_movemask_pd(_mm256_castsi256_pd(keepHi)) << 4);
    }
  }
}

// permutevar8x32 indices that move the 64-bit lanes selected by a 4-bit mask to the front, in order.
struct CompressTable {
  alignas(32) int32_t idx[16][8] = {};
  constexpr CompressTable() {
    for (int mask = 0; mask < 16; ++mask) {
      int to = 0;
      for (int lane = 0; lane < 4; ++lane) {
        if (!((mask >> lane) & 1)) continue;
        idx[mask][2 * to] = 2 * lane;
        idx[mask][2 * to + 1] = 2 * lane + 1;
        ++to;
      }
    }
  }
};
constexpr CompressTable kCompress;

__attribute__((target("avx2,fma,f16c"))) size_t windowKeysLoop(const uint32_t* a, size_t n, uint32_t lo, uint32_t hi, uint32_t indexBits,
                                                              uint64_t count, uint64_t start, uint64_t* keys, uint64_t* above) {
  const __m128i sign = _mm_set1_epi32(static_cast<int>(0x80000000u));
  const __m128i hiF = _mm_set1_epi32(static_cast<int>(hi ^ 0x80000000u)), spanF = _mm_set1_epi32(static_cast<int>((hi - lo) ^ 0x80000000u));
  const __m128i loV = _mm_set1_epi32(static_cast<int>(lo));
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(indexBits));
  const uint64_t top = count - 1 - start;
  __m256i rev = _mm256_set_epi64x(static_cast<long long>(top - 3), static_cast<long long>(top - 2), static_cast<long long>(top - 1),
                                  static_cast<long long>(top));
  const __m256i four = _mm256_set1_epi64x(4);
  __m128i over = _mm_setzero_si128();
  size_t m = 0, j = 0;
  {
    // 8 a step: the 32-bit tests in one vector, the keys in two of 4 (fewer instructions per element than the 4-step loop).
    const __m256i sign8 = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    const __m256i hiF8 = _mm256_set1_epi32(static_cast<int>(hi ^ 0x80000000u)), spanF8 = _mm256_set1_epi32(static_cast<int>((hi - lo) ^ 0x80000000u));
    const __m256i lo8 = _mm256_set1_epi32(static_cast<int>(lo));
    const __m256i eight = _mm256_set1_epi64x(8);
    __m256i over8 = _mm256_setzero_si256();
    for (; j + 8 <= n; j += 8) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + j));
      over8 = _mm256_sub_epi32(over8, _mm256_cmpgt_epi32(_mm256_xor_si256(v, sign8), hiF8));
      const __m256i outside = _mm256_cmpgt_epi32(_mm256_xor_si256(_mm256_sub_epi32(v, lo8), sign8), spanF8);
      const unsigned inside = ~static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(outside))) & 0xFFu;
      const __m256i key0 = _mm256_or_si256(_mm256_sll_epi64(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(v)), shift), rev);
      const __m256i key1 = _mm256_or_si256(_mm256_sll_epi64(_mm256_cvtepu32_epi64(_mm256_extracti128_si256(v, 1)), shift), _mm256_sub_epi64(rev, four));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys + m),
                          _mm256_permutevar8x32_epi32(key0, _mm256_load_si256(reinterpret_cast<const __m256i*>(kCompress.idx[inside & 0xF]))));
      m += static_cast<size_t>(__builtin_popcount(inside & 0xF));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys + m),
                          _mm256_permutevar8x32_epi32(key1, _mm256_load_si256(reinterpret_cast<const __m256i*>(kCompress.idx[inside >> 4]))));
      m += static_cast<size_t>(__builtin_popcount(inside >> 4));
      rev = _mm256_sub_epi64(rev, eight);
    }
    over = _mm_add_epi32(_mm256_castsi256_si128(over8), _mm256_extracti128_si256(over8, 1));
  }
  for (; j + 4 <= n; j += 4) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + j));
    // Unsigned compares through the signed ones: both sides with the top bit flipped.
    over = _mm_sub_epi32(over, _mm_cmpgt_epi32(_mm_xor_si128(v, sign), hiF));
    const __m128i outside = _mm_cmpgt_epi32(_mm_xor_si128(_mm_sub_epi32(v, loV), sign), spanF);
    const int inside = ~_mm_movemask_ps(_mm_castsi128_ps(outside)) & 0xF;
    const __m256i key = _mm256_or_si256(_mm256_sll_epi64(_mm256_cvtepu32_epi64(v), shift), rev);
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(kCompress.idx[inside]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys + m), _mm256_permutevar8x32_epi32(key, perm));
    m += static_cast<size_t>(__builtin_popcount(static_cast<unsigned>(inside)));
    rev = _mm256_sub_epi64(rev, four);
  }
  alignas(16) uint32_t counts[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(counts), over);
  *above += uint64_t{counts[0]} + counts[1] + counts[2] + counts[3];
  if (j < n) m += scalar::windowKeys(a + j, n - j, lo, hi, indexBits, count, start + j, keys + m, above);
  return m;
}


// M > 0: the model count fixed at compile time (the model loops unrolled); 0: p.models.size().
// C: p.consensus fixed at compile time (sign counts only where they decide).
template <Dtype T, Dtype TO, size_t M, Consensus C>
__attribute__((target("avx2,fma,f16c"))) void sparseMergeLoop(const void* const* srcs, const SparseParams& p, uint64_t count, uint64_t start,
                                                              size_t n, void* out) {
  const size_t m = M > 0 ? M : p.models.size();
  const void* base = srcs[p.baseSource];
  ModelLanes lanes[kSimdSparseMaxModels];
  double wsum = 0;
  for (size_t k = 0; k < m; ++k) {
    const SparseModel& sm = p.models[k];
    ModelLanes& l = lanes[k];
    l.rule = KeepSteps<false, true>(sm, p.indexBits, count, start);
    l.bits = sm.keepBits;
    l.scale = _mm256_set1_pd(static_cast<double>(sm.scale));
    l.weight = _mm256_set1_pd(sm.weight);
    wsum = k == 0 ? sm.weight : wsum + sm.weight;
  }
  const double constDiv = weightSumDivisor(wsum);
  const __m128i absMask = _mm_set1_epi32(0x7FFFFFFF);
  // The step's index parts ^ kFlip, one for every model's window (KeepSteps::maskAt).
  const uint64_t top = count - 1 - start;
  __m256i revF = _mm256_xor_si256(_mm256_set_epi64x(static_cast<long long>(top - 3), static_cast<long long>(top - 2), static_cast<long long>(top - 1),
                                                    static_cast<long long>(top)),
                                  _mm256_set1_epi64x(static_cast<long long>(kFlip)));
  const __m256i four = _mm256_set1_epi64x(4);
  const __m256d lambda = _mm256_set1_pd(p.lambda), zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
  const __m256i laneBit = _mm256_set_epi64x(8, 4, 2, 1);
  // One model with a sign consensus: its v agrees exactly when it is neither zero nor NaN, and then
  // mixed / div = v / (0 + w, or 1 where that is 0); else +0 / 1 = +0 (the general loop's values).
  const double soleDivisor = p.models.empty() ? 1.0 : agreeingDivisor(0.0 + p.models[0].weight);
  const __m256d soleDiv = _mm256_set1_pd(soleDivisor);
  // A power-of-two divisor (a weight of 1, 0.5, 2, ...) divides as a multiply by its exact reciprocal: the same bits.
  const bool soleByProduct = hasExactReciprocal(soleDivisor), constByProduct = hasExactReciprocal(constDiv);
  const __m256d soleFactor = _mm256_set1_pd(1.0 / soleDivisor), constFactor = _mm256_set1_pd(1.0 / constDiv);
  __m256d vs[kSimdSparseMaxModels];
  for (size_t j = 0; j + 4 <= n; j += 4) {
    const __m128 b32 = load4<T>(base, j);
    const __m256d b = _mm256_cvtps_pd(b32);
    __m256d sum = zero;
    __m256i signs = _mm256_setzero_si256();
    for (size_t k = 0; k < m; ++k) {
      ModelLanes& l = lanes[k];
      const __m128 x32 = load4<T>(srcs[p.models[k].source], j);
      __m256i keep;
      if (l.bits != nullptr) {
        keep = _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(keptBitsFrom(l.bits, start + j) & 0xF), laneBit), laneBit);
      } else {
        keep = l.rule.maskAt(_mm_and_si128(_mm_castps_si128(_mm_sub_ps(x32, b32)), absMask), revF);
      }
      const __m256d e = _mm256_and_pd(_mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(x32), b), l.scale), _mm256_castsi256_pd(keep));
      const __m256d v = rounded(_mm256_mul_pd(l.weight, e));
      vs[k] = v;
      sum = k == 0 ? v : _mm256_add_pd(sum, v);
      if constexpr (C == Consensus::Count) {
        // signOf(v): +1, -1, or 0 (zero and NaN); compare masks are -1 where true.
        signs = _mm256_sub_epi64(signs, _mm256_castpd_si256(_mm256_cmp_pd(v, zero, _CMP_GT_OQ)));
        signs = _mm256_add_epi64(signs, _mm256_castpd_si256(_mm256_cmp_pd(v, zero, _CMP_LT_OQ)));
      }
    }
    __m256d mixed, div;
    if constexpr (M == 1 && C != Consensus::None) {
      const __m256d agree = _mm256_cmp_pd(vs[0], zero, _CMP_NEQ_OQ);
      const __m256d quotient = soleByProduct ? _mm256_mul_pd(vs[0], soleFactor) : _mm256_div_pd(vs[0], soleDiv);
      mixed = _mm256_and_pd(p.normalize ? quotient : vs[0], agree);
      storeResult4<TO>(out, j, _mm256_add_pd(b, rounded(_mm256_mul_pd(mixed, lambda))));
      revF = _mm256_sub_epi64(revF, four);
      continue;
    }
    if constexpr (C == Consensus::None) {
      mixed = sum;
      div = _mm256_set1_pd(constDiv);
    } else {
      const __m256d positive = C == Consensus::Sum ? _mm256_cmp_pd(sum, zero, _CMP_GE_OQ)
                                                             : _mm256_castsi256_pd(_mm256_cmpgt_epi64(signs, _mm256_set1_epi64x(-1)));
      mixed = zero;
      div = zero;
      for (size_t k = 0; k < m; ++k) {
        const __m256d agree = _mm256_blendv_pd(_mm256_cmp_pd(vs[k], zero, _CMP_LT_OQ), _mm256_cmp_pd(vs[k], zero, _CMP_GT_OQ), positive);
        mixed = _mm256_blendv_pd(mixed, _mm256_add_pd(mixed, vs[k]), agree);
        div = _mm256_blendv_pd(div, _mm256_add_pd(div, lanes[k].weight), agree);
      }
      div = _mm256_blendv_pd(div, one, _mm256_cmp_pd(div, zero, _CMP_EQ_OQ));
    }
    if (p.normalize) mixed = C == Consensus::None && constByProduct ? _mm256_mul_pd(mixed, constFactor) : _mm256_div_pd(mixed, div);
    storeResult4<TO>(out, j, _mm256_add_pd(b, rounded(_mm256_mul_pd(mixed, lambda))));
    revF = _mm256_sub_epi64(revF, four);
  }
}

}  // namespace

void sparseKeep(const uint32_t* absBits, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n,
                uint8_t* keep) {
  if (!avx512Enabled()) {
    if (windowHoldsAll(m, indexBits)) return sparseKeepLoop<false, false>(absBits, m, indexBits, count, start, n, keep);
    return sparseKeepLoop<false, true>(absBits, m, indexBits, count, start, n, keep);
  }
  // Elements [0, wide) 8 at a time, the rest 4 at a time with VPMULLQ.
  const size_t wide = n - n % 8;
  sparseKeepAvx512(absBits, m, indexBits, count, start, wide, keep);
  if (wide < n) sparseKeepLoopWide(absBits + wide, m, indexBits, count, start + wide, n - wide, keep + wide);
}

void l1Slots(const uint32_t* a, const SparseModel& m, uint32_t indexBits, uint64_t count, uint64_t start, size_t n, uint32_t* slot, uint32_t* mant,
             uint8_t* bits) {
  // Elements [0, wide) 8 at a time (AVX-512 where the CPU has it, else the fused AVX2 step); the rest as the scalar loop does, with this
  // backend's keep rule.
  const size_t wide = n - n % 8;
  if (avx512Enabled()) {
    l1SlotsAvx512(a, m, indexBits, count, start, wide, slot, mant, bits);
  } else if (windowHoldsAll(m, indexBits)) {
    l1SlotsLoop<false>(a, m, indexBits, count, start, wide, slot, mant, bits);
  } else {
    l1SlotsLoop<true>(a, m, indexBits, count, start, wide, slot, mant, bits);
  }
  l1SlotsBy(avx2::sparseKeep, l1SlotsOfKept, a, m, indexBits, count, start, wide, n, slot, mant, bits);
}

void sparseMerge(const void* const* srcs, const Dtype* types, const SparseParams& p, uint64_t count, uint64_t start, size_t n, void* out,
                 Dtype to) {
  bool same = p.models.size() <= kSimdSparseMaxModels;
  for (const SparseModel& sm : p.models) same = same && types[sm.source] == types[p.baseSource];
  const Dtype t = types[p.baseSource];
  // Elements [0, wide) 8 at a time with AVX-512 where the CPU has it, [wide, full) 4 at a time, the rest scalar.
  const size_t wide = same && avx512Enabled() ? n - n % 8 : 0;
  const size_t full = same ? n - n % 4 : 0;
  if (wide > 0) sparseMergeAvx512(srcs, t, p, count, start, wide, out, to);
  if (wide == n) return;
  // The sources and output from element `from` on.
  std::vector<const void*> rest(srcs, srcs + sourceCountOf(p));
  const auto skipTo = [&](size_t from) {
    for (size_t s = 0; s < rest.size(); ++s) rest[s] = static_cast<const uint8_t*>(srcs[s]) + from * dtypeSize(types[s]);
    return static_cast<uint8_t*>(out) + from * dtypeSize(to);
  };
  // One bf16 model: [wide, from) 8 at a time (sparse_one_model_avx2.h), the rest of [wide, full) 4 at a time.
  size_t from = wide;
  if (full > wide && oneModelMergeApplies(t, to, p)) {
    const size_t eight = (full - wide) & ~size_t{7};
    if (eight > 0) {
      void* at = skipTo(wide);
      sparseMergeOneModel(rest.data(), p, count, start + wide, eight, at);
    }
    from = wide + eight;
  }
  if (full > from) {
    void* at = skipTo(from);
    withSparseMergeShape(t, to, p, [&](auto T, auto TO, auto M, auto C) {
      sparseMergeLoop<decltype(T)::value, decltype(TO)::value, decltype(M)::value, decltype(C)::value>(rest.data(), p, count, start + from, full - from, at);
    });
  }
  if (full == n) return;
  // Mixed dtypes, many models and the ragged end: the scalar truth, on the elements from `full` on.
  void* at = skipTo(full);
  scalar::sparseMerge(rest.data(), types, p, count, start + full, n - full, at, to);
}

size_t windowKeys(const uint32_t* a, size_t n, uint32_t lo, uint32_t hi, uint32_t indexBits, uint64_t count, uint64_t start, uint64_t* keys,
                  uint64_t* above) {
  // Elements [0, wide) 8 at a time with AVX-512 where the CPU has it, the rest 4 at a time.
  const size_t wide = avx512Enabled() ? n - n % 8 : 0;
  const size_t m = wide > 0 ? windowKeysAvx512(a, wide, lo, hi, indexBits, count, start, keys, above) : 0;
  if (wide == n) return m;
  return m + windowKeysLoop(a + wide, n - wide, lo, hi, indexBits, count, start + wide, keys + m, above);
}

void absDeltaBits(const void* base, Dtype tb, const void* x, Dtype tx, size_t n, uint32_t* out) {
  // Elements [0, wide) 16 at a time with AVX-512 where the CPU has it, the rest 8 at a time.
  const size_t wide = avx512Enabled() ? absDeltaBitsAvx512(base, tb, x, tx, n, out) : 0;
  if (wide == n) return;
  const auto* b8 = static_cast<const uint8_t*>(base) + wide * dtypeSize(tb);
  const auto* x8 = static_cast<const uint8_t*>(x) + wide * dtypeSize(tx);
  withDtype(tb, [&](auto B) { withDtype(tx, [&](auto X) { absDeltaBitsLoop<decltype(B)::value, decltype(X)::value>(b8, x8, n - wide, out + wide); }); });
}

}  // namespace avx2
}  // namespace wm

#endif  // WM_HAVE_AVX2_BACKEND
