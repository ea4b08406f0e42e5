// A header table's layout, checked in the addon (lib/format/header-columns.ts's validatedColumns, the same rules on the same
// numbers): the tensors in layout order, contiguous from 0, each as long as its dtype and shape make it. An 18,867-tensor MoE
// model's headers spent 4-11 ms in that check's per-tensor JavaScript, mostly before V8 optimized it.
#pragma once
#include <cstdint>
#include <vector>

#include "json_tables.h"

namespace wm {

enum class HeaderLayout {
  Valid,      // begins, byte lengths and element counts written
  Invalid,    // validatedColumns would return null
  Undecided,  // two tensors share both offsets (empty ones): their order is by name as JavaScript compares strings, left to it
};

// dtypeBits[c]: the bits per element of dtype code c (the dtype names readHeaderTable took, in their order).
HeaderLayout headerLayout(const HeaderTable& table, const std::vector<uint32_t>& dtypeBits, std::vector<double>& begins,
                          std::vector<double>& byteLengths, std::vector<double>& elementCounts);

}  // namespace wm
