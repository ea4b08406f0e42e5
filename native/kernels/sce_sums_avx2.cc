// SCE's sums of squares of a tensor in memory with the task vectors in 4-lane AVX2 registers (sce_registers_avx2.h), for CPUs without
// AVX-512: sce_sums_avx512.cc's kernel with its compressed stores made of a permutation per keep mask; the same serial chains
// (sce_sum_pieces.h), so the same bits as the scalar truth.
#include "cpu_backends.h"

#if defined(WM_HAVE_AVX2_BACKEND)
#include <algorithm>
#include <array>
#include <limits>

#include "sce_lanes_avx2.h"
#include "sce_model_count.h"
#include "sce_registers_avx2.h"
#include "sce_sum_pieces.h"
#include "sparse_select.h"

namespace wm {
namespace avx2 {
namespace {

constexpr size_t kChunk = 256;  // elements of a piece per round (sce_sums_avx512.cc's)

// For each 4-bit mask, the 32-bit lane indices that move its set f64 lanes to the front, in order (VCOMPRESSPD's effect).
constexpr std::array<std::array<int, 8>, 16> compressLanes() {
  std::array<std::array<int, 8>, 16> table{};
  for (int mask = 0; mask < 16; ++mask) {
    int to = 0;
    for (int lane = 0; lane < 4; ++lane) {
      if ((mask >> lane & 1) == 0) continue;
      table[mask][2 * to] = 2 * lane;
      table[mask][2 * to + 1] = 2 * lane + 1;
      ++to;
    }
  }
  return table;
}
alignas(32) constexpr std::array<std::array<int, 8>, 16> kCompressLanes = compressLanes();

// The 4 elements from i (r <= 4 of them): their task vectors into t, and a bit per lane where sceKeep's rule keeps it (all: cut 0;
// given: the stored variance bits, else computed from t; index: the lanes' index keys).
template <Dtype T, size_t M>
WM_AVX2_INLINE unsigned keptOf4(const SceSquareCursors<M>& c, bool all, const uint32_t* given, size_t i, size_t r, __m128i shift, __m256i index,
                                __m256i cuts, __m256d* t) {
  loadTasks4<T, M>(c.base, c.x, i, r, t);
  unsigned keep = (1u << r) - 1;
  if (!all) {
    const __m128i bits = given != nullptr ? loadLanes4(given + i, r) : varianceBits4(Tasks4InRegisters{t}, M);
    keep &= ~static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(belowCut4(bits, shift, index, cuts))));
  }
  return keep;
}

// Appends each model's t^2 of the lanes in `keep` whose t is finite to its squares (the others would add +0, which leaves a sum >= +0
// as it is).
template <size_t M>
WM_AVX2_INLINE void appendSquares(SceSquareCursors<M>& c, const __m256d* t, unsigned keep) {
  const __m256d inf = _mm256_set1_pd(std::numeric_limits<double>::infinity());
  for (size_t k = 0; k < M; ++k) {
    const __m256d square = rounded(_mm256_mul_pd(t[k], t[k]));
    const unsigned add = keep & static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(square, inf, _CMP_LT_OQ)));  // t finite (NaN: false)
    const __m256i lanes = _mm256_load_si256(reinterpret_cast<const __m256i*>(kCompressLanes[add].data()));
    _mm256_storeu_pd(c.out[k], _mm256_castsi256_pd(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(square), lanes)));
    c.out[k] += __builtin_popcount(add);
  }
}

// Appends t_k^2 of elements first .. first + len - 1 to squares[k] (from kept[k] on), in element order, for the elements whose rank
// key reaches p.cut and whose t_k is finite. With map (not null): map[j / 8] = the keep bits of elements first + j .. + 7, written
// after their variance bits are read. 8 elements a step (their map byte at once), then 4 at a time.
template <Dtype T, size_t M>
__attribute__((target("avx2,fma,f16c"))) void keptSquares(const void* const* srcs, const SceParams& p, uint64_t count, uint64_t first, size_t len,
                                                         double* const* squares, size_t* kept, uint8_t* map) {
  const bool all = p.cut == 0;
  const uint32_t* given = p.varianceBits;
  SceSquareCursors<M> c(srcs, p, squares, kept);
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(p.indexBits));
  const __m256i cuts = _mm256_set1_epi64x(static_cast<long long>(p.cut)), four = _mm256_set1_epi64x(4);
  __m256i index = _mm256_sub_epi64(_mm256_set1_epi64x(static_cast<long long>(count - 1 - first)), _mm256_set_epi64x(3, 2, 1, 0));
  size_t j = 0;
  for (; j + 8 <= len; j += 8) {
    __m256d tLo[M], tHi[M];
    const unsigned keepLo = keptOf4<T, M>(c, all, given, first + j, 4, shift, index, cuts, tLo);
    const unsigned keepHi = keptOf4<T, M>(c, all, given, first + j + 4, 4, shift, _mm256_sub_epi64(index, four), cuts, tHi);
    index = _mm256_sub_epi64(index, _mm256_add_epi64(four, four));
    if (map != nullptr) map[j / 8] = static_cast<uint8_t>(keepLo | keepHi << 4);
    appendSquares(c, tLo, keepLo);
    appendSquares(c, tHi, keepHi);
  }
  unsigned byte = 0;  // the map byte of elements j & ~7 .. + 7, its low half kept until the high one is known
  for (; j < len; j += 4) {
    const size_t r = std::min<size_t>(4, len - j);
    __m256d t[M];
    const unsigned keep = keptOf4<T, M>(c, all, given, first + j, r, shift, index, cuts, t);
    index = _mm256_sub_epi64(index, four);
    if (map != nullptr) {
      byte |= keep << (j % 8);
      if (j % 8 == 4 || j + 4 >= len) {
        map[j / 8] = static_cast<uint8_t>(byte);
        byte = 0;
      }
    }
    appendSquares(c, t, keep);
  }
  c.countInto(squares, kept);
}

}  // namespace

bool sceSumSquaresPiecesAvx2(const void* const* srcs, const Dtype* types, const SceParams& p, uint64_t count, double* sums, uint8_t* keepMap) {
  if (!sceFitsRegisters(types, p) || p.cut >= kRankKeyNone) return false;
  const Dtype type = types[p.base];
  const size_t m = p.sources.size();
  withDtype(type, [&](auto T) {
    withSceModelCount(m, [&](auto M) {
      sumScePieces<kChunk>(m, count, p.sumPiece, sums, keepMap, [&](uint64_t at, size_t len, double* const* squares, size_t* kept, uint8_t* map) {
        keptSquares<decltype(T)::value, decltype(M)::value>(srcs, p, count, at, len, squares, kept, map);
      });
    });
  });
  return true;
}

}  // namespace avx2
}  // namespace wm

#endif
