// readHeaderTable / readWeightMapTable: json_tables.h's readers for JavaScript (lib/format/json-tables.ts).
#pragma once
#include <napi.h>

namespace wm {

// JS: readHeaderTable(json: Uint8Array, dtypeNames: string[], dtypeBits?: Uint32Array) → null (not vouched for) |
//   { namesText: string (each name followed by '\n'), dtypes: Uint8Array, shapeStarts: Uint32Array, dims: Float64Array, offsets: Float64Array,
//     metadata: string[] | null, laidOut?: { begins, byteLengths, elementCounts: Float64Array } | null }: with dtypeBits (one per dtype
//   name), laidOut is the layout checked (header_layout.h): its columns, null where invalid, absent where left undecided.
Napi::Value ReadHeaderTable(const Napi::CallbackInfo& info);
// JS: readWeightMapTable(json: Uint8Array) → null | { map: external (the index kept native), shards: Uint32Array, files: string[] }
Napi::Value ReadWeightMapTable(const Napi::CallbackInfo& info);
// JS: weightMapNamesText(map) → string: the index's names, each followed by '\n', in the order written.
Napi::Value WeightMapNamesText(const Napi::CallbackInfo& info);
// JS: weightMapAgrees(map, namesText, fileOf: Uint32Array, shardNames: string[]) → boolean: whether the index (readWeightMapTable's map)
// lists exactly the stored names of namesText (each followed by '\n'), each once, name k in shardNames[fileOf[k]]; true means the stored
// names are free of duplicates too. False for anything else (the caller's own checks then find the exact difference).
Napi::Value WeightMapAgrees(const Napi::CallbackInfo& info);
// JS: encodeHeaderColumns(namesText, dtypes: Uint8Array, shapeStarts: Uint32Array, dims: Float64Array, dtypeNames: string[],
//   dtypeBits: Uint32Array, metadataJson: string | null, maxHeaderBytes, namesUnique?: boolean) → null (declined) | { bytes: Buffer,
//   starts: Float64Array, dataBytes }: header_encoder.h's encoder (namesUnique: a header reader's names, not checked for a repeat).
Napi::Value EncodeHeaderColumns(const Napi::CallbackInfo& info);
// JS: encodeIndexWeightMap(namesText (every shard's names, each followed by '\n'), shardCounts: Uint32Array, shardTails: string[],
//   prefix, suffix) → null (declined) | Buffer: index_encoder.h's weight_map between prefix and suffix.
Napi::Value EncodeIndexWeightMap(const Napi::CallbackInfo& info);

}  // namespace wm
