// Node-API glue of json_tables.h: byte ranges become strings, columns become typed arrays.
#include "json_tables_binding.h"

#include <cstring>
#include <memory>
#include <string_view>

#include "header_encoder.h"
#include "header_layout.h"
#include "index_encoder.h"
#include "json_tables.h"
#include "string_view_table.h"

namespace wm {
namespace {

Napi::Uint8Array bytesArgument(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), "json tables: the first argument must be a Uint8Array");
  }
  return info[0].As<Napi::Uint8Array>();
}

Napi::Array strings(Napi::Env env, const char* text, const std::vector<TextRange>& ranges) {
  Napi::Array out = Napi::Array::New(env, ranges.size());
  for (size_t i = 0; i < ranges.size(); i++) {
    out.Set(static_cast<uint32_t>(i), Napi::String::New(env, text + ranges[i].begin, ranges[i].end - ranges[i].begin));
  }
  return out;
}

// Many names as one string, each followed by '\n' (which no escape-free JSON string holds): JavaScript splits it in one
// builtin call, where a string per name through Node-API costs ~1-2 µs each (an 18,867-tensor MoE index: ~40 ms).
Napi::String joined(Napi::Env env, const char* text, const std::vector<TextRange>& ranges) {
  size_t length = 0;
  for (const TextRange& r : ranges) length += r.end - r.begin + 1;
  std::string out;
  out.reserve(length);
  for (const TextRange& r : ranges) {
    out.append(text + r.begin, r.end - r.begin);
    out.push_back('\n');
  }
  return Napi::String::New(env, out);
}

// Names text given as one string, or as a list of strings that joined make it (json-tables.ts passes a model's texts file by file,
// as the header reader gave them, instead of joining megabytes of them in JavaScript); false for anything else.
bool isText(const Napi::Value& v) {
  if (v.IsString()) return true;
  if (!v.IsArray()) return false;
  Napi::Array parts = v.As<Napi::Array>();
  for (uint32_t i = 0; i < parts.Length(); i++) {
    if (!parts.Get(i).IsString()) return false;
  }
  return true;
}

std::string textOf(const Napi::Value& v) {
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  Napi::Array parts = v.As<Napi::Array>();
  std::string out;
  for (uint32_t i = 0; i < parts.Length(); i++) out += parts.Get(i).As<Napi::String>().Utf8Value();
  return out;
}

std::vector<std::string> stringsOf(const Napi::Array& array) {
  std::vector<std::string> out;
  for (uint32_t i = 0; i < array.Length(); i++) out.push_back(array.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

// A Buffer over the encoder's bytes, which it then owns (no copy into fresh pages; a copy only where the runtime forbids external buffers).
Napi::Buffer<char> ownedBuffer(Napi::Env env, std::string&& bytes) {
  auto* owned = new std::string(std::move(bytes));
  return Napi::Buffer<char>::NewOrCopy(env, owned->data(), owned->size(), [](Napi::Env, char*, std::string* s) { delete s; }, owned);
}

template <typename Array, typename T>
Array column(Napi::Env env, const std::vector<T>& values) {
  Array out = Array::New(env, values.size());
  if (!values.empty()) std::memcpy(out.Data(), values.data(), values.size() * sizeof(T));
  return out;
}

}  // namespace

Napi::Value ReadHeaderTable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array json = bytesArgument(info);
  if (info.Length() < 2 || !info[1].IsArray()) throw Napi::TypeError::New(env, "readHeaderTable: dtypeNames must be an array of strings");
  Napi::Array names = info[1].As<Napi::Array>();
  std::vector<std::string> dtypeNames;
  for (uint32_t i = 0; i < names.Length(); i++) dtypeNames.push_back(names.Get(i).As<Napi::String>().Utf8Value());
  const char* text = reinterpret_cast<const char*>(json.Data());
  std::optional<HeaderTable> table = readHeaderTable(text, json.ByteLength(), dtypeNames);
  if (!table) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("namesText", joined(env, text, table->names));
  out.Set("dtypes", column<Napi::Uint8Array>(env, table->dtype));
  out.Set("shapeStarts", column<Napi::Uint32Array>(env, table->shapeStart));
  out.Set("dims", column<Napi::Float64Array>(env, table->dims));
  out.Set("offsets", column<Napi::Float64Array>(env, table->offsets));
  out.Set("metadata", table->hasMetadata ? Napi::Value(strings(env, text, table->metadata)) : env.Null());
  // With the dtypes' bits (one per name given), the layout checked too: its columns, null where invalid, absent where undecided.
  if (info.Length() >= 3 && info[2].IsTypedArray() && info[2].As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array) {
    Napi::Uint32Array bits = info[2].As<Napi::Uint32Array>();
    if (bits.ElementLength() == dtypeNames.size()) {
      std::vector<double> begins, byteLengths, elementCounts;
      const HeaderLayout layout = headerLayout(*table, std::vector<uint32_t>(bits.Data(), bits.Data() + bits.ElementLength()), begins, byteLengths,
                                               elementCounts);
      if (layout == HeaderLayout::Invalid) out.Set("laidOut", env.Null());
      if (layout == HeaderLayout::Valid) {
        Napi::Object laidOut = Napi::Object::New(env);
        laidOut.Set("begins", column<Napi::Float64Array>(env, begins));
        laidOut.Set("byteLengths", column<Napi::Float64Array>(env, byteLengths));
        laidOut.Set("elementCounts", column<Napi::Float64Array>(env, elementCounts));
        out.Set("laidOut", laidOut);
      }
    }
  }
  return out;
}

namespace {

// An index's text and its weight_map table, kept native between reading it and checking the stored tensors against it: the names
// cross into JavaScript only when asked for (an 18,867-tensor MoE index is ~1.2 MB of names), and the check reuses the reader's hash table.
// The text is the caller's bytes, held by a reference rather than copied (a fresh page costs more than its copy: BENCHMARKS.md
// 2026-12-04); json-tables.ts passes the index file as read, which nothing writes to afterwards.
struct WeightMapIndex {
  Napi::Reference<Napi::Uint8Array> bytes;
  const char* text = nullptr;
  WeightMapTable table;
};

const WeightMapIndex& weightMapArgument(const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), std::string(what) + ": the first argument must be readWeightMapTable's map");
  return *info[0].As<Napi::External<WeightMapIndex>>().Data();
}

}  // namespace

Napi::Value ReadWeightMapTable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array json = bytesArgument(info);
  auto index = std::make_unique<WeightMapIndex>();
  index->text = reinterpret_cast<const char*>(json.Data());
  std::optional<WeightMapTable> table = readWeightMapTable(index->text, json.ByteLength());
  if (!table) return env.Null();
  index->table = std::move(*table);
  index->bytes = Napi::Persistent(json);
  Napi::Object out = Napi::Object::New(env);
  out.Set("shards", column<Napi::Uint32Array>(env, index->table.shard));
  out.Set("files", strings(env, index->text, index->table.files));
  out.Set("map", Napi::External<WeightMapIndex>::New(env, index.release(), [](Napi::Env, WeightMapIndex* map) { delete map; }));
  return out;
}

Napi::Value WeightMapNamesText(const Napi::CallbackInfo& info) {
  const WeightMapIndex& map = weightMapArgument(info, "weightMapNamesText");
  return joined(info.Env(), map.text, map.table.names);
}

Napi::Value WeightMapAgrees(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const WeightMapIndex& map = weightMapArgument(info, "weightMapAgrees");
  if (info.Length() < 4 || !isText(info[1]) || !info[2].IsTypedArray() || !info[3].IsArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "weightMapAgrees(map, namesText, fileOf, shardNames): wrong arguments");
  }
  const std::string names = textOf(info[1]);
  Napi::Uint32Array fileOf = info[2].As<Napi::Uint32Array>();
  const std::vector<std::string> shardNames = stringsOf(info[3].As<Napi::Array>());
  return Napi::Boolean::New(env, weightMapAgrees(map.text, map.table, {names, fileOf.Data(), fileOf.ElementLength(), &shardNames}));
}

Napi::Value EncodeHeaderColumns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8 || !info[0].IsString() || !info[1].IsTypedArray() || !info[2].IsTypedArray() || !info[3].IsTypedArray() ||
      !info[4].IsArray() || !info[5].IsTypedArray() || !(info[6].IsString() || info[6].IsNull()) || !info[7].IsNumber()) {
    throw Napi::TypeError::New(env, "encodeHeaderColumns: wrong arguments");
  }
  const std::string names = info[0].As<Napi::String>().Utf8Value();
  Napi::Uint8Array dtypes = info[1].As<Napi::Uint8Array>();
  Napi::Uint32Array shapeStarts = info[2].As<Napi::Uint32Array>();
  Napi::Float64Array dims = info[3].As<Napi::Float64Array>();
  Napi::Array nameArray = info[4].As<Napi::Array>();
  Napi::Uint32Array bitArray = info[5].As<Napi::Uint32Array>();
  if (shapeStarts.ElementLength() != dtypes.ElementLength() + 1 || bitArray.ElementLength() != nameArray.Length()) {
    throw Napi::TypeError::New(env, "encodeHeaderColumns: column lengths disagree");
  }
  std::vector<std::string> dtypeNames;
  std::vector<uint32_t> dtypeBits(bitArray.Data(), bitArray.Data() + bitArray.ElementLength());
  for (uint32_t i = 0; i < nameArray.Length(); i++) dtypeNames.push_back(nameArray.Get(i).As<Napi::String>().Utf8Value());
  std::string metadata = info[6].IsString() ? info[6].As<Napi::String>().Utf8Value() : std::string();
  HeaderColumnsIn in{names,
                     dtypes.Data(),
                     dtypes.ElementLength(),
                     shapeStarts.Data(),
                     dims.Data(),
                     dims.ElementLength(),
                     &dtypeNames,
                     &dtypeBits,
                     info[6].IsString() ? std::optional<std::string_view>(metadata) : std::nullopt,
                     info.Length() > 8 && info[8].IsBoolean() && info[8].As<Napi::Boolean>().Value()};
  std::optional<EncodedHeader> encoded = encodeHeader(in, static_cast<size_t>(info[7].As<Napi::Number>().DoubleValue()));
  if (!encoded) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("bytes", ownedBuffer(env, std::move(encoded->bytes)));
  out.Set("starts", column<Napi::Float64Array>(env, encoded->starts));
  out.Set("dataBytes", Napi::Number::New(env, encoded->dataBytes));
  return out;
}

Napi::Value EncodeIndexWeightMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !isText(info[0]) || !info[1].IsTypedArray() || !info[2].IsArray() || !info[3].IsString() || !info[4].IsString() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "encodeIndexWeightMap: wrong arguments");
  }
  const std::string names = textOf(info[0]);
  Napi::Uint32Array counts = info[1].As<Napi::Uint32Array>();
  Napi::Array tailArray = info[2].As<Napi::Array>();
  std::vector<std::string> tails;
  for (uint32_t i = 0; i < tailArray.Length(); i++) tails.push_back(tailArray.Get(i).As<Napi::String>().Utf8Value());
  const std::string prefix = info[3].As<Napi::String>().Utf8Value();
  const std::string suffix = info[4].As<Napi::String>().Utf8Value();
  std::optional<std::string> text = encodeIndexWeightMap({names, counts.Data(), counts.ElementLength(), &tails, prefix, suffix});
  if (!text) return env.Null();
  return ownedBuffer(env, std::move(*text));
}

}  // namespace wm
