// header_layout.h: validatedColumns' rules in double arithmetic, as JavaScript computes them.
#include "header_layout.h"

#include "tensor_sizes.h"

namespace wm {

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
    const double elements = checkedElements(table.dims.data(), table.shapeStart[i], table.shapeStart[i + 1]);
    if (elements < 0) return HeaderLayout::Invalid;
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
