// Tables from the JSON that opening a model reads: a safetensors header, an index's weight_map.
// A fast path only: a reader returns nothing ("not vouched for") unless the text is in a strict,
// escape-free subset on which lib/format/json-strict.ts would accept it and lib/format/safetensors.ts
// (or lib/model/checkpoint.ts) would read exactly these tables; anything else goes to those readers,
// which decide with their exact errors. Input must be valid UTF-8 (the caller checks).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wm {

// A [begin, end) byte range of the input: a string's contents, escape-free.
struct TextRange {
  size_t begin;
  size_t end;
};

struct HeaderTable {
  // In the order written; `dtype` indexes the dtype names the caller passed.
  std::vector<TextRange> names;
  std::vector<uint8_t> dtype;
  std::vector<uint32_t> shapeStart;  // names.size() + 1 entries into dims
  std::vector<double> dims;
  std::vector<double> offsets;  // begin, end per tensor
  bool hasMetadata = false;     // `__metadata__` present and not null
  std::vector<TextRange> metadata;  // key, value, key, value, …
};

struct WeightMapTable {
  std::vector<TextRange> names;   // weight_map's keys in the order written
  std::vector<uint32_t> shard;    // per name: index into files
  std::vector<TextRange> files;   // distinct shard names, first appearance first
};

std::optional<HeaderTable> readHeaderTable(const char* text, size_t length, const std::vector<std::string>& dtypeNames);
std::optional<WeightMapTable> readWeightMapTable(const char* text, size_t length);

}  // namespace wm
