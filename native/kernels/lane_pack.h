// Left-pack tables for AVX2, which has no compress: the lanes set in a mask of N bits, ascending, as the first popcount(mask)
// of N indices (for VPERMD, or added to a position).
#pragma once
#include <cstdint>

namespace wm {

template <uint32_t N>
struct LanePack {
  uint32_t lanes[1u << N][N];
  constexpr LanePack() : lanes() {
    for (uint32_t m = 0; m < (1u << N); ++m) {
      uint32_t k = 0;
      for (uint32_t q = 0; q < N; ++q) {
        if ((m >> q) & 1) lanes[m][k++] = q;
      }
    }
  }
};

}  // namespace wm
