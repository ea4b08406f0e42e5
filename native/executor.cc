#include "executor.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

#include "block_assembler.h"
#include "exec_error.h"
#include "io.h"
#include "worker_pool.h"
#include "kernels/sparsify.h"
#ifdef WEIGHTMIX_WITH_CUDA
#include "cuda/device.h"
#include "kernels/cuda_kernels.h"
#endif

namespace wm {
namespace {

// A slice of one job: elements [start, start + count).
struct Piece {
  uint32_t job;
  uint64_t start;
  uint64_t count;
};

struct Task {
  size_t first;
  size_t count;
};

uint64_t checkedEnd(uint64_t offset, uint64_t count, size_t elemSize, const char* what, size_t job) {
  if (count > (UINT64_MAX - offset) / elemSize) {
    throw ExecError("PlanInvalid", std::string("plan: ") + what + " range overflows in job " + std::to_string(job));
  }
  return offset + count * elemSize;
}

uint64_t pieceWeight(const Job& job, uint64_t count) {
  uint64_t w = 0;
  for (const Dest& d : job.dests) w += count * dtypeSize(d.dtype);
  if (job.dests.empty()) {
    for (const Source& s : job.sources) w += count * dtypeSize(s.dtype);
  }
  return w;
}

void validateSparseDest(const Dest& d, const Job& job, size_t j) {
  try {
    SparseParams p = decodeSparseParams(d.params, job.sources.size());
    if (p.indexBits != sparseIndexBits(job.count)) throw std::invalid_argument("index bits do not match the element count");
  } catch (const std::invalid_argument& e) {
    throw ExecError("PlanInvalid", std::string("plan: sparse parameters of job ") + std::to_string(j) + ": " + e.what());
  }
}

void validateStatJob(const Job& job, size_t j) {
  const std::string where = " in job " + std::to_string(j);
  if (job.sources.size() != 2 || !job.dests.empty() || job.moments) {
    throw ExecError("PlanInvalid", "plan: a statistics job reads two sources and writes nothing" + where);
  }
  const auto& p = job.statParams;
  if (job.stat == JobStat::Histogram) {
    if (p.size() != 5 || p[0] != sparseIndexBits(job.count) || !(p[2] >= 1 && p[2] <= kMaxHistogramBits) || !(p[1] >= 0 && p[1] + p[2] <= 64) ||
        !(p[3] >= 0 && p[3] < 4294967296.0) || !(p[4] >= 0 && p[4] < 4294967296.0)) {
      throw ExecError("PlanInvalid", "plan: bad histogram parameters" + where);
    }
  } else {
    std::vector<double> one = {0, 0, 1, p.empty() ? 0 : p[0], 0, 1};
    one.insert(one.end(), p.begin() + (p.empty() ? 0 : 1), p.end());
    try {
      if (p.empty() || p[0] != sparseIndexBits(job.count)) throw std::invalid_argument("index bits do not match the element count");
      decodeSparseParams(one, 2);
    } catch (const std::invalid_argument& e) {
      throw ExecError("PlanInvalid", std::string("plan: bad L1 parameters") + where + ": " + e.what());
    }
  }
}

}  // namespace

void validatePlan(const Plan& plan, const std::vector<uint64_t>& inputSizes) {
  struct Interval {
    uint64_t begin, end;
  };
  std::vector<std::vector<Interval>> cover(plan.outputs.size());
  for (size_t o = 0; o < plan.outputs.size(); ++o) {
    if (plan.outputs[o].head.size() > plan.outputs[o].size) throw ExecError("PlanInvalid", "plan: header larger than output");
    if (!plan.outputs[o].head.empty()) cover[o].push_back({0, plan.outputs[o].head.size()});
  }
  for (size_t j = 0; j < plan.jobs.size(); ++j) {
    const Job& job = plan.jobs[j];
    for (const Source& s : job.sources) {
      if (s.input >= plan.inputs.size()) throw ExecError("PlanInvalid", "plan: job " + std::to_string(j) + " names a missing input");
      uint64_t end = checkedEnd(s.offset, job.count, dtypeSize(s.dtype), "source", j);
      if (end > inputSizes[s.input]) {
        throw ExecError("InputChanged", "input " + plan.inputs[s.input] + " is shorter (" + std::to_string(inputSizes[s.input]) +
                                            " bytes) than its header promised (" + std::to_string(end) + " bytes)");
      }
    }
    if (job.moments && job.sources.size() != 2) throw ExecError("PlanInvalid", "plan: moments need two sources");
    if (job.stat != JobStat::None) validateStatJob(job, j);
    for (const Dest& d : job.dests) {
      if (d.output >= plan.outputs.size()) throw ExecError("PlanInvalid", "plan: job " + std::to_string(j) + " names a missing output");
      size_t need = d.op == DestOp::Copy ? 1 : d.op == DestOp::Linear ? job.sources.size() : d.op == DestOp::Sparse ? 0 : 1;
      if (d.op == DestOp::Sparse) validateSparseDest(d, job, j);
      if (d.w.size() != need) throw ExecError("PlanInvalid", "plan: wrong coefficient count in job " + std::to_string(j));
      if ((d.op == DestOp::Lerp || d.op == DestOp::LerpMi) && job.sources.size() != 2) {
        throw ExecError("PlanInvalid", "plan: lerp needs two sources in job " + std::to_string(j));
      }
      if (d.op == DestOp::LerpMi && job.sources[0].dtype != job.sources[1].dtype) {
        throw ExecError("PlanInvalid", "plan: numerics 'mi' needs inputs of one dtype in job " + std::to_string(j));
      }
      if (d.op == DestOp::Copy && (d.w[0] < 0 || d.w[0] >= static_cast<float>(job.sources.size()))) {
        throw ExecError("PlanInvalid", "plan: copy names a missing source in job " + std::to_string(j));
      }
      if (job.sources.empty()) throw ExecError("PlanInvalid", "plan: job " + std::to_string(j) + " has no sources");
      bool raw = d.dtype == Dtype::U8;
      for (const Source& s : job.sources) raw = raw || s.dtype == Dtype::U8;
      if (raw && (d.op != DestOp::Copy || job.sources[static_cast<size_t>(d.w[0])].dtype != d.dtype)) {
        throw ExecError("PlanInvalid", "plan: raw bytes can only be copied, in job " + std::to_string(j));
      }
      uint64_t end = checkedEnd(d.offset, job.count, dtypeSize(d.dtype), "destination", j);
      if (end > plan.outputs[d.output].size) throw ExecError("PlanInvalid", "plan: job " + std::to_string(j) + " writes past its output");
      if (job.count > 0) cover[d.output].push_back({d.offset, end});
    }
  }
  for (size_t o = 0; o < cover.size(); ++o) {
    auto& iv = cover[o];
    std::sort(iv.begin(), iv.end(), [](const Interval& a, const Interval& b) { return a.begin < b.begin; });
    uint64_t at = 0;
    for (const Interval& i : iv) {
      if (i.begin != at) {
        throw ExecError("PlanInvalid", "plan: output " + plan.outputs[o].path + " has a " + (i.begin < at ? "overlap" : "hole") +
                                           " at byte " + std::to_string(std::min(i.begin, at)));
      }
      at = i.end;
    }
    if (at != plan.outputs[o].size) throw ExecError("PlanInvalid", "plan: output " + plan.outputs[o].path + " is not fully covered");
  }
}

namespace {

class Run {
 public:
  Run(const Plan& plan, const std::atomic<bool>& cancel) : plan_(plan), cancel_(cancel) {}

  ExecResult go(const ProgressFn& progress) {
    std::vector<uint64_t> sizes;
    for (const std::string& p : plan_.inputs) {
      inputs_.push_back(std::make_unique<InputFile>(p));
      sizes.push_back(inputs_.back()->size());
    }
    validatePlan(plan_, sizes);
    buildTasks();
    prepareSparse();
    if (plan_.device == Device::Cuda) requireCuda();  // before any output file exists
    for (const OutputSpec& o : plan_.outputs) {
      outputs_.push_back(std::make_unique<OutputFile>(o.path, o.size, plan_.direct));
      assemblers_.push_back(std::make_unique<BlockAssembler>(*outputs_.back(), plan_.blockBytes));
    }
    for (size_t o = 0; o < plan_.outputs.size(); ++o) {
      const auto& head = plan_.outputs[o].head;
      if (!head.empty()) assemblers_[o]->put(0, head.data(), head.size());
      done_ += head.size();
    }

    unsigned threads = std::max(1u, std::min<unsigned>(plan_.threads, static_cast<unsigned>(std::max<size_t>(tasks_.size(), 1))));
    prefetchDistance_ = 2 * threads;
    // The caller's thread reports progress while the shared pool runs the tasks.
    std::atomic<bool> finished{false};
    std::thread reporter([&] {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!finished.load()) {
        cv_.wait_for(lock, std::chrono::milliseconds(100));
        if (!finished.load() && progress) progress(done_.load(), total_);
      }
    });
    WorkerPool::shared().runParallel(threads, [this] { worker(); });
    {
      std::lock_guard<std::mutex> lock(mutex_);
      finished.store(true);
    }
    cv_.notify_all();
    reporter.join();
    if (error_) std::rethrow_exception(error_);
    if (cancel_.load()) throw ExecError("Aborted", "the merge was aborted");
    for (size_t o = 0; o < outputs_.size(); ++o) {
      if (assemblers_[o]->pendingBlocks() != 0) throw ExecError("PlanInvalid", "plan left bytes of " + outputs_[o]->path() + " unwritten");
      outputs_[o]->finish();
    }
    if (progress) progress(done_.load(), total_);
    ExecResult result;
    result.moments = reduceMoments();
    result.stats = collectStats();
    for (const OutputSpec& o : plan_.outputs) result.bytesWritten += o.size;
    return result;
  }

 private:
  void buildTasks() {
    const uint64_t maxElems = std::max<uint64_t>(1, plan_.blockBytes / 4);
    for (uint32_t j = 0; j < plan_.jobs.size(); ++j) {
      const Job& job = plan_.jobs[j];
      maxSources_ = std::max(maxSources_, job.sources.size());
      // Cut pieces at the first destination's block boundaries, so each piece can be produced in place.
      const size_t es = job.dests.empty() ? 0 : dtypeSize(job.dests[0].dtype);
      for (uint64_t s = 0; s < job.count;) {
        uint64_t n = std::min(maxElems, job.count - s);
        if (es != 0) {
          uint64_t at = job.dests[0].offset + s * es;
          uint64_t toBoundary = (at / plan_.blockBytes + 1) * plan_.blockBytes - at;
          if (toBoundary % es == 0 && toBoundary / es < n) n = toBoundary / es;
        }
        pieces_.push_back({j, s, n});
        s += n;
      }
    }
    total_ = 0;
    for (const OutputSpec& o : plan_.outputs) total_ += o.head.size();
    // Small tensors are batched: one task holds pieces worth about one block of work.
    size_t first = 0;
    uint64_t acc = 0;
    for (size_t i = 0; i < pieces_.size(); ++i) {
      uint64_t w = pieceWeight(plan_.jobs[pieces_[i].job], pieces_[i].count);
      total_ += w;
      acc += w;
      if (acc >= plan_.blockBytes || i + 1 == pieces_.size()) {
        tasks_.push_back({first, i + 1 - first});
        first = i + 1;
        acc = 0;
      }
    }
    pieceMoments_.resize(pieces_.size());
  }

  void worker() {
    try {
      const uint64_t bufBytes = std::max<uint64_t>(1, plan_.blockBytes / 4) * 4;
      TaskReads reads(maxSources_);
      AlignedBuffer out(bufBytes);
      std::vector<const void*> srcPtr(maxSources_);
      std::vector<Dtype> srcType(maxSources_);
#ifdef WEIGHTMIX_WITH_CUDA
      // Declared after `reads`, so it unpins the read buffers before they are freed. A worker that
      // finds no device seat left (requireCuda) computes everything on the CPU: the same bytes.
      std::unique_ptr<cuda::WorkerContext> dev;
      CpuOnlyWorker cpuOnly;
      if (plan_.device == Device::Cuda) {
        if (takeDeviceSeat()) {
          dev = std::make_unique<cuda::WorkerContext>(maxSources_);
          reads.regrown = [&dev](AlignedBuffer& old, AlignedBuffer& now) {
            dev->unpin(old.data());
            dev->pin(now.data(), now.size());
          };
        } else {
          cpuOnly.set();
        }
      }
#endif
      for (;;) {
        size_t t = next_.fetch_add(1);
        if (t >= tasks_.size() || stop_.load() || cancel_.load()) break;
        // Two waves of tasks ahead of the pool: enough to keep the disk busy, little page cache.
        if (t + prefetchDistance_ < tasks_.size()) prefetchTask(tasks_[t + prefetchDistance_]);
        readTask(tasks_[t], reads);
#ifdef WEIGHTMIX_WITH_CUDA
        if (dev) {
          runTaskOnDevice(tasks_[t], reads, *dev, out, srcPtr, srcType);
          continue;
        }
#endif
        for (size_t p = tasks_[t].first; p < tasks_[t].first + tasks_[t].count; ++p) {
          if (cancel_.load() || stop_.load()) break;
          runPiece(p, reads, tasks_[t].first, out, srcPtr, srcType);
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = currentError();
      stop_.store(true);
    }
  }

  static std::exception_ptr currentError() {
    try {
      throw;
    } catch (const ExecError&) {
      return std::current_exception();
    } catch (const std::bad_alloc&) {
      return std::make_exception_ptr(ExecError("ENOMEM", "out of memory"));
    } catch (const std::exception& e) {
      return std::make_exception_ptr(ExecError("Internal", e.what()));
    }
  }

  // The source bytes of one task, read with as few preads as the file layout allows.
  struct TaskReads {
    explicit TaskReads(size_t slots) : buffers(slots) {}
    std::vector<AlignedBuffer> buffers;  // one per source slot, grown to the largest task
    std::vector<uint64_t> at;            // [piece - task.first][slot]: offset of the piece's bytes in buffers[slot]
    std::function<void(AlignedBuffer& old, AlignedBuffer& now)> regrown;  // the CUDA path pins read buffers
    void grow(size_t slot, uint64_t bytes) {
      AlignedBuffer next(bytes);
      if (regrown) regrown(buffers[slot], next);
      buffers[slot] = std::move(next);
    }
  };

  bool goesStraightIntoBlock(const Piece& piece, const Job& job) const {
    if (job.sources.size() != 1 || job.dests.size() != 1 || job.moments || job.stat != JobStat::None) return false;
    const Dest& d = job.dests[0];
    if (d.op != DestOp::Copy || d.dtype != job.sources[0].dtype) return false;
    const uint64_t es = dtypeSize(d.dtype);
    const uint64_t at = d.offset + piece.start * es;
    return piece.count > 0 && at / plan_.blockBytes == (at + piece.count * es - 1) / plan_.blockBytes;
  }

  // Runs of small tensors that lie back to back in one input file are read with one pread: the
  // 18,867-tensor MoE layout otherwise pays one system call (and one disk request) per tensor.
  void readTask(const Task& task, TaskReads& reads) {
    reads.at.assign(task.count * maxSources_, 0);
    for (size_t slot = 0; slot < maxSources_; ++slot) {
      uint64_t total = 0;
      for (size_t p = task.first; p < task.first + task.count; ++p) {
        const Job& job = plan_.jobs[pieces_[p].job];
        if (slot < job.sources.size() && !goesStraightIntoBlock(pieces_[p], job)) total += pieces_[p].count * dtypeSize(job.sources[slot].dtype);
      }
      if (total == 0) continue;
      if (reads.buffers[slot].size() < total) reads.grow(slot, total);
      uint8_t* base = reads.buffers[slot].data();
      uint64_t pos = 0, spanPos = 0, spanOffset = 0, spanLen = 0;
      uint32_t spanInput = 0;
      auto flush = [&] {
        if (spanLen > 0) inputs_[spanInput]->readAt(base + spanPos, spanLen, spanOffset);
      };
      for (size_t p = task.first; p < task.first + task.count; ++p) {
        const Piece& piece = pieces_[p];
        const Job& job = plan_.jobs[piece.job];
        if (slot >= job.sources.size() || goesStraightIntoBlock(piece, job)) continue;
        const Source& so = job.sources[slot];
        const uint64_t es = dtypeSize(so.dtype);
        const uint64_t offset = so.offset + piece.start * es, len = piece.count * es;
        if (spanLen == 0 || so.input != spanInput || offset != spanOffset + spanLen) {
          flush();
          spanInput = so.input;
          spanOffset = offset;
          spanPos = pos;
          spanLen = 0;
        }
        spanLen += len;
        reads.at[(p - task.first) * maxSources_ + slot] = pos;
        pos += len;
      }
      flush();
    }
  }

  // Asks the kernel to start reading a later task's sources now (POSIX_FADV_WILLNEED), so that cold
  // inputs stream in while this worker computes and writes: reads and writes then overlap on disk.
  void prefetchTask(const Task& task) {
    for (size_t slot = 0; slot < maxSources_; ++slot) {
      uint64_t spanOffset = 0, spanLen = 0;
      uint32_t spanInput = 0;
      for (size_t p = task.first; p < task.first + task.count; ++p) {
        const Job& job = plan_.jobs[pieces_[p].job];
        if (slot >= job.sources.size()) continue;
        const Source& so = job.sources[slot];
        const uint64_t es = dtypeSize(so.dtype);
        const uint64_t offset = so.offset + pieces_[p].start * es, len = pieces_[p].count * es;
        if (spanLen > 0 && so.input == spanInput && offset == spanOffset + spanLen) {
          spanLen += len;
          continue;
        }
        if (spanLen > 0) inputs_[spanInput]->willNeed(spanOffset, spanLen);
        spanInput = so.input;
        spanOffset = offset;
        spanLen = len;
      }
      if (spanLen > 0) inputs_[spanInput]->willNeed(spanOffset, spanLen);
    }
  }

  void runPiece(size_t p, const TaskReads& reads, size_t taskFirst, AlignedBuffer& out, std::vector<const void*>& srcPtr,
                std::vector<Dtype>& srcType) {
    const Piece& piece = pieces_[p];
    const Job& job = plan_.jobs[piece.job];
    const uint64_t n = piece.count;
    if (goesStraightIntoBlock(piece, job)) {
      readStraightIntoBlock(piece, job);
      return;
    }
    for (size_t s = 0; s < job.sources.size(); ++s) {
      srcPtr[s] = reads.buffers[s].data() + reads.at[(p - taskFirst) * maxSources_ + s];
      srcType[s] = job.sources[s].dtype;
    }
    if (job.moments) accumulateMoments(srcPtr[0], srcType[0], srcPtr[1], srcType[1], n, pieceMoments_[p]);
    if (job.stat != JobStat::None) accumulateStat(piece, job, srcPtr, srcType);
    for (const Dest& d : job.dests) {
      if (destOnDevice(job, d, piece.job)) continue;  // runTaskOnDevice produces it
      const size_t es = dtypeSize(d.dtype);
      const uint64_t at = d.offset + piece.start * es;
      BlockAssembler& assembler = *assemblers_[d.output];
      // Produce in place when the range sits inside one block; else through the worker buffer.
      uint8_t* inPlace = assembler.reserve(at, n * es);
      uint8_t* target = inPlace != nullptr ? inPlace : out.data();
      const void* bytes = target;
      switch (d.op) {
        case DestOp::Copy: {
          size_t s = static_cast<size_t>(d.w[0]);
          if (srcType[s] == d.dtype) {
            if (inPlace != nullptr) std::memcpy(inPlace, srcPtr[s], n * es);
            else bytes = srcPtr[s];
          } else {
            convert(srcPtr[s], srcType[s], target, d.dtype, n);
          }
          break;
        }
        case DestOp::Lerp:
          lerpExact(srcPtr[0], srcType[0], srcPtr[1], srcType[1], target, d.dtype, n, d.w[0]);
          break;
        case DestOp::LerpMi:
          lerpMi(srcPtr[0], srcPtr[1], srcType[0], target, d.dtype, n, d.w[0]);
          break;
        case DestOp::Linear:
          linear(srcPtr.data(), srcType.data(), d.w.data(), job.sources.size(), target, d.dtype, n);
          break;
        case DestOp::Sparse:
          sparseMerge(srcPtr.data(), srcType.data(), sparse_[piece.job][static_cast<size_t>(&d - job.dests.data())], job.count,
                      piece.start, n, target, d.dtype);
          break;
      }
      if (inPlace != nullptr) assembler.commit(at, n * es);
      else assembler.put(at, static_cast<const uint8_t*>(bytes), n * es);
    }
    done_.fetch_add(pieceWeight(job, n));
  }

  // ---- CUDA (plan.device == Cuda) ----------------------------------------------------------------
  void requireCuda() {
#ifdef WEIGHTMIX_WITH_CUDA
    cuda::requireDevice();
    // Device memory: a device worker keeps its buffers, grown to the run's largest task, until the
    // run ends, so a run holds at most seats x perWorker bytes. Seats are what the GPU's free memory
    // allows (at most the thread count); workers beyond them run on the CPU.
    const uint64_t perWorker = deviceBytesPerWorker();
    const uint64_t budget = cuda::deviceMemoryBudget();
    const auto mib = [](uint64_t b) { return std::to_string((b + (uint64_t{1} << 20) - 1) >> 20) + " MiB"; };
    if (perWorker > budget) {
      throw ExecError("CudaOutOfMemory", "cuda: out of device memory (a worker needs " + mib(perWorker) + ", " + mib(budget) +
                                             " is usable); use --device cpu");
    }
    deviceSeats_.store(perWorker == 0 ? SIZE_MAX : static_cast<size_t>(std::min<uint64_t>(budget / perWorker, SIZE_MAX)));
#else
    throw ExecError("CudaUnavailable", "cuda: this build of weightmix has no CUDA kernels (it was built without nvcc)");
#endif
  }

  // Dests the GPU computes in a CUDA run; byte copies, raw bytes and over-wide arguments stay on the CPU.
  bool destOnDevice(const Job& job, const Dest& d, size_t jobIndex) const {
#ifdef WEIGHTMIX_WITH_CUDA
    if (plan_.device != Device::Cuda || d.dtype == Dtype::U8 || CpuOnlyWorker::active()) return false;
    switch (d.op) {
      case DestOp::Copy: return job.sources[static_cast<size_t>(d.w[0])].dtype != d.dtype;
      case DestOp::Linear: return job.sources.size() <= cuda::kMaxLinearSources;
      case DestOp::Sparse: return cuda::sparseFits(sparse_[jobIndex][static_cast<size_t>(&d - job.dests.data())], job.sources.size());
      default: return true;
    }
#else
    return false;
#endif
  }

#ifdef WEIGHTMIX_WITH_CUDA
  // Marks the current worker thread as computing on the CPU for the rest of its worker() call.
  class CpuOnlyWorker {
   public:
    CpuOnlyWorker() = default;
    CpuOnlyWorker(const CpuOnlyWorker&) = delete;
    CpuOnlyWorker& operator=(const CpuOnlyWorker&) = delete;
    ~CpuOnlyWorker() { flag() = false; }  // pool threads serve later runs
    void set() { flag() = true; }
    static bool active() { return flag(); }

   private:
    static bool& flag() {
      thread_local bool cpuOnly = false;
      return cpuOnly;
    }
  };

  bool takeDeviceSeat() {
    size_t seats = deviceSeats_.load();
    while (seats > 0 && !deviceSeats_.compare_exchange_weak(seats, seats - 1)) {
    }
    return seats > 0;
  }

  static uint64_t roundMiB(uint64_t b) { return (b + (uint64_t{1} << 20) - 1) & ~((uint64_t{1} << 20) - 1); }

  // What one device worker's buffers grow to over the run (WorkerContext rounds each to a MiB): per
  // source slot and for the results, the largest task's bytes, each piece counted 16-byte aligned
  // (runTaskOnDevice's layout never needs more).
  uint64_t deviceBytesPerWorker() const {
    std::vector<uint64_t> slotMax(maxSources_, 0), slot(maxSources_);
    uint64_t resultsMax = 0;
    const auto alignUp = [](uint64_t x) { return (x + 15) & ~uint64_t{15}; };
    for (const Task& task : tasks_) {
      std::fill(slot.begin(), slot.end(), 0);
      uint64_t results = 0;
      for (size_t p = task.first; p < task.first + task.count; ++p) {
        const Piece& piece = pieces_[p];
        const Job& job = plan_.jobs[piece.job];
        if (goesStraightIntoBlock(piece, job)) continue;
        bool any = false;
        for (const Dest& d : job.dests) {
          if (!destOnDevice(job, d, piece.job)) continue;
          results += alignUp(piece.count * dtypeSize(d.dtype));
          any = true;
        }
        if (!any) continue;
        for (size_t s = 0; s < job.sources.size(); ++s) slot[s] += alignUp(piece.count * dtypeSize(job.sources[s].dtype));
      }
      for (size_t s = 0; s < maxSources_; ++s) slotMax[s] = std::max(slotMax[s], slot[s]);
      resultsMax = std::max(resultsMax, results);
    }
    uint64_t total = roundMiB(resultsMax);
    for (uint64_t b : slotMax) total += roundMiB(b);
    return total;
  }

  std::atomic<size_t> deviceSeats_{0};

  // One task on the GPU: the source bytes of the pieces it computes are uploaded from the pinned read
  // buffers, every device dest is computed into one results buffer and copied back while this thread
  // does the task's CPU share (plain copies, statistics, dests the GPU does not take); then the bytes
  // go to the blocks.
  //
  // In a read buffer the pieces of a slot lie back to back, whatever their dtypes: after a tensor of
  // an odd number of 16-bit elements (or of raw bytes), the next one starts at an address that is
  // only 2- (or 1-) byte aligned, which the CPU's memcpy loads accept but a GPU load faults on
  // (cudaErrorMisalignedAddress, sticky). So on the device every piece starts 16-byte aligned: a
  // run of pieces that are adjacent in the read buffer and keep that alignment is one copy, a piece
  // that would break it starts a new copy at the next 16-byte boundary. 16, not the element size, so
  // that the kernels' 16-byte vector path applies to every piece.
  void runTaskOnDevice(const Task& task, const TaskReads& reads, cuda::WorkerContext& dev, AlignedBuffer& out,
                       std::vector<const void*>& srcPtr, std::vector<Dtype>& srcType) {
    struct Launch {
      size_t piece;
      const Dest* dest;
      uint64_t at;  // offset in the results buffer
    };
    struct Copy {
      uint64_t host, device, len;  // offsets in the slot's read buffer and device buffer
    };
    constexpr uint64_t kAlign = 16;
    const auto alignUp = [](uint64_t x) { return (x + kAlign - 1) & ~(kAlign - 1); };
    std::vector<Launch> launches;
    std::vector<std::vector<Copy>> copies(maxSources_);
    std::vector<uint64_t> slotBytes(maxSources_, 0);
    std::vector<uint64_t> deviceAt(task.count * maxSources_, 0);  // [piece - task.first][slot], like reads.at
    uint64_t resultBytes = 0;
    for (size_t p = task.first; p < task.first + task.count; ++p) {
      const Piece& piece = pieces_[p];
      const Job& job = plan_.jobs[piece.job];
      if (goesStraightIntoBlock(piece, job)) continue;
      const size_t before = launches.size();
      for (const Dest& d : job.dests) {
        if (!destOnDevice(job, d, piece.job)) continue;
        launches.push_back({p, &d, resultBytes});
        resultBytes += alignUp(piece.count * dtypeSize(d.dtype));
      }
      if (launches.size() == before) continue;
      for (size_t s = 0; s < job.sources.size(); ++s) {
        const size_t i = (p - task.first) * maxSources_ + s;
        const uint64_t host = reads.at[i], len = piece.count * dtypeSize(job.sources[s].dtype);
        std::vector<Copy>& c = copies[s];
        if (!c.empty() && c.back().host + c.back().len == host && (c.back().device + c.back().len) % kAlign == 0) {
          deviceAt[i] = c.back().device + c.back().len;
          c.back().len += len;
        } else {
          deviceAt[i] = alignUp(slotBytes[s]);
          c.push_back({host, deviceAt[i], len});
        }
        slotBytes[s] = deviceAt[i] + len;
      }
    }
    const uint8_t* host = nullptr;
    if (!launches.empty()) {
      std::vector<uint8_t*> slot(maxSources_, nullptr);
      for (size_t s = 0; s < maxSources_; ++s) {
        if (slotBytes[s] == 0) continue;
        slot[s] = dev.sources(s, slotBytes[s]);
        for (const Copy& c : copies[s]) dev.upload(slot[s] + c.device, reads.buffers[s].data() + c.host, c.len);
      }
      uint8_t* results = dev.results(resultBytes);
      std::vector<const void*> src(maxSources_);
      for (const Launch& l : launches) {
        const Piece& piece = pieces_[l.piece];
        const Job& job = plan_.jobs[piece.job];
        for (size_t s = 0; s < job.sources.size(); ++s) {
          src[s] = slot[s] + deviceAt[(l.piece - task.first) * maxSources_ + s];
          srcType[s] = job.sources[s].dtype;
        }
        const Dest& d = *l.dest;
        void* o = results + l.at;
        const size_t n = piece.count;
        int rc = 0;
        switch (d.op) {
          case DestOp::Copy:
            rc = cuda::convert(src[static_cast<size_t>(d.w[0])], srcType[static_cast<size_t>(d.w[0])], o, d.dtype, n, dev.stream());
            break;
          case DestOp::Lerp:
            rc = cuda::lerpExact(src[0], srcType[0], src[1], srcType[1], o, d.dtype, n, d.w[0], dev.stream());
            break;
          case DestOp::LerpMi:
            rc = cuda::lerpMi(src[0], src[1], srcType[0], o, d.dtype, n, d.w[0], dev.stream());
            break;
          case DestOp::Linear:
            rc = cuda::linear(src.data(), srcType.data(), d.w.data(), job.sources.size(), o, d.dtype, n, dev.stream());
            break;
          case DestOp::Sparse:
            rc = cuda::sparseMerge(src.data(), srcType.data(), job.sources.size(), sparse_[piece.job][static_cast<size_t>(l.dest - job.dests.data())],
                                   job.count, piece.start, n, o, d.dtype, dev.stream());
            break;
        }
        cuda::WorkerContext::check(rc, "launching a kernel");
      }
      host = dev.download(resultBytes);
    }
    for (size_t p = task.first; p < task.first + task.count; ++p) {
      if (cancel_.load() || stop_.load()) break;
      runPiece(p, reads, task.first, out, srcPtr, srcType);
    }
    if (launches.empty()) return;
    dev.wait();
    for (const Launch& l : launches) {
      const Piece& piece = pieces_[l.piece];
      const Dest& d = *l.dest;
      const uint64_t len = piece.count * dtypeSize(d.dtype), at = d.offset + piece.start * dtypeSize(d.dtype);
      BlockAssembler& assembler = *assemblers_[d.output];
      if (uint8_t* inPlace = assembler.reserve(at, len)) {
        std::memcpy(inPlace, host + l.at, len);
        assembler.commit(at, len);
      } else {
        assembler.put(at, host + l.at, len);
      }
    }
  }
#endif

  // A plain copy (an unselected tensor, λ at an endpoint) is read straight into its output block.
  void readStraightIntoBlock(const Piece& piece, const Job& job) {
    const Dest& d = job.dests[0];
    const Source& s = job.sources[0];
    const size_t es = dtypeSize(d.dtype);
    const uint64_t at = d.offset + piece.start * es;
    uint8_t* inPlace = assemblers_[d.output]->reserve(at, piece.count * es);
    inputs_[s.input]->readAt(inPlace, piece.count * es, s.offset + piece.start * es);
    assemblers_[d.output]->commit(at, piece.count * es);
    done_.fetch_add(pieceWeight(job, piece.count));
  }

  // Decoded once: the sparse parameters of every dest, and zeroed counters for statistics jobs.
  void prepareSparse() {
    sparse_.resize(plan_.jobs.size());
    statCounts_.resize(plan_.jobs.size());
    for (size_t j = 0; j < plan_.jobs.size(); ++j) {
      const Job& job = plan_.jobs[j];
      for (const Dest& d : job.dests) {
        sparse_[j].push_back(d.op == DestOp::Sparse ? decodeSparseParams(d.params, job.sources.size()) : SparseParams{});
      }
      size_t counters = job.stat == JobStat::Histogram ? (size_t{1} << static_cast<uint32_t>(job.statParams[2]))
                        : job.stat == JobStat::L1  ? 2 * kL1Buckets
                                                   : 0;
      if (counters == 0) continue;
      statCounts_[j].reset(new std::atomic<uint64_t>[counters]);
      for (size_t c = 0; c < counters; ++c) statCounts_[j][c].store(0, std::memory_order_relaxed);
    }
  }

  // Integer counts: added atomically, the totals do not depend on threads or piece boundaries.
  void accumulateStat(const Piece& piece, const Job& job, const std::vector<const void*>& srcPtr, const std::vector<Dtype>& srcType) {
    const auto& sp = job.statParams;
    const uint32_t indexBits = static_cast<uint32_t>(sp[0]);
    std::vector<uint64_t> local;
    if (job.stat == JobStat::Histogram) {
      const uint32_t bits = static_cast<uint32_t>(sp[2]);
      local.assign(size_t{1} << bits, 0);
      const uint64_t prefix = (static_cast<uint64_t>(sp[3]) << 32) | static_cast<uint64_t>(sp[4]);
      radixHistogram(srcPtr[0], srcType[0], srcPtr[1], srcType[1], indexBits, job.count, piece.start, piece.count,
                     static_cast<uint32_t>(sp[1]), bits, prefix, local.data());
    } else {
      std::vector<double> one = {0, 0, 1, sp[0], 0, 1};
      one.insert(one.end(), sp.begin() + 1, sp.end());
      const SparseParams keep = decodeSparseParams(one, 2);
      local.assign(2 * kL1Buckets, 0);
      l1Buckets(srcPtr[0], srcType[0], srcPtr[1], srcType[1], keep.models[0], indexBits, job.count, piece.start, piece.count,
                local.data(), local.data() + kL1Buckets);
    }
    for (size_t c = 0; c < local.size(); ++c) {
      if (local[c] != 0) statCounts_[piece.job][c].fetch_add(local[c], std::memory_order_relaxed);
    }
  }

  // Job order: a histogram job gives 2^bits counts, an L1 job its two sums.
  std::vector<double> collectStats() const {
    std::vector<double> out;
    for (size_t j = 0; j < plan_.jobs.size(); ++j) {
      const Job& job = plan_.jobs[j];
      if (job.stat == JobStat::Histogram) {
        for (size_t c = 0; c < (size_t{1} << static_cast<uint32_t>(job.statParams[2])); ++c) out.push_back(static_cast<double>(statCounts_[j][c].load()));
      } else if (job.stat == JobStat::L1) {
        uint64_t b[2 * kL1Buckets];
        for (size_t c = 0; c < 2 * kL1Buckets; ++c) b[c] = statCounts_[j][c].load();
        out.push_back(l1Total(b));
        out.push_back(l1Total(b + kL1Buckets));
      }
    }
    return out;
  }

  std::vector<Moments> reduceMoments() const {
    // Summed in piece order: the same totals for any thread count.
    std::vector<Moments> perJob(plan_.jobs.size());
    for (size_t p = 0; p < pieces_.size(); ++p) {
      if (!plan_.jobs[pieces_[p].job].moments) continue;
      Moments& m = perJob[pieces_[p].job];
      const Moments& x = pieceMoments_[p];
      m.aa += x.aa;
      m.bb += x.bb;
      m.ab += x.ab;
      m.dd += x.dd;
      m.maxAbsDiff = std::max(m.maxAbsDiff, x.maxAbsDiff);
      m.nonFinite += x.nonFinite;
    }
    return perJob;
  }

  const Plan& plan_;
  const std::atomic<bool>& cancel_;
  std::vector<std::unique_ptr<InputFile>> inputs_;
  std::vector<std::unique_ptr<OutputFile>> outputs_;
  std::vector<std::unique_ptr<BlockAssembler>> assemblers_;
  std::vector<Piece> pieces_;
  std::vector<Task> tasks_;
  std::vector<Moments> pieceMoments_;
  std::vector<std::vector<SparseParams>> sparse_;                   // [job][dest]
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> statCounts_;  // [job][counter]
  size_t maxSources_ = 0;
  size_t prefetchDistance_ = 2;
  uint64_t total_ = 0;
  std::atomic<uint64_t> done_{0};
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::exception_ptr error_;
};

}  // namespace

ExecResult executePlan(const Plan& plan, const ProgressFn& progress, const std::atomic<bool>& cancel) {
  Run run(plan, cancel);
  return run.go(progress);
}

}  // namespace wm
