// readHeaderTable / readWeightMapTable: json_tables.h's readers for JavaScript (lib/format/header-tables.ts).
#pragma once
#include <napi.h>

namespace wm {

// JS: readHeaderTable(json: Uint8Array, dtypeNames: string[]) → null (not vouched for) |
//   { names: string[], dtypes: Uint8Array, shapeStarts: Uint32Array, dims: Float64Array, offsets: Float64Array, metadata: string[] | null }
Napi::Value ReadHeaderTable(const Napi::CallbackInfo& info);
// JS: readWeightMapTable(json: Uint8Array) → null | { names: string[], shards: Uint32Array, files: string[] }
Napi::Value ReadWeightMapTable(const Napi::CallbackInfo& info);

}  // namespace wm
