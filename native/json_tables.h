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

#include "string_view_table.h"

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
  StringViewTable<uint32_t> byName;  // name (a view into the text read) → its index in `names`: the parse's duplicate check, kept for lookups
};

// Stored tensors as weightMapAgrees compares them with an index: names, name k in shardNames[fileOf[k]].
struct StoredNamesIn {
  std::string_view namesText;  // each name followed by '\n'
  const uint32_t* fileOf;
  size_t count;
  const std::vector<std::string>* shardNames;
};

std::optional<HeaderTable> readHeaderTable(const char* text, size_t length, const std::vector<std::string>& dtypeNames);
// The table's views point into `text`, which must outlive it.
std::optional<WeightMapTable> readWeightMapTable(const char* text, size_t length);
// Whether the index read from `text` lists exactly the stored names, each once, each in its shard (the index's names are unique: its reader
// declines duplicates). False for anything else, which the caller then decides with its own checks.
bool weightMapAgrees(const char* text, const WeightMapTable& listed, const StoredNamesIn& stored);

}  // namespace wm
