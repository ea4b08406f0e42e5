// model.safetensors.index.json's weight_map written from the output shards' name columns (lib/engine/model-files.ts's
// indexText, the bytes JSON.stringify gives for the sorted map): no JavaScript string, Map entry or sort compare per tensor.
// A fast path only: it declines (nullopt) anything but plain ASCII names that no JSON string escapes and that cannot be an
// array index (no leading digit), each listed once; model-files.ts then writes those with its own code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wm {

struct IndexWeightMapIn {
  std::string_view namesText;                   // every shard's names in turn, each name followed by '\n'
  const uint32_t* shardCounts;                  // names per shard, in namesText order
  size_t shardCount;
  const std::vector<std::string>* shardTails;   // per shard, what follows a name on its line (`: "shard.safetensors"`)
  std::string_view prefix;                      // the file's text before the weight_map object
  std::string_view suffix;                      // and after it
};

// prefix + `{\n    "name": "shard",\n … \n  }` (names in byte order, which is UTF-16 order for ASCII) + suffix.
std::optional<std::string> encodeIndexWeightMap(const IndexWeightMapIn& in);

}  // namespace wm
