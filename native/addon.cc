// Node-API glue: marshal a plan, run it on a worker thread, report progress, return a promise.
// Everything else lives in plain C++ that knows nothing of Node.
#include <napi.h>

#include <atomic>
#include <memory>
#include <thread>

#include "exec_error.h"
#include "executor.h"
#include "io.h"
#include "kernel_binding.h"

namespace wm {
namespace {

Dtype parseDtype(const Napi::Value& v) {
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "BF16") return Dtype::BF16;
  if (s == "F16") return Dtype::F16;
  if (s == "F32") return Dtype::F32;
  if (s == "U8") return Dtype::U8;
  throw Napi::TypeError::New(v.Env(), "plan: unsupported dtype " + s);
}

DestOp parseOp(const Napi::Value& v) {
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "copy") return DestOp::Copy;
  if (s == "lerp") return DestOp::Lerp;
  if (s == "lerp_mi") return DestOp::LerpMi;
  if (s == "linear") return DestOp::Linear;
  throw Napi::TypeError::New(v.Env(), "plan: unknown op " + s);
}

uint64_t toU64(const Napi::Value& v, const char* what) {
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::TypeError::New(v.Env(), std::string("plan: bad ") + what);
  }
  return static_cast<uint64_t>(d);
}

Plan parsePlan(const Napi::Object& js) {
  Plan plan;
  Napi::Array inputs = js.Get("inputs").As<Napi::Array>();
  for (uint32_t i = 0; i < inputs.Length(); ++i) plan.inputs.push_back(inputs.Get(i).As<Napi::String>().Utf8Value());
  Napi::Array outputs = js.Get("outputs").As<Napi::Array>();
  for (uint32_t i = 0; i < outputs.Length(); ++i) {
    Napi::Object o = outputs.Get(i).As<Napi::Object>();
    OutputSpec spec;
    spec.path = o.Get("path").As<Napi::String>().Utf8Value();
    spec.size = toU64(o.Get("size"), "output size");
    Napi::Buffer<uint8_t> head = o.Get("head").As<Napi::Buffer<uint8_t>>();
    spec.head.assign(head.Data(), head.Data() + head.Length());
    plan.outputs.push_back(std::move(spec));
  }
  Napi::Array jobs = js.Get("jobs").As<Napi::Array>();
  plan.jobs.reserve(jobs.Length());
  for (uint32_t j = 0; j < jobs.Length(); ++j) {
    Napi::Object jo = jobs.Get(j).As<Napi::Object>();
    Job job;
    job.count = toU64(jo.Get("count"), "element count");
    Napi::Value mom = jo.Get("moments");
    job.moments = mom.IsBoolean() && mom.As<Napi::Boolean>().Value();
    Napi::Array srcs = jo.Get("sources").As<Napi::Array>();
    for (uint32_t s = 0; s < srcs.Length(); ++s) {
      Napi::Object so = srcs.Get(s).As<Napi::Object>();
      job.sources.push_back({static_cast<uint32_t>(toU64(so.Get("input"), "input index")), toU64(so.Get("offset"), "source offset"),
                             parseDtype(so.Get("dtype"))});
    }
    Napi::Array dests = jo.Get("dests").As<Napi::Array>();
    for (uint32_t d = 0; d < dests.Length(); ++d) {
      Napi::Object dobj = dests.Get(d).As<Napi::Object>();
      Dest dest;
      dest.output = static_cast<uint32_t>(toU64(dobj.Get("output"), "output index"));
      dest.offset = toU64(dobj.Get("offset"), "destination offset");
      dest.dtype = parseDtype(dobj.Get("dtype"));
      dest.op = parseOp(dobj.Get("op"));
      Napi::Array w = dobj.Get("w").As<Napi::Array>();
      for (uint32_t k = 0; k < w.Length(); ++k) dest.w.push_back(static_cast<float>(w.Get(k).As<Napi::Number>().DoubleValue()));
      job.dests.push_back(std::move(dest));
    }
    plan.jobs.push_back(std::move(job));
  }
  plan.threads = static_cast<unsigned>(toU64(js.Get("threads"), "thread count"));
  plan.blockBytes = toU64(js.Get("blockBytes"), "block size");
  if (plan.blockBytes < kDirectAlign || plan.blockBytes % kDirectAlign != 0) {
    throw Napi::TypeError::New(js.Env(), "plan: blockBytes must be a positive multiple of 4096");
  }
  plan.direct = js.Get("direct").ToBoolean().Value();
  return plan;
}

struct ProgressData {
  double done, total;
};

class ExecuteWorker : public Napi::AsyncWorker {
 public:
  ExecuteWorker(Napi::Env env, Plan plan, std::shared_ptr<std::atomic<bool>> cancel, Napi::Function onProgress)
      : Napi::AsyncWorker(env, "weightmix.execute"),
        deferred_(Napi::Promise::Deferred::New(env)),
        plan_(std::move(plan)),
        cancel_(std::move(cancel)) {
    if (!onProgress.IsEmpty()) {
      progress_ = Napi::ThreadSafeFunction::New(env, onProgress, "weightmix.progress", 0, 1);
      hasProgress_ = true;
    }
  }
  ~ExecuteWorker() override {
    if (hasProgress_) progress_.Release();
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      ProgressFn fn;
      if (hasProgress_) {
        fn = [this](uint64_t done, uint64_t total) {
          auto* data = new ProgressData{static_cast<double>(done), static_cast<double>(total)};
          if (progress_.NonBlockingCall(data, [](Napi::Env env, Napi::Function cb, ProgressData* d) {
                cb.Call({Napi::Number::New(env, d->done), Napi::Number::New(env, d->total)});
                delete d;
              }) != napi_ok) {
            delete data;
          }
        };
      }
      result_ = executePlan(plan_, fn, *cancel_);
    } catch (const ExecError& e) {
      code_ = e.code;
      SetError(e.what());
    } catch (const std::exception& e) {
      code_ = "Internal";
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("bytesWritten", Napi::Number::New(env, static_cast<double>(result_.bytesWritten)));
    Napi::Float64Array m = Napi::Float64Array::New(env, result_.moments.size() * 6);
    for (size_t j = 0; j < result_.moments.size(); ++j) {
      const Moments& x = result_.moments[j];
      double vals[6] = {x.aa, x.bb, x.ab, x.dd, x.maxAbsDiff, static_cast<double>(x.nonFinite)};
      for (int k = 0; k < 6; ++k) m[j * 6 + k] = vals[k];
    }
    r.Set("moments", m);
    deferred_.Resolve(r);
  }

  void OnError(const Napi::Error& error) override {
    Napi::Object e = error.Value();
    e.Set("code", Napi::String::New(Env(), code_));
    deferred_.Reject(e);
  }

 private:
  Napi::Promise::Deferred deferred_;
  Plan plan_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  Napi::ThreadSafeFunction progress_;
  bool hasProgress_ = false;
  ExecResult result_;
  std::string code_;
};

// execute(plan, onProgress?) -> { promise, cancel() }
Napi::Value Execute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "execute(plan, onProgress?)");
  Plan plan = parsePlan(info[0].As<Napi::Object>());
  Napi::Function onProgress;
  if (info.Length() > 1 && info[1].IsFunction()) onProgress = info[1].As<Napi::Function>();
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  auto* worker = new ExecuteWorker(env, std::move(plan), cancel, onProgress);
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", worker->promise());
  handle.Set("cancel", Napi::Function::New(env, [cancel](const Napi::CallbackInfo& ci) {
               cancel->store(true);
               return ci.Env().Undefined();
             }));
  worker->Queue();
  return handle;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("simd", Napi::String::New(env, simdPathName()));
  o.Set("hardwareThreads", Napi::Number::New(env, std::max(1u, std::thread::hardware_concurrency())));
#ifdef WEIGHTMIX_WITH_CUDA
  o.Set("cudaCompiled", Napi::Boolean::New(env, true));
#else
  o.Set("cudaCompiled", Napi::Boolean::New(env, false));
#endif
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("execute", Napi::Function::New(env, Execute, "execute"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("runKernelForTest", Napi::Function::New(env, RunKernelForTest, "runKernelForTest"));
  return exports;
}

}  // namespace
}  // namespace wm

static Napi::Object InitWeightmix(Napi::Env env, Napi::Object exports) { return wm::Init(env, exports); }
NODE_API_MODULE(weightmix, InitWeightmix)
