// The build facts are fixed at compile time: CMakeLists.txt defines them; binding.gyp (the only other
// build) defines none, hence its fallbacks below.
#include "build_info.h"

namespace wm {
namespace {

#ifndef WEIGHTMIX_BUILD_SYSTEM
#define WEIGHTMIX_BUILD_SYSTEM "node-gyp"
#endif
#ifndef WEIGHTMIX_BUILD_DATE
#define WEIGHTMIX_BUILD_DATE __DATE__ " " __TIME__
#endif

#if defined(__clang__)
const char* const kCompiler = "clang " __clang_version__;
#elif defined(__GNUC__)
const char* const kCompiler = "gcc " __VERSION__;
#else
const char* const kCompiler = "unknown";
#endif

}  // namespace

Napi::Object buildInfo(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("system", Napi::String::New(env, WEIGHTMIX_BUILD_SYSTEM));
  o.Set("compiler", Napi::String::New(env, kCompiler));
  o.Set("date", Napi::String::New(env, WEIGHTMIX_BUILD_DATE));
  o.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
#ifdef WEIGHTMIX_CUDA_VERSION
  o.Set("cudaVersion", Napi::String::New(env, WEIGHTMIX_CUDA_VERSION));
  o.Set("cudaArchitectures", Napi::String::New(env, WEIGHTMIX_CUDA_ARCHS));
#endif
  return o;
}

}  // namespace wm
