// The driver SCE's in-register sums of squares share (sce_sums_avx512.cc, sce_sums_avx2.cc): a tensor's pieces one at a time, each
// model's kept squares of a chunk appended by the kernel, then added in element order, one serial f64 chain per model, the models'
// chains side by side (sce.h: the sums' rounding is the result).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sce.h"
#include "sce_model_count.h"

namespace wm {

// sums[c] += squares[c][i] for i < len, each chain in order, C chains side by side.
template <size_t C>
void addSceChains(double* sums, double* const* squares, size_t len) {
  double s[C];
  for (size_t c = 0; c < C; ++c) s[c] = sums[c];
  for (size_t i = 0; i < len; ++i) {
    for (size_t c = 0; c < C; ++c) s[c] += squares[c][i];
  }
  for (size_t c = 0; c < C; ++c) sums[c] = s[c];
}

// A keptSquares kernel's sources and where each model's next kept square goes (squares[k] + kept[k] on), M models.
template <size_t M>
struct SceSquareCursors {
  const void* base;
  const void* x[M];
  double* out[M];
  SceSquareCursors(const void* const* srcs, const SceParams& p, double* const* squares, const size_t* kept) : base(srcs[p.base]) {
    for (size_t k = 0; k < M; ++k) {
      x[k] = srcs[p.sources[k]];
      out[k] = squares[k] + kept[k];
    }
  }
  // The counts of squares appended, back into kept.
  void countInto(double* const* squares, size_t* kept) const {
    for (size_t k = 0; k < M; ++k) kept[k] = static_cast<size_t>(out[k] - squares[k]);
  }
};

// Each piece of `piece` elements of the tensor's count: keptSquares(at, len, squares, kept, map) appends model k's kept t^2 of
// elements at .. at + len - 1 to squares[k] from kept[k] on (writing up to 8 past them), and their keep bits to map where not null
// (the keep map's bytes of those elements, sceKeepMapBit); then their sums go to sums[k] in element order.
template <size_t kChunk, typename KeptSquares>
void sumScePieces(size_t m, uint64_t count, uint64_t piece, double* sums, uint8_t* keepMap, KeptSquares keptSquares) {
  thread_local std::vector<double> store;
  store.resize(kSceRegisterModels * (kChunk + 8));  // + 8: a compressed store writes a whole vector
  double* squares[kSceRegisterModels];
  for (size_t k = 0; k < kSceRegisterModels; ++k) squares[k] = store.data() + k * (kChunk + 8);
  for (uint64_t first = 0; first < count; first += piece) {
    const uint64_t end = std::min(count, first + piece);
    double pieceSums[kSceRegisterModels] = {};  // model k's sum over the piece
    // The piece's map over its own bits' start (sceKeepMapBit): a byte lies on the bits of an element of its piece at or before its own.
    uint8_t* map = keepMap == nullptr ? nullptr : keepMap + sceKeepMapBit(first, piece) / 8;
    for (uint64_t at = first; at < end; at += kChunk) {
      size_t kept[kSceRegisterModels] = {};
      keptSquares(at, static_cast<size_t>(std::min<uint64_t>(kChunk, end - at)), squares, kept, map == nullptr ? nullptr : map + (at - first) / 8);
      // The shorter chains padded with +0 (no change to a sum >= +0) to the longest, so that all run in one loop.
      const size_t most = *std::max_element(kept, kept + m);
      for (size_t k = 0; k < m; ++k) std::fill(squares[k] + kept[k], squares[k] + most, 0.0);
      withSceModelCount(m, [&](auto C) { addSceChains<decltype(C)::value>(pieceSums, squares, most); });
    }
    for (size_t k = 0; k < m; ++k) sums[k] += pieceSums[k];
  }
}

}  // namespace wm
