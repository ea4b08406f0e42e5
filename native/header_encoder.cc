#include "header_encoder.h"

#include <charconv>
#include <cmath>

#include "string_view_table.h"
#include "tensor_sizes.h"

namespace wm {
namespace {

constexpr size_t kPrefix = 8;                     // the header length, little-endian, before the JSON

void appendInteger(std::string& out, double value) {
  char buffer[24];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<uint64_t>(value));
  out.append(buffer, result.ptr);
}

bool isSize(double v) { return v >= 0 && v <= kMaxSafe && std::floor(v) == v && !std::signbit(v); }

// Whether JSON.stringify writes the name as its UTF-8 bytes between quotes, as far as bytes can tell: nothing to escape (control
// characters, '"', '\\') and no U+FFFD, which is what Node-API makes of a lone surrogate (JSON.stringify escapes those; a surrogate pair
// it writes as it is, four UTF-8 bytes); what it declines, the JavaScript encoder writes or refuses.
bool stringifiesAsItIs(std::string_view name) {
  for (size_t i = 0; i < name.size(); i++) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == '"' || c == '\\') return false;
    if (c == 0xef && i + 2 < name.size() && static_cast<unsigned char>(name[i + 1]) == 0xbf && static_cast<unsigned char>(name[i + 2]) == 0xbd) return false;
  }
  return true;
}

// Whether a names text (each name followed by '\n') may hold a name that stringifiesAsItIs declines: any byte it looks at, tested for
// the whole text in one pass that the compiler vectorizes (0xef over-approximates U+FFFD; such a text is then checked name by name).
bool mayNeedEscape(std::string_view text) {
  unsigned char suspect = 0;
  for (unsigned char c : text) suspect |= static_cast<unsigned char>((c < 0x20) & (c != '\n')) | (c == '"') | (c == '\\') | (c == 0xef);
  return suspect != 0;
}

}  // namespace

std::optional<EncodedHeader> encodeHeader(const HeaderColumnsIn& in, size_t maxHeaderBytes) {
  EncodedHeader out;
  out.starts.resize(in.count);
  // The JSON is written after room for the 8-byte length and padded in place: one buffer, no copy into a second.
  std::string& json = out.bytes;
  json.reserve(kPrefix + in.namesText.size() + in.count * 72 + 64 + 8);
  json.assign(kPrefix, '\0');
  json += '{';
  if (in.metadataJson) {
    json += "\"__metadata__\":";
    json += *in.metadataJson;
  }
  StringViewSet seen(in.namesUnique ? 0 : in.count);
  const bool checkEach = mayNeedEscape(in.namesText);
  double end = 0;
  size_t pos = 0;
  for (size_t i = 0; i < in.count; i++) {
    size_t stop = in.namesText.find('\n', pos);
    if (stop == std::string_view::npos) return std::nullopt;
    std::string_view name = in.namesText.substr(pos, stop - pos);
    pos = stop + 1;
    if (name == "__metadata__" || (checkEach && !stringifiesAsItIs(name)) || (!in.namesUnique && !seen.insert(name))) return std::nullopt;
    uint8_t code = in.dtypes[i];
    if (code >= in.dtypeBits->size()) return std::nullopt;
    // Elements, left to right as the crate's checked fold; anything past 2^53-1 or a partial byte is the JavaScript encoder's error.
    uint32_t first = in.shapeStarts[i], last = in.shapeStarts[i + 1];
    if (last < first || last > in.dimCount) return std::nullopt;
    for (uint32_t k = first; k < last; k++) {
      if (!isSize(in.dims[k])) return std::nullopt;
    }
    const double elements = checkedElements(in.dims, first, last);
    const double bytes = elements < 0 ? -1 : exactByteLength((*in.dtypeBits)[code], elements);
    if (bytes < 0) return std::nullopt;
    double begin = end;
    end = begin + bytes;
    if (end > kMaxSafe) return std::nullopt;
    out.starts[i] = begin;
    if (json.size() > kPrefix + 1) json += ',';
    json += '"';
    json += name;
    json += "\":{\"dtype\":\"";
    json += (*in.dtypeNames)[code];
    json += "\",\"shape\":[";
    for (uint32_t k = first; k < last; k++) {
      if (k > first) json += ',';
      appendInteger(json, in.dims[k]);
    }
    json += "],\"data_offsets\":[";
    appendInteger(json, begin);
    json += ',';
    appendInteger(json, end);
    json += "]}";
  }
  if (pos != in.namesText.size()) return std::nullopt;
  json += '}';
  // Space padding keeps (8 + header length) a multiple of 8.
  const size_t jsonLength = json.size() - kPrefix;
  const size_t headerLength = (jsonLength + 7) / 8 * 8;
  if (headerLength > maxHeaderBytes) return std::nullopt;
  json.append(headerLength - jsonLength, ' ');
  for (size_t b = 0; b < kPrefix; b++) json[b] = static_cast<char>((static_cast<uint64_t>(headerLength) >> (8 * b)) & 0xff);
  out.dataBytes = end;
  return out;
}

}  // namespace wm
