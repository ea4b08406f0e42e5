// The escape-free strict JSON subset of json_tables.h: every rule below only ever declines
// (returns nothing) where lib/format/json-strict.ts or the table's own checks might disagree.
#include "json_tables.h"

#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "string_view_table.h"

namespace wm {
namespace {

// Shallower than json-strict's default of 64, so that nothing it refuses for depth is vouched for.
constexpr int kMaxDepth = 32;
constexpr uint64_t kMaxSafeInteger = 9007199254740991ULL;
constexpr size_t kMaxSafeDigits = 16;

class Scanner {
 public:
  Scanner(const char* text, size_t length) : text_(text), length_(length) {}

  void skipSpace() {
    while (pos_ < length_) {
      char c = text_[pos_];
      if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
      pos_++;
    }
  }

  bool eat(char c) {
    skipSpace();
    if (pos_ < length_ && text_[pos_] == c) {
      pos_++;
      return true;
    }
    return false;
  }

  bool eatWord(std::string_view word) {
    skipSpace();
    if (std::string_view(text_ + pos_, length_ - pos_).substr(0, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool atEnd() {
    skipSpace();
    return pos_ == length_;
  }

  // A string without escapes or control characters (what needs neither is the same text in JSON and in UTF-8).
  bool string(TextRange& out) {
    skipSpace();
    if (pos_ >= length_ || text_[pos_] != '"') return false;
    size_t begin = ++pos_;
    skipPlain();
    while (pos_ < length_) {
      unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        out = {begin, pos_++};
        return true;
      }
      if (c == '\\' || c < 0x20) return false;
      pos_++;
    }
    return false;
  }

  // Past the bytes that need no look (anything but '"', '\\' and control characters), 16 at a time where SSE2 is at hand: a header's
  // names and dtype strings are most of its bytes. The byte loop in `string` decides the byte it stops at, and the rest.
  void skipPlain() {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i control = _mm_set1_epi8(0x1f);
    while (pos_ + 16 <= length_) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text_ + pos_));
      // max(x, 0x1f) == 0x1f exactly where x <= 0x1f, unsigned.
      const __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                                        _mm_cmpeq_epi8(_mm_max_epu8(x, control), control));
      const int mask = _mm_movemask_epi8(stop);
      if (mask != 0) {
        pos_ += static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
        return;
      }
      pos_ += 16;
    }
#endif
  }

  // An unsigned integer literal below 2^53, without leading zeros: json-strict's size fields.
  bool size(double& out) {
    skipSpace();
    size_t begin = pos_;
    uint64_t value = 0;
    while (pos_ < length_ && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (pos_ - begin == kMaxSafeDigits) return false;
      value = value * 10 + static_cast<uint64_t>(text_[pos_] - '0');
      pos_++;
    }
    size_t digits = pos_ - begin;
    if (digits == 0 || (digits > 1 && text_[begin] == '0') || value > kMaxSafeInteger) return false;
    out = static_cast<double>(value);
    return true;
  }

  // Any value of the subset (objects without duplicate keys, arrays, strings, sizes, literals), checked and skipped.
  bool skipValue(int depth) {
    skipSpace();
    if (pos_ >= length_) return false;
    char c = text_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= kMaxDepth) return false;
      pos_++;
      char close = c == '{' ? '}' : ']';
      if (eat(close)) return true;
      StringViewSet keys;
      do {
        if (c == '{') {
          TextRange key;
          if (!string(key) || !keys.insert(view(key)) || !eat(':')) return false;
        }
        if (!skipValue(depth + 1)) return false;
      } while (eat(','));
      return eat(close);
    }
    if (c == '"') {
      TextRange ignored;
      return string(ignored);
    }
    if (c >= '0' && c <= '9') {
      double ignored;
      return size(ignored);
    }
    return eatWord("null") || eatWord("true") || eatWord("false");
  }

  std::string_view view(TextRange r) const { return std::string_view(text_ + r.begin, r.end - r.begin); }

 private:
  const char* text_;
  size_t length_;
  size_t pos_ = 0;
};

bool readSizes(Scanner& s, std::vector<double>& out) {
  if (!s.eat('[')) return false;
  if (s.eat(']')) return true;
  do {
    double v;
    if (!s.size(v)) return false;
    out.push_back(v);
  } while (s.eat(','));
  return s.eat(']');
}

// `{"k": "v", …}` of escape-free strings, each key once: the header's `__metadata__`.
bool readStringMap(Scanner& s, std::vector<TextRange>& out) {
  if (!s.eat('{')) return false;
  if (s.eat('}')) return true;
  StringViewSet keys;
  do {
    TextRange key, value;
    if (!s.string(key) || !keys.insert(s.view(key)) || !s.eat(':') || !s.string(value)) return false;
    out.push_back(key);
    out.push_back(value);
  } while (s.eat(','));
  return s.eat('}');
}

// One tensor entry: exactly dtype, shape and data_offsets, in any order.
bool readEntry(Scanner& s, HeaderTable& t, const std::vector<std::string>& dtypeNames) {
  if (!s.eat('{')) return false;
  bool seenDtype = false, seenShape = false, seenOffsets = false;
  for (int field = 0; field < 3; field++) {
    if (field > 0 && !s.eat(',')) return false;
    TextRange key;
    if (!s.string(key) || !s.eat(':')) return false;
    std::string_view name = s.view(key);
    if (name == "dtype" && !seenDtype) {
      seenDtype = true;
      TextRange value;
      if (!s.string(value)) return false;
      // Most tensors have the dtype of the one before (whose code is the first name that matches): that name is tried first.
      size_t d = t.dtype.empty() ? 0 : t.dtype.back();
      if (d >= dtypeNames.size() || dtypeNames[d] != s.view(value)) {
        d = 0;
        while (d < dtypeNames.size() && dtypeNames[d] != s.view(value)) d++;
        if (d == dtypeNames.size()) return false;
      }
      t.dtype.push_back(static_cast<uint8_t>(d));
    } else if (name == "shape" && !seenShape) {
      seenShape = true;
      if (!readSizes(s, t.dims)) return false;
    } else if (name == "data_offsets" && !seenOffsets) {
      seenOffsets = true;
      size_t before = t.offsets.size();
      if (!readSizes(s, t.offsets) || t.offsets.size() != before + 2) return false;
    } else {
      return false;
    }
  }
  t.shapeStart.push_back(static_cast<uint32_t>(t.dims.size()));
  return s.eat('}');
}

}  // namespace

std::optional<HeaderTable> readHeaderTable(const char* text, size_t length, const std::vector<std::string>& dtypeNames) {
  if (dtypeNames.size() > 255 || length > UINT32_MAX) return std::nullopt;
  Scanner s(text, length);
  HeaderTable t;
  t.shapeStart.push_back(0);
  if (!s.eat('{')) return std::nullopt;
  if (!s.eat('}')) {
    // A tensor entry takes some 90 bytes of JSON: sized for that, so that a MoE shard's ~1,200 keys do not regrow the table.
    StringViewSet keys(length / 64);
    do {
      TextRange key;
      if (!s.string(key) || !keys.insert(s.view(key)) || !s.eat(':')) return std::nullopt;
      if (s.view(key) == "__metadata__") {
        if (s.eatWord("null")) continue;
        t.hasMetadata = true;
        if (!readStringMap(s, t.metadata)) return std::nullopt;
      } else {
        t.names.push_back(key);
        if (!readEntry(s, t, dtypeNames)) return std::nullopt;
      }
    } while (s.eat(','));
    if (!s.eat('}')) return std::nullopt;
  }
  if (!s.atEnd()) return std::nullopt;
  return t;
}

std::optional<WeightMapTable> readWeightMapTable(const char* text, size_t length) {
  Scanner s(text, length);
  WeightMapTable t;
  bool found = false;
  if (!s.eat('{') || s.eat('}')) return std::nullopt;
  StringViewSet keys;
  do {
    TextRange key;
    if (!s.string(key) || !keys.insert(s.view(key)) || !s.eat(':')) return std::nullopt;
    if (s.view(key) != "weight_map") {
      if (!s.skipValue(1)) return std::nullopt;
      continue;
    }
    found = true;
    if (!s.eat('{') || s.eat('}')) return std::nullopt;
    // An index line takes some 80 bytes: sized for that, so that a MoE index's ~19,000 names do not regrow the table.
    t.byName = StringViewTable<uint32_t>(length / 64);
    StringViewTable<uint32_t> fileIndex;
    std::string_view lastFile;
    uint32_t lastShard = 0;
    do {
      TextRange name, file;
      if (!s.string(name) || !t.byName.emplace(s.view(name), static_cast<uint32_t>(t.names.size())).second || !s.eat(':') || !s.string(file)) {
        return std::nullopt;
      }
      // A name that is an array index would come first in JavaScript's key order: left to the slow reader.
      std::string_view n = s.view(name);
      if (!n.empty() && n.find_first_not_of("0123456789") == std::string_view::npos) return std::nullopt;
      // Consecutive names mostly share a shard: one compare instead of a hash of its name.
      if (t.files.empty() || s.view(file) != lastFile) {
        auto [at, added] = fileIndex.emplace(s.view(file), static_cast<uint32_t>(t.files.size()));
        if (added) t.files.push_back(file);
        lastFile = s.view(file);
        lastShard = *at;
      }
      t.names.push_back(name);
      t.shard.push_back(lastShard);
    } while (s.eat(','));
    if (!s.eat('}')) return std::nullopt;
  } while (s.eat(','));
  if (!s.eat('}') || !s.atEnd() || !found) return std::nullopt;
  return t;
}

bool weightMapAgrees(const char* text, const WeightMapTable& listed, const StoredNamesIn& stored) {
  const size_t count = listed.names.size();
  if (stored.count != count) return false;
  // Each stored shard as the index of the listed file of the same name (-1: none), so that each name's shard is one integer compare.
  std::vector<int64_t> listedFileOf(stored.shardNames->size(), -1);
  for (size_t f = 0; f < stored.shardNames->size(); f++) {
    for (size_t g = 0; g < listed.files.size() && listedFileOf[f] < 0; g++) {
      const TextRange& r = listed.files[g];
      if (std::string_view(text + r.begin, r.end - r.begin) == (*stored.shardNames)[f]) listedFileOf[f] = static_cast<int64_t>(g);
    }
  }
  std::vector<bool> found(count, false);
  const std::string_view names = stored.namesText;
  size_t pos = 0;
  for (size_t k = 0; k < count; k++) {
    size_t end = names.find('\n', pos);
    if (end == std::string_view::npos || stored.fileOf[k] >= listedFileOf.size()) return false;
    const uint32_t* at = listed.byName.find(names.substr(pos, end - pos));
    if (at == nullptr || found[*at] || listedFileOf[stored.fileOf[k]] != static_cast<int64_t>(listed.shard[*at])) return false;
    found[*at] = true;
    pos = end + 1;
  }
  return pos == names.size();
}

}  // namespace wm
