// A safetensors header encoded from columns (lib/format/safetensors.ts's encodeHeaderColumns, the planner's path): the same bytes,
// without a JavaScript string per tensor. A fast path only: it declines (nullopt) anything but plain names (none that needs a JSON
// escape, no U+FFFD, a lone surrogate's stand-in), valid sizes and a header under the limit, which the
// JavaScript encoder then writes or refuses with its exact error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wm {

struct HeaderColumnsIn {
  std::string_view namesText;  // each name followed by '\n'
  const uint8_t* dtypes;       // codes into dtypeNames / dtypeBits
  size_t count;
  const uint32_t* shapeStarts;  // count + 1 starts into dims
  const double* dims;
  size_t dimCount;
  const std::vector<std::string>* dtypeNames;
  const std::vector<uint32_t>* dtypeBits;
  std::optional<std::string_view> metadataJson;  // `__metadata__`'s value, already encoded
  bool namesUnique = false;                       // a header reader's names, each once (it refuses a key given twice): no set to check
};

struct EncodedHeader {
  std::string bytes;          // 8-byte length prefix, JSON, space padding to a multiple of 8
  std::vector<double> starts;  // each tensor's begin in the data section
  double dataBytes = 0;
};

std::optional<EncodedHeader> encodeHeader(const HeaderColumnsIn& in, size_t maxHeaderBytes);

}  // namespace wm
