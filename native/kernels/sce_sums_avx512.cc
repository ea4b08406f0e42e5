// SCE's sums of squares of a tensor in memory with AVX-512 (sce.h's sceSumSquaresPieces), equal bit for bit to the scalar
// truth (native/tests/sce_selftest.cc): each piece's sum per model is one serial f64 chain in element order, the models' chains
// side by side, and each element's t, variance and keep bit are computed in registers, with no f64 task vectors or keep mask
// stored between loops; the keep bits go to the keep map.
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <algorithm>
#include <limits>
#include <vector>

#include "avx512_loads.h"
#include "sce.h"
#include "sce_avx512_variance.h"
#include "sce_registers_avx2.h"
#include "sce_sum_pieces.h"
#include "sparse_select.h"

namespace wm {
namespace avx2 {
namespace {

constexpr size_t kMaxModels = kSceRegisterModels;  // task vectors held in registers
// Elements of a piece per round: the kept squares of 8 models in 16 KB. One piece at a time: summing four pieces side by side (their
// chains' add latencies overlapping) made the pass slower, 1.05 against 0.79 ns per element (16 streams from memory, not 4); two side by
// side on the Zen 5 too, 0.86–0.91 against 0.75–0.80 (BENCHMARKS.md 2026-12-07, session of 07:31Z).
constexpr size_t kChunk = 256;

// Appends t_k^2 of elements first .. first + len - 1 to squares[k] (from kept[k] on), in element order, for the elements
// whose rank key reaches p.cut and whose t_k is finite; the others would add +0, which leaves a sum >= +0 as it is.
// M = the model count at compile time: the sources, outputs and counts stay in registers.
// With map (not null): map[j / 8] = the keep bits of elements first + j .. + 7, written after their variance bits are read.
template <Dtype T, size_t M>
__attribute__((target(WM_AVX512_TARGET))) void keptSquares(const void* const* srcs, const SceParams& p, uint64_t count, uint64_t first, size_t len,
                                                           double* const* squares, size_t* kept, uint8_t* map) {
  const bool all = p.cut == 0;
  const uint32_t* given = p.varianceBits;
  SceSquareCursors<M> c(srcs, p, squares, kept);
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(p.indexBits));
  const __m512i cuts = _mm512_set1_epi64(static_cast<long long>(p.cut)), eight = _mm512_set1_epi64(8);
  const __m512d inf = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  __m512i index = _mm512_sub_epi64(_mm512_set1_epi64(static_cast<long long>(count - 1 - first)), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
  for (size_t j = 0; j < len; j += 8) {
    const __mmask8 lanes = len - j >= 8 ? 0xFF : static_cast<__mmask8>((1u << (len - j)) - 1);
    const size_t i = first + j;
    const __m512d b = loadLanes8<T>(c.base, i, lanes);
    __m512d t[M];
    for (size_t k = 0; k < M; ++k) t[k] = _mm512_sub_pd(loadLanes8<T>(c.x[k], i, lanes), b);
    __mmask8 keep = lanes;
    if (!all) {
      const __m256i bits = given != nullptr ? loadLanes8(given + i, lanes) : sceVarianceBits8(reinterpret_cast<const double*>(t), 8, M);
      keep &= sceKeeps8(bits, index, shift, cuts);
    }
    index = _mm512_sub_epi64(index, eight);
    if (map != nullptr) map[j / 8] = keep;
    for (size_t k = 0; k < M; ++k) {
      const __m512d square = rounded8(_mm512_mul_pd(t[k], t[k]));
      const __mmask8 add = keep & _mm512_cmp_pd_mask(square, inf, _CMP_LT_OQ);  // t finite: t^2 < 2^258 (NaN compares false)
      _mm512_storeu_pd(c.out[k], _mm512_maskz_compress_pd(add, square));
      c.out[k] += __builtin_popcount(add);
    }
  }
  c.countInto(squares, kept);
}

// keptSquares with the model count m (1 .. kMaxModels) made a compile-time one.
template <Dtype T>
void keptSquares(size_t m, const void* const* srcs, const SceParams& p, uint64_t count, uint64_t first, size_t len, double* const* squares, size_t* kept,
                 uint8_t* map) {
  switch (m) {
    case 1: return keptSquares<T, 1>(srcs, p, count, first, len, squares, kept, map);
    case 2: return keptSquares<T, 2>(srcs, p, count, first, len, squares, kept, map);
    case 3: return keptSquares<T, 3>(srcs, p, count, first, len, squares, kept, map);
    case 4: return keptSquares<T, 4>(srcs, p, count, first, len, squares, kept, map);
    case 5: return keptSquares<T, 5>(srcs, p, count, first, len, squares, kept, map);
    case 6: return keptSquares<T, 6>(srcs, p, count, first, len, squares, kept, map);
    case 7: return keptSquares<T, 7>(srcs, p, count, first, len, squares, kept, map);
    default: return keptSquares<T, 8>(srcs, p, count, first, len, squares, kept, map);
  }
}

template <Dtype T>
void sumPieces(const void* const* srcs, const SceParams& p, uint64_t count, uint64_t piece, double* sums, uint8_t* keepMap) {
  const size_t m = p.sources.size();
  sumScePieces<kChunk>(m, count, piece, sums, keepMap, [&](uint64_t at, size_t len, double* const* squares, size_t* kept, uint8_t* map) {
    keptSquares<T>(m, srcs, p, count, at, len, squares, kept, map);
  });
}

}  // namespace

void sceSumSquaresPieces(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, double* sums, uint8_t* keepMap) {
  // Here: sources of one dtype, at most kMaxModels models, a cut below kRankKeyNone (none sums nothing), in 8 lanes with AVX-512 and 4
  // without; else the scalar loop of pieces.
  const Dtype type = types[p.base];
  const bool oneType = std::all_of(p.sources.begin(), p.sources.end(), [&](uint32_t s) { return types[s] == type; });
  if (!avx512Enabled()) {  // 4 lanes (sce_sums_avx2.cc), under the same conditions
    if (!sceSumSquaresPiecesAvx2(srcs, types, p, count, sums, keepMap)) scalar::sceSumSquaresPieces(srcs, types, p, count, sums, keepMap);
    return;
  }
  if (!oneType || p.sources.size() > kMaxModels || p.cut >= kRankKeyNone) {
    scalar::sceSumSquaresPieces(srcs, types, p, count, sums, keepMap);
    return;
  }
  withDtype(type, [&](auto T) { sumPieces<decltype(T)::value>(srcs, p, count, p.sumPiece, sums, keepMap); });
}

}  // namespace avx2
}  // namespace wm

#endif
