// A tensor's element count and byte length as lib/format/tensor-sizes.ts and header-columns.ts compute them, in the same double
// arithmetic: the header encoder's and the header layout check's one definition.
#pragma once
#include <cmath>
#include <cstdint>

namespace wm {

constexpr double kMaxSafe = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER, 2^53 - 1

// The product of dims[first .. last), left to right as the crate's checked fold; -1 past 2^53 - 1.
inline double checkedElements(const double* dims, uint32_t first, uint32_t last) {
  double elements = 1;
  for (uint32_t k = first; k < last; ++k) {
    const double dim = dims[k];
    if (dim != 0 && elements > std::floor(kMaxSafe / dim)) return -1;
    elements *= dim;
  }
  return elements;
}

// Bytes of `elements` elements of `bits` bits (whole groups of elements filling whole bytes); -1 for a partial byte or past 2^53 - 1.
inline double exactByteLength(uint32_t bits, double elements) {
  const uint32_t common = bits % 8 == 0 ? 8 : bits % 4 == 0 ? 4 : bits % 2 == 0 ? 2 : 1;
  const double perGroup = 8.0 / common, bytesPerGroup = static_cast<double>(bits) / common;
  if (std::fmod(elements, perGroup) != 0) return -1;
  const double groups = elements / perGroup;
  return groups > std::floor(kMaxSafe / bytesPerGroup) ? -1 : groups * bytesPerGroup;
}

}  // namespace wm
