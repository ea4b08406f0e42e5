// Argument checking happens once, up front; a bad call throws a TypeError that names the argument.
#include "kernel_binding.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "local_ram.h"
#include "kernels/kernels.h"
#include "kernels/sparsify.h"

namespace wm {
namespace {

struct Span {
  uint8_t* data = nullptr;
  size_t bytes = 0;
};

[[noreturn]] void fail(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, "runKernelForTest: " + message);
}

Span spanOf(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray()) fail(env, what + " must be a Buffer or typed array");
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  Napi::ArrayBuffer ab = t.ArrayBuffer();
  Span s;
  s.bytes = t.ByteLength();
  s.data = s.bytes ? static_cast<uint8_t*>(ab.Data()) + t.ByteOffset() : nullptr;
  return s;
}

Dtype dtypeOf(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) fail(env, what + " must be 'F32', 'F16' or 'BF16'");
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "F32") return Dtype::F32;
  if (s == "F16") return Dtype::F16;
  if (s == "BF16") return Dtype::BF16;
  fail(env, what + " must be 'F32', 'F16' or 'BF16', got '" + s + "'");
}

size_t countOf(Napi::Env env, const Napi::Value& v) {
  if (!v.IsNumber()) fail(env, "args.n must be a non-negative integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    fail(env, "args.n must be a non-negative integer");
  }
  return static_cast<size_t>(d);
}

bool overlaps(const Span& a, const Span& b) {
  return a.bytes && b.bytes && a.data < b.data + b.bytes && b.data < a.data + a.bytes;
}

class SimdSetting {
 public:
  explicit SimdSetting(bool enabled) : previous_(setSimdEnabled(enabled)) {}
  ~SimdSetting() { setSimdEnabled(previous_); }
  SimdSetting(const SimdSetting&) = delete;
  SimdSetting& operator=(const SimdSetting&) = delete;

 private:
  bool previous_;
};

// 'l1Scale': sparsify.h's l1Scale of each pair of args.before and args.after (Float64Arrays of one length), as a Float32Array.
Napi::Value l1ScaleForTest(Napi::Env env, const Napi::Object& args) {
  const Span before = spanOf(env, args.Get("before"), "args.before"), after = spanOf(env, args.Get("after"), "args.after");
  if (before.bytes != after.bytes || before.bytes % 8 != 0) fail(env, "args.before and args.after must be Float64Arrays of one length");
  Napi::Float32Array out = Napi::Float32Array::New(env, before.bytes / 8);
  for (size_t i = 0; i < out.ElementLength(); ++i) {
    double b, a;
    std::memcpy(&b, before.data + 8 * i, 8);
    std::memcpy(&a, after.data + 8 * i, 8);
    out[i] = l1Scale(b, a);
  }
  return out;
}

// 'ramPlusLambda': local_ram.h's ramPlusLambda of each element of args.shared, unique, r, alpha and epsilon (Float64Arrays of one length).
Napi::Value ramPlusLambdaForTest(Napi::Env env, const Napi::Object& args) {
  const char* names[] = {"shared", "unique", "r", "alpha", "epsilon"};
  Span in[5];
  for (size_t k = 0; k < 5; ++k) {
    in[k] = spanOf(env, args.Get(names[k]), names[k]);
    if (in[k].bytes != in[0].bytes || in[k].bytes % 8 != 0) fail(env, "args.shared, unique, r, alpha and epsilon must be Float64Arrays of one length");
  }
  Napi::Float64Array out = Napi::Float64Array::New(env, in[0].bytes / 8);
  for (size_t i = 0; i < out.ElementLength(); ++i) {
    double x[5];
    for (size_t k = 0; k < 5; ++k) std::memcpy(&x[k], in[k].data + 8 * i, 8);
    out[i] = ramPlusLambda(x[0], x[1], x[2], x[3], x[4]);
  }
  return out;
}

}  // namespace

Napi::Value RunKernelForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject()) {
    fail(env, "expected (op: string, args: object)");
  }
  const std::string op = info[0].As<Napi::String>().Utf8Value();
  if (op == "l1Scale") return l1ScaleForTest(env, info[1].As<Napi::Object>());
  if (op == "ramPlusLambda") return ramPlusLambdaForTest(env, info[1].As<Napi::Object>());
  size_t arity = 0;  // 0: one or more
  if (op == "lerpExact" || op == "lerpMi" || op == "moments") {
    arity = 2;
  } else if (op == "convert") {
    arity = 1;
  } else if (op != "linear") {
    fail(env, "op must be 'lerpExact', 'lerpMi', 'convert', 'linear', 'moments', 'l1Scale' or 'ramPlusLambda', got '" + op + "'");
  }
  Napi::Object args = info[1].As<Napi::Object>();
  const size_t n = countOf(env, args.Get("n"));
  Napi::Value simdValue = args.Get("simd");
  if (!simdValue.IsBoolean()) fail(env, "args.simd must be a boolean");
  const bool simd = simdValue.As<Napi::Boolean>().Value();

  Napi::Value srcsValue = args.Get("srcs"), typesValue = args.Get("types");
  if (!srcsValue.IsArray() || !typesValue.IsArray()) fail(env, "args.srcs and args.types must be arrays");
  Napi::Array srcsJs = srcsValue.As<Napi::Array>(), typesJs = typesValue.As<Napi::Array>();
  const size_t count = srcsJs.Length();
  if (typesJs.Length() != count) fail(env, "args.types must have one dtype per source");
  if (arity ? count != arity : count == 0) {
    fail(env, "'" + op + "' takes " + (arity ? std::to_string(arity) : std::string("at least 1")) + " source(s), got " +
                  std::to_string(count));
  }
  std::vector<Span> srcs(count);
  std::vector<const void*> ptrs(count);
  std::vector<Dtype> types(count);
  for (size_t k = 0; k < count; ++k) {
    const std::string idx = "[" + std::to_string(k) + "]";
    srcs[k] = spanOf(env, srcsJs.Get(static_cast<uint32_t>(k)), "args.srcs" + idx);
    types[k] = dtypeOf(env, typesJs.Get(static_cast<uint32_t>(k)), "args.types" + idx);
    if (srcs[k].bytes / dtypeSize(types[k]) < n) {
      fail(env, "args.srcs" + idx + " holds " + std::to_string(srcs[k].bytes) + " bytes, fewer than n = " +
                    std::to_string(n) + " elements of " + (types[k] == Dtype::F32 ? "4" : "2") + " bytes");
    }
    ptrs[k] = srcs[k].data;
  }
  if (op == "lerpMi" && types[0] != types[1]) fail(env, "'lerpMi' needs both sources in the same dtype");

  std::vector<float> w;
  const size_t wanted = op == "linear" ? count : (op == "lerpExact" || op == "lerpMi") ? 1 : 0;
  Napi::Value wValue = args.Get("w");
  if (wanted) {
    if (!wValue.IsArray() || wValue.As<Napi::Array>().Length() != wanted) {
      fail(env, "args.w must be an array of " + std::to_string(wanted) + " number(s) for '" + op + "'");
    }
    Napi::Array wJs = wValue.As<Napi::Array>();
    for (uint32_t k = 0; k < wanted; ++k) {
      Napi::Value x = wJs.Get(k);
      if (!x.IsNumber()) fail(env, "args.w[" + std::to_string(k) + "] must be a number");
      w.push_back(static_cast<float>(x.As<Napi::Number>().DoubleValue()));  // round to nearest, as Math.fround
    }
  }

  if (op == "moments") {
    Moments m;
    {
      SimdSetting setting(simd);
      accumulateMoments(ptrs[0], types[0], ptrs[1], types[1], n, m);
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("aa", m.aa);
    result.Set("bb", m.bb);
    result.Set("ab", m.ab);
    result.Set("dd", m.dd);
    result.Set("absA", m.absA);
    result.Set("absB", m.absB);
    result.Set("absD", m.absD);
    result.Set("maxAbsDiff", m.maxAbsDiff);
    result.Set("nonFinite", static_cast<double>(m.nonFinite));
    return result;
  }

  const Span out = spanOf(env, args.Get("out"), "args.out");
  const Dtype to = dtypeOf(env, args.Get("outType"), "args.outType");
  if (out.bytes / dtypeSize(to) < n) fail(env, "args.out is too small for n elements of args.outType");
  for (size_t k = 0; k < count; ++k) {
    // In place is fine when the element sizes match; any other overlap would read what it wrote.
    const bool samePlace = out.data == srcs[k].data && dtypeSize(to) == dtypeSize(types[k]);
    if (overlaps(out, srcs[k]) && !samePlace) fail(env, "args.out overlaps args.srcs[" + std::to_string(k) + "]");
  }

  SimdSetting setting(simd);
  if (op == "lerpExact") {
    lerpExact(ptrs[0], types[0], ptrs[1], types[1], out.data, to, n, w[0]);
  } else if (op == "lerpMi") {
    lerpMi(ptrs[0], ptrs[1], types[0], out.data, to, n, w[0]);
  } else if (op == "convert") {
    convert(ptrs[0], types[0], out.data, to, n);
  } else {
    linear(ptrs.data(), types.data(), w.data(), count, out.data, to, n);
  }
  return env.Undefined();
}

}  // namespace wm
