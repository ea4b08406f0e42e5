// header_layout.h: validatedColumns' rules in double arithmetic, as JavaScript computes them.
#include "header_layout.h"

#include <cmath>

namespace wm {
namespace {

constexpr double kMaxSafe = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

// header-columns.ts's exactByteLength: bytes of `elements` elements of `bits` bits, or -1 for a partial byte or past 2^53 - 1.
double exactByteLength(uint32_t bits, double elements) {
  const uint32_t common = bits % 8 == 0 ? 8 : bits % 4 == 0 ? 4 : bits % 2 == 0 ? 2 : 1;
  const double perGroup = 8.0 / common, bytesPerGroup = static_cast<double>(bits) / common;
  if (std::fmod(elements, perGroup) != 0) return -1;
  const double groups = elements / perGroup;
  return groups > std::floor(kMaxSafe / bytesPerGroup) ? -1 : groups * bytesPerGroup;
}

}  // namespace

HeaderLayout headerLayout(const HeaderTable& table, const std::vector<uint32_t>& dtypeBits, std::vector<double>& begins,
                          std::vector<double>& byteLengths, std::vector<double>& elementCounts) {
  const size_t count = table.names.size();
  begins.assign(count, 0);
  byteLengths.assign(count, 0);
  elementCounts.assign(count, 0);
  double end = 0;
  for (size_t i = 0; i < count; ++i) {
    const double begin = table.offsets[2 * i], stop = table.offsets[2 * i + 1];
    if (stop < begin || begin != end) return HeaderLayout::Invalid;
    if (i > 0 && begin == table.offsets[2 * i - 2] && stop == table.offsets[2 * i - 1]) return HeaderLayout::Undecided;
    end = stop;
    double elements = 1;
    for (uint32_t k = table.shapeStart[i]; k < table.shapeStart[i + 1]; ++k) {
      const double dim = table.dims[k];
      if (dim != 0 && elements > std::floor(kMaxSafe / dim)) return HeaderLayout::Invalid;
      elements *= dim;
    }
    if (table.dtype[i] >= dtypeBits.size()) return HeaderLayout::Undecided;
    const double bytes = exactByteLength(dtypeBits[table.dtype[i]], elements);
    if (bytes != stop - begin) return HeaderLayout::Invalid;
    begins[i] = begin;
    byteLengths[i] = bytes;
    elementCounts[i] = elements;
  }
  return HeaderLayout::Valid;
}

}  // namespace wm
