#include "index_encoder.h"

#include <algorithm>

namespace wm {
namespace {

// Printable ASCII without '"' and '\\': JSON.stringify writes such a name as it is, between quotes.
bool isPlainName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;  // a digit-led name may be an array index, ordered first
  for (char c : name) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  }
  return true;
}

struct Entry {
  std::string_view name;
  uint32_t shard;
};

bool byName(const Entry& a, const Entry& b) { return a.name < b.name; }

// Past this many sorted runs, one sort from scratch.
constexpr size_t kMaxRuns = 64;

// Sorted by name. Names mostly come as a few sorted runs (each shard's header lists its tensors by name, and the data follows): those
// are merged pairwise, log2(runs) passes over the entries, instead of a sort's ~log2(n) compares each (names share long prefixes).
void sortByName(std::vector<Entry>& entries) {
  std::vector<size_t> bounds{0};
  for (size_t i = 1; i < entries.size() && bounds.size() <= kMaxRuns; i++) {
    if (byName(entries[i], entries[i - 1])) bounds.push_back(i);
  }
  if (bounds.size() > kMaxRuns) {
    std::sort(entries.begin(), entries.end(), byName);
    return;
  }
  bounds.push_back(entries.size());
  while (bounds.size() > 2) {
    std::vector<size_t> merged{0};
    for (size_t r = 0; r + 1 < bounds.size(); r += 2) {
      const size_t end = r + 2 < bounds.size() ? bounds[r + 2] : bounds[r + 1];
      if (r + 2 < bounds.size()) std::inplace_merge(entries.begin() + bounds[r], entries.begin() + bounds[r + 1], entries.begin() + end, byName);
      merged.push_back(end);
    }
    bounds = std::move(merged);
  }
}

}  // namespace

std::optional<std::string> encodeIndexWeightMap(const IndexWeightMapIn& in) {
  std::vector<Entry> entries;
  size_t pos = 0;
  for (size_t s = 0; s < in.shardCount; s++) {
    for (uint32_t k = 0; k < in.shardCounts[s]; k++) {
      size_t stop = in.namesText.find('\n', pos);
      if (stop == std::string_view::npos) return std::nullopt;
      std::string_view name = in.namesText.substr(pos, stop - pos);
      if (!isPlainName(name)) return std::nullopt;
      entries.push_back({name, static_cast<uint32_t>(s)});
      pos = stop + 1;
    }
  }
  // A name holding '\n' splits in two and leaves the counts short of the text: declined.
  if (pos != in.namesText.size() || entries.empty() || in.shardTails->size() != in.shardCount) return std::nullopt;
  sortByName(entries);
  size_t bytes = in.prefix.size() + in.suffix.size() + 8;
  for (size_t i = 0; i < entries.size(); i++) {
    // A name listed twice is the JavaScript path's (its map keeps one line, under the last shard).
    if (i > 0 && entries[i].name == entries[i - 1].name) return std::nullopt;
    bytes += entries[i].name.size() + (*in.shardTails)[entries[i].shard].size() + 8;
  }
  std::string out;
  out.reserve(bytes);
  out += in.prefix;
  out += '{';
  for (size_t i = 0; i < entries.size(); i++) {
    out += i == 0 ? "\n    \"" : ",\n    \"";
    out += entries[i].name;
    out += '"';
    out += (*in.shardTails)[entries[i].shard];
  }
  out += "\n  }";
  out += in.suffix;
  return out;
}

}  // namespace wm
