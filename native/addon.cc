// Node-API glue: marshal a plan, run it on a worker thread, report progress, return a promise.
// Everything else lives in plain C++ that knows nothing of Node.
#include <napi.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

#include "build_info.h"
#include "exec_error.h"
#include "executor.h"
#include "io.h"
#include "packed_jobs.h"
#include "process_heap.h"
#include "kernel_binding.h"
#include "json_tables_binding.h"
#ifdef WEIGHTMIX_WITH_CUDA
#include "cuda/device.h"
#endif

namespace wm {
namespace {

uint64_t toU64(const Napi::Value& v, const char* what) {
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::TypeError::New(v.Env(), std::string("plan: bad ") + what);
  }
  return static_cast<uint64_t>(d);
}

// The jobs arrive packed (lib/engine/packed-jobs.ts): one Float64Array instead of an object per job.
std::vector<Job> jobsOf(const Napi::Value& v) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw Napi::TypeError::New(v.Env(), "plan: jobs must be packed into a Float64Array");
  }
  Napi::Float64Array words = v.As<Napi::Float64Array>();
  try {
    return unpackJobs(words.Data(), words.ElementLength());
  } catch (const std::invalid_argument& e) {
    throw Napi::TypeError::New(v.Env(), e.what());
  }
}

// `heads` holds the outputs' header Buffers for the run, which the plan points into.
Plan parsePlan(const Napi::Object& js, std::vector<Napi::Reference<Napi::Buffer<uint8_t>>>& heads) {
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
    spec.head = head.Data();
    spec.headBytes = head.Length();
    heads.push_back(Napi::Persistent(head));
    plan.outputs.push_back(std::move(spec));
  }
  plan.jobs = jobsOf(js.Get("jobs"));
  plan.threads = static_cast<unsigned>(toU64(js.Get("threads"), "thread count"));
  plan.blockBytes = toU64(js.Get("blockBytes"), "block size");
  if (plan.blockBytes < kDirectAlign || plan.blockBytes % kDirectAlign != 0) {
    throw Napi::TypeError::New(js.Env(), "plan: blockBytes must be a positive multiple of 4096");
  }
  plan.direct = js.Get("direct").ToBoolean().Value();
  Napi::Value chunked = js.Get("chunkedLocalBytes");
  if (!chunked.IsUndefined()) plan.chunkedLocalBytes = toU64(chunked, "chunked local bytes");
  Napi::Value device = js.Get("device");
  if (!device.IsUndefined()) {
    const std::string d = device.IsString() ? device.As<Napi::String>().Utf8Value() : "";
    if (d == "cuda") plan.device = Device::Cuda;
    else if (d != "cpu") throw Napi::TypeError::New(js.Env(), "plan: device must be 'cpu' or 'cuda'");
  }
  return plan;
}

// What a finished run hands back to the JavaScript thread.
struct Outcome {
  bool ok = false;
  ExecResult result;
  std::string code, message;
};

struct ProgressData {
  double done, total;
};

// Each run gets its own coordinating thread (the shared pool does the work), so a long merge never
// occupies one of libuv's few threads that the process's file-system calls need. Progress and the
// outcome travel through the one thread-safe function `channel`, whose queue is first in, first out:
// every progress call reaches JavaScript before the promise settles, and none after (two channels
// are drained in no guaranteed order).
struct RunState {
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction channel;
  Napi::FunctionReference onProgress;
  bool hasProgress = false;
  Napi::FunctionReference onCoefficients;  // local_moments.h's CoefficientsFn, on the JavaScript thread
  bool hasCoefficients = false;
  Napi::FunctionReference onReserved;  // executor.h's ReservedFn, on the JavaScript thread
  bool hasReserved = false;
  Plan plan;
  std::vector<Napi::Reference<Napi::Buffer<uint8_t>>> heads;  // the plan's header bytes (OutputSpec::head), held until the run ends
  std::shared_ptr<std::atomic<bool>> cancel;
  explicit RunState(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

void settle(Napi::Env env, RunState* state, Outcome* outcome) {
  if (outcome->ok) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("bytesWritten", Napi::Number::New(env, static_cast<double>(outcome->result.bytesWritten)));
    r.Set("flushedEarly", Napi::Number::New(env, static_cast<double>(outcome->result.flushedEarly)));
    // Nine numbers per job, zero for a job without moments: a fresh array is zero, so a run where no job has them writes none.
    const auto& moments = outcome->result.moments;
    Napi::Float64Array m = Napi::Float64Array::New(env, state->plan.jobs.size() * kMomentsStride);
    for (size_t j = 0; j < moments.size(); ++j) flattenMoments(moments[j], m.Data() + j * kMomentsStride);
    r.Set("moments", m);
    const auto& stats = outcome->result.stats;  // histogram counts and L1 sums (plan.h's JobStat)
    Napi::Float64Array st = Napi::Float64Array::New(env, stats.size());
    for (size_t k = 0; k < stats.size(); ++k) st[k] = stats[k];
    r.Set("stats", st);
    state->deferred.Resolve(r);
  } else {
    Napi::Error e = Napi::Error::New(env, outcome->message);
    e.Value().Set("code", Napi::String::New(env, outcome->code));
    state->deferred.Reject(e.Value());
  }
}

// A worker asks JavaScript for an open dest's coefficients and waits for them: a blocking call on the
// run's channel (the JavaScript thread is free, awaiting the run). A callback that throws, returns no
// array, or a closing channel fails the run; the JavaScript side keeps what it threw (engine/native.ts).
CoefficientsFn coefficientsOf(RunState* state) {
  if (!state->hasCoefficients) return {};
  return [state](double id, const std::vector<double>& moments) {
    struct Ask {
      double id;
      const std::vector<double>* moments;
      std::promise<std::vector<double>> answer;
    } ask{id, &moments, {}};
    std::future<std::vector<double>> answer = ask.answer.get_future();
    const napi_status st = state->channel.BlockingCall(&ask, [state](Napi::Env env, Napi::Function, Ask* a) {
      std::vector<double> out;
      try {
        Napi::Float64Array m = Napi::Float64Array::New(env, a->moments->size());
        for (size_t k = 0; k < a->moments->size(); ++k) m[k] = (*a->moments)[k];
        Napi::Value r = state->onCoefficients.Call({Napi::Number::New(env, a->id), m});
        if (r.IsArray()) {
          Napi::Array arr = r.As<Napi::Array>();
          for (uint32_t k = 0; k < arr.Length(); ++k) out.push_back(arr.Get(k).ToNumber().DoubleValue());
        }
      } catch (const Napi::Error&) {
        out.clear();
      }
      a->answer.set_value(std::move(out));
    });
    if (st != napi_ok) throw ExecError("Aborted", "the merge was aborted");
    std::vector<double> out = answer.get();
    if (out.empty()) throw ExecError("Aborted", "the coefficients callback failed");
    return out;
  };
}

void runOnThread(RunState* state) {
  auto* outcome = new Outcome();
  try {
    ProgressFn fn;
    if (state->hasProgress) {
      fn = [state](uint64_t done, uint64_t total) {
        auto* data = new ProgressData{static_cast<double>(done), static_cast<double>(total)};
        if (state->channel.NonBlockingCall(data, [state](Napi::Env env, Napi::Function, ProgressData* d) {
              std::unique_ptr<ProgressData> owned(d);
              state->onProgress.Call({Napi::Number::New(env, d->done), Napi::Number::New(env, d->total)});
            }) != napi_ok) {
          delete data;
        }
      };
    }
    ReservedFn reserved;
    if (state->hasReserved) {
      reserved = [state] {
        state->channel.NonBlockingCall([state](Napi::Env, Napi::Function) {
          try {
            state->onReserved.Call({});
          } catch (const Napi::Error&) {
            // A signal, not a question: what it threw is not the run's concern (engine/native.ts never throws there).
          }
        });
      };
    }
    outcome->result = executePlan(state->plan, fn, *state->cancel, coefficientsOf(state), reserved);
    outcome->ok = true;
  } catch (const ExecError& e) {
    outcome->code = e.code;
    outcome->message = e.what();
  } catch (const std::bad_alloc&) {
    outcome->code = "ENOMEM";
    outcome->message = "out of memory";
  } catch (const std::exception& e) {
    outcome->code = "Internal";
    outcome->message = e.what();
  }
  // Settle on the JavaScript thread, after every progress call queued before; the state is freed there.
  napi_status st = state->channel.BlockingCall(outcome, [state](Napi::Env env, Napi::Function, Outcome* o) {
    settle(env, state, o);
    delete o;
  });
  if (st != napi_ok) delete outcome;
  state->channel.Release();
}

// execute(plan, onProgress?, onCoefficients?, onReserved?) -> { promise, cancel() }
Napi::Value Execute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "execute(plan, onProgress?, onCoefficients?, onReserved?)");
  auto* state = new RunState(env);
  try {
    state->plan = parsePlan(info[0].As<Napi::Object>(), state->heads);
  } catch (...) {
    delete state;
    throw;
  }
  state->cancel = std::make_shared<std::atomic<bool>>(false);
  Napi::Function noop = Napi::Function::New(env, [](const Napi::CallbackInfo& ci) { return ci.Env().Undefined(); });
  if (info.Length() > 1 && info[1].IsFunction()) {
    state->onProgress = Napi::Persistent(info[1].As<Napi::Function>());
    state->hasProgress = true;
  }
  if (info.Length() > 2 && info[2].IsFunction()) {
    state->onCoefficients = Napi::Persistent(info[2].As<Napi::Function>());
    state->hasCoefficients = true;
  }
  if (info.Length() > 3 && info[3].IsFunction()) {
    state->onReserved = Napi::Persistent(info[3].As<Napi::Function>());
    state->hasReserved = true;
  }
  state->channel = Napi::ThreadSafeFunction::New(env, noop, "weightmix.execute", 0, 1, [state](Napi::Env) { delete state; });
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", state->deferred.Promise());
  auto cancel = state->cancel;
  handle.Set("cancel", Napi::Function::New(env, [cancel](const Napi::CallbackInfo& ci) {
               cancel->store(true);
               return ci.Env().Undefined();
             }));
  std::thread(runOnThread, state).detach();
  return handle;
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("simd", Napi::String::New(env, simdPathName()));
  o.Set("hardwareThreads", Napi::Number::New(env, std::max(1u, std::thread::hardware_concurrency())));
  o.Set("build", buildInfo(env));
#ifdef WEIGHTMIX_WITH_CUDA
  o.Set("cudaCompiled", Napi::Boolean::New(env, true));
  // cudaDevices when GPU 0 is usable; else cudaUnavailable (one line) and its kind.
  const cuda::Probe& probe = cuda::probe();
  if (probe.unusable == cuda::Unusable::None) {
    Napi::Array devices = Napi::Array::New(env, probe.devices.size());
    for (size_t i = 0; i < probe.devices.size(); ++i) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("name", Napi::String::New(env, probe.devices[i].name));
      d.Set("memoryBytes", Napi::Number::New(env, static_cast<double>(probe.devices[i].memoryBytes)));
      d.Set("computeCapability", Napi::String::New(env, std::to_string(probe.devices[i].major) + "." + std::to_string(probe.devices[i].minor)));
      devices.Set(static_cast<uint32_t>(i), d);
    }
    o.Set("cudaDevices", devices);
  } else {
    o.Set("cudaUnavailable", Napi::String::New(env, probe.reason));
    o.Set("cudaUnavailableKind", Napi::String::New(env, cuda::unusableCode(probe.unusable)));
  }
#else
  o.Set("cudaCompiled", Napi::Boolean::New(env, false));
  o.Set("cudaUnavailable", Napi::String::New(env, "this build has no CUDA kernels (built without nvcc)"));
  o.Set("cudaUnavailableKind", Napi::String::New(env, "not-compiled"));
#endif
  return o;
}

// decodeJobsForTest(packed) -> the jobs as the executor sees them, as plain objects (round-trip tests).
Napi::Value DecodeJobsForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static const char* kDtypes[] = {"F32", "F16", "BF16", "U8"};
  static const char* kOps[] = {"copy", "lerp", "lerp_mi", "linear", "sparse", "nearswap", "ram", "row_linear", "della", "sce", "arcee_fusion"};
  auto numbers = [&](const auto& xs) {
    Napi::Array a = Napi::Array::New(env, xs.size());
    for (size_t k = 0; k < xs.size(); ++k) a.Set(static_cast<uint32_t>(k), Napi::Number::New(env, static_cast<double>(xs[k])));
    return a;
  };
  const std::vector<Job> jobs = jobsOf(info[0]);
  Napi::Array out = Napi::Array::New(env, jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    Napi::Object o = Napi::Object::New(env);
    o.Set("count", Napi::Number::New(env, static_cast<double>(job.count)));
    o.Set("moments", Napi::Boolean::New(env, job.moments));
    o.Set("stat", job.stat == JobStat::Histogram ? Napi::Value(Napi::String::New(env, "histogram"))
                  : job.stat == JobStat::L1   ? Napi::Value(Napi::String::New(env, "l1"))
                  : job.stat == JobStat::RamCounts ? Napi::Value(Napi::String::New(env, "ram_counts"))
                  : job.stat == JobStat::RowMoments ? Napi::Value(Napi::String::New(env, "row_moments"))
                  : job.stat == JobStat::DellaL1 ? Napi::Value(Napi::String::New(env, "della_l1"))
                  : job.stat == JobStat::SceHistogram ? Napi::Value(Napi::String::New(env, "sce_histogram"))
                  : job.stat == JobStat::SceSumSquares ? Napi::Value(Napi::String::New(env, "sce_sum_squares"))
                  : job.stat == JobStat::ArceeHistogram ? Napi::Value(Napi::String::New(env, "arcee_histogram"))
                                              : env.Undefined());
    o.Set("statParams", numbers(job.statParams));
    Napi::Array srcs = Napi::Array::New(env, job.sources.size());
    for (size_t s = 0; s < job.sources.size(); ++s) {
      Napi::Object so = Napi::Object::New(env);
      so.Set("input", Napi::Number::New(env, job.sources[s].input));
      so.Set("offset", Napi::Number::New(env, static_cast<double>(job.sources[s].offset)));
      so.Set("dtype", Napi::String::New(env, kDtypes[static_cast<int>(job.sources[s].dtype)]));
      srcs.Set(static_cast<uint32_t>(s), so);
    }
    o.Set("sources", srcs);
    Napi::Array dests = Napi::Array::New(env, job.dests.size());
    for (size_t d = 0; d < job.dests.size(); ++d) {
      const Dest& dest = job.dests[d];
      Napi::Object dobj = Napi::Object::New(env);
      dobj.Set("output", Napi::Number::New(env, dest.output));
      dobj.Set("offset", Napi::Number::New(env, static_cast<double>(dest.offset)));
      dobj.Set("dtype", Napi::String::New(env, kDtypes[static_cast<int>(dest.dtype)]));
      dobj.Set("op", Napi::String::New(env, kOps[static_cast<int>(dest.op)]));
      dobj.Set("w", numbers(dest.w));
      dobj.Set("params", numbers(dest.params));
      dests.Set(static_cast<uint32_t>(d), dobj);
    }
    o.Set("dests", dests);
    out.Set(static_cast<uint32_t>(j), o);
  }
  return out;
}

// preferHugePageHeap(bytes): the command line's heap on huge pages (process_heap.h); whether the advice was taken.
Napi::Value PreferHugePageHeap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "preferHugePageHeap: bytes must be a number");
  const double bytes = info[0].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 0 && bytes <= 1e12)) throw Napi::RangeError::New(env, "preferHugePageHeap: bytes out of range");
  return Napi::Boolean::New(env, preferHugePageHeap(static_cast<size_t>(bytes)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("execute", Napi::Function::New(env, Execute, "execute"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("decodeJobsForTest", Napi::Function::New(env, DecodeJobsForTest, "decodeJobsForTest"));
  exports.Set("runKernelForTest", Napi::Function::New(env, RunKernelForTest, "runKernelForTest"));
  exports.Set("readHeaderTable", Napi::Function::New(env, ReadHeaderTable, "readHeaderTable"));
  exports.Set("readWeightMapTable", Napi::Function::New(env, ReadWeightMapTable, "readWeightMapTable"));
  exports.Set("weightMapAgrees", Napi::Function::New(env, WeightMapAgrees, "weightMapAgrees"));
  exports.Set("weightMapNamesText", Napi::Function::New(env, WeightMapNamesText, "weightMapNamesText"));
  exports.Set("encodeHeaderColumns", Napi::Function::New(env, EncodeHeaderColumns, "encodeHeaderColumns"));
  exports.Set("encodeIndexWeightMap", Napi::Function::New(env, EncodeIndexWeightMap, "encodeIndexWeightMap"));
  // weightMapAgrees and encodeIndexWeightMap take their names text as a list of strings too (json_tables_binding.cc's textOf).
  exports.Set("jsonTextLists", Napi::Boolean::New(env, true));
  exports.Set("preferHugePageHeap", Napi::Function::New(env, PreferHugePageHeap, "preferHugePageHeap"));
  return exports;
}

}  // namespace
}  // namespace wm

static Napi::Object InitWeightmix(Napi::Env env, Napi::Object exports) { return wm::Init(env, exports); }
NODE_API_MODULE(weightmix, InitWeightmix)
