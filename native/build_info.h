// How this binary was built (compiler, build system, date, CUDA toolkit and architectures), for `weightmix info`.
#pragma once

#include <napi.h>

namespace wm {

Napi::Object buildInfo(Napi::Env env);

}  // namespace wm
