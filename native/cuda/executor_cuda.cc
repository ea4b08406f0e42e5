#include "executor_cuda.h"

#include "../exec_error.h"

#ifdef WEIGHTMIX_WITH_CUDA
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../block_assembler.h"
#include "../kernels/cuda_kernels.h"
#include "device.h"
#endif

namespace wm {
namespace cuda {

#ifdef WEIGHTMIX_WITH_CUDA

struct DeviceRun::Seat::Context {
  explicit Context(size_t slots) : worker(slots) {}
  WorkerContext worker;
};

namespace {

// Whether the calling worker thread holds a device seat (pool threads serve later runs, so a Seat
// clears it again).
bool& seated() {
  thread_local bool onDevice = false;
  return onDevice;
}

uint64_t roundMiB(uint64_t b) { return (b + (uint64_t{1} << 20) - 1) & ~((uint64_t{1} << 20) - 1); }

}  // namespace

DeviceRun::DeviceRun(const RunView& run) : run_(run) {
  requireDevice();
  // Device memory: a device worker keeps its buffers, grown to the run's largest task, until the
  // run ends, so a run holds at most seats x perWorker bytes. Seats are what the GPU's free memory
  // allows (at most the thread count); workers beyond them run on the CPU.
  const uint64_t perWorker = bytesPerWorker();
  const uint64_t budget = deviceMemoryBudget();
  const auto mib = [](uint64_t b) { return std::to_string((b + (uint64_t{1} << 20) - 1) >> 20) + " MiB"; };
  if (perWorker > budget) {
    throw ExecError("CudaOutOfMemory", "cuda: out of device memory (a worker needs " + mib(perWorker) + ", " + mib(budget) +
                                           " is usable); use --device cpu");
  }
  seats_.store(perWorker == 0 ? SIZE_MAX : static_cast<size_t>(std::min<uint64_t>(budget / perWorker, SIZE_MAX)));
}

DeviceRun::~DeviceRun() = default;

DeviceRun::Seat::Seat(DeviceRun& run, TaskReads& reads) {
  if (!run.takeSeat()) return;
  context_ = std::make_unique<Context>(run.run_.maxSources);
  WorkerContext& dev = context_->worker;
  reads.regrown = [&dev](AlignedBuffer& old, AlignedBuffer& now) {
    dev.unpin(old.data());
    dev.pin(now.data(), now.size());
  };
  seated() = true;
}

DeviceRun::Seat::~Seat() { seated() = false; }

bool DeviceRun::takeSeat() {
  size_t seats = seats_.load();
  while (seats > 0 && !seats_.compare_exchange_weak(seats, seats - 1)) {
  }
  return seats > 0;
}

bool DeviceRun::destOnDevice(const Job& job, const Dest& d, size_t jobIndex) const { return seated() && destFits(job, d, jobIndex); }

bool DeviceRun::destFits(const Job& job, const Dest& d, size_t jobIndex) const {
  if (d.dtype == Dtype::U8) return false;
  switch (d.op) {
    case DestOp::Copy: return job.sources[static_cast<size_t>(d.w[0])].dtype != d.dtype;
    case DestOp::Linear: return d.params.empty() && job.sources.size() <= kMaxLinearSources;  // open moments (local_moments.h) are a CPU task
    case DestOp::Sparse: {
      const SparseParams& p = run_.sparse[jobIndex][static_cast<size_t>(&d - job.dests.data())];
      return p.open.empty() && sparseFits(p, job.sources.size());  // a tensor-local job's statistics are on the CPU (local_job.h)
    }
    case DestOp::Nearswap:
    case DestOp::Ram:
    case DestOp::RowLinear:
    case DestOp::Della:
    case DestOp::Sce:
    case DestOp::ArceeFusion: return false;  // CPU kernels only (kernels/elementwise.h, della.h, sce.h, arcee_fusion.h): the CPU share of the task produces them
    default: return true;
  }
}

// What one device worker's buffers grow to over the run (WorkerContext rounds each to a MiB): per
// source slot and for the results, the largest task's bytes, each piece counted 16-byte aligned
// (runTask's layout never needs more).
uint64_t DeviceRun::bytesPerWorker() const {
  const size_t slots = run_.maxSources;
  std::vector<uint64_t> slotMax(slots, 0), slot(slots);
  uint64_t resultsMax = 0;
  const auto alignUp = [](uint64_t x) { return (x + 15) & ~uint64_t{15}; };
  for (const Task& task : run_.tasks) {
    if (task.local) continue;  // a tensor-local task runs every dest on the CPU (Run::runPiece), even a fused one's linear
    std::fill(slot.begin(), slot.end(), 0);
    uint64_t results = 0;
    for (size_t p = task.first; p < task.first + task.count; ++p) {
      const Piece& piece = run_.pieces[p];
      const Job& job = run_.plan.jobs[piece.job];
      if (goesStraightIntoBlock(piece, job, run_.plan.blockBytes)) continue;
      bool any = false;
      for (const Dest& d : job.dests) {
        if (!destFits(job, d, piece.job)) continue;
        results += alignUp(piece.count * dtypeSize(d.dtype));
        any = true;
      }
      if (!any) continue;
      for (size_t s = 0; s < job.sources.size(); ++s) slot[s] += alignUp(piece.count * dtypeSize(job.sources[s].dtype));
    }
    for (size_t s = 0; s < slots; ++s) slotMax[s] = std::max(slotMax[s], slot[s]);
    resultsMax = std::max(resultsMax, results);
  }
  uint64_t total = roundMiB(resultsMax);
  for (uint64_t b : slotMax) total += roundMiB(b);
  return total;
}

// In a read buffer the pieces of a slot lie back to back, whatever their dtypes: after a tensor of
// an odd number of 16-bit elements (or of raw bytes), the next one starts at an address that is
// only 2- (or 1-) byte aligned, which the CPU's memcpy loads accept but a GPU load faults on
// (cudaErrorMisalignedAddress, sticky). So on the device every piece starts 16-byte aligned: a
// run of pieces that are adjacent in the read buffer and keep that alignment is one copy, a piece
// that would break it starts a new copy at the next 16-byte boundary. 16, not the element size, so
// that the kernels' 16-byte vector path applies to every piece.
void DeviceRun::runTask(Seat& seat, const Task& task, const TaskReads& reads, const std::function<void()>& cpuShare,
                        const std::vector<std::unique_ptr<BlockAssembler>>& assemblers) {
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
  const size_t slots = run_.maxSources;
  WorkerContext& dev = seat.context_->worker;
  std::vector<Launch> launches;
  std::vector<std::vector<Copy>> copies(slots);
  std::vector<uint64_t> slotBytes(slots, 0);
  std::vector<uint64_t> deviceAt(task.count * slots, 0);  // [piece - task.first][slot], like reads.at
  uint64_t resultBytes = 0;
  for (size_t p = task.first; p < task.first + task.count; ++p) {
    const Piece& piece = run_.pieces[p];
    const Job& job = run_.plan.jobs[piece.job];
    if (goesStraightIntoBlock(piece, job, run_.plan.blockBytes)) continue;
    const size_t before = launches.size();
    for (const Dest& d : job.dests) {
      if (!destOnDevice(job, d, piece.job)) continue;
      launches.push_back({p, &d, resultBytes});
      resultBytes += alignUp(piece.count * dtypeSize(d.dtype));
    }
    if (launches.size() == before) continue;
    for (size_t s = 0; s < job.sources.size(); ++s) {
      const size_t i = (p - task.first) * slots + s;
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
    std::vector<uint8_t*> slot(slots, nullptr);
    for (size_t s = 0; s < slots; ++s) {
      if (slotBytes[s] == 0) continue;
      slot[s] = dev.sources(s, slotBytes[s]);
      for (const Copy& c : copies[s]) dev.upload(slot[s] + c.device, reads.buffers[s].data() + c.host, c.len);
    }
    uint8_t* results = dev.results(resultBytes);
    std::vector<const void*> src(slots);
    std::vector<Dtype> srcType(slots);
    for (const Launch& l : launches) {
      const Piece& piece = run_.pieces[l.piece];
      const Job& job = run_.plan.jobs[piece.job];
      for (size_t s = 0; s < job.sources.size(); ++s) {
        src[s] = slot[s] + deviceAt[(l.piece - task.first) * slots + s];
        srcType[s] = job.sources[s].dtype;
      }
      const Dest& d = *l.dest;
      void* o = results + l.at;
      const size_t n = piece.count;
      int rc = 0;
      switch (d.op) {
        case DestOp::Copy:
          rc = convert(src[static_cast<size_t>(d.w[0])], srcType[static_cast<size_t>(d.w[0])], o, d.dtype, n, dev.stream());
          break;
        case DestOp::Lerp:
          rc = lerpExact(src[0], srcType[0], src[1], srcType[1], o, d.dtype, n, d.w[0], dev.stream());
          break;
        case DestOp::LerpMi:
          rc = lerpMi(src[0], src[1], srcType[0], o, d.dtype, n, d.w[0], dev.stream());
          break;
        case DestOp::Linear:
          rc = linear(src.data(), srcType.data(), d.w.data(), job.sources.size(), o, d.dtype, n, dev.stream());
          break;
        case DestOp::Sparse:
          rc = sparseMerge(src.data(), srcType.data(), job.sources.size(), run_.sparse[piece.job][static_cast<size_t>(l.dest - job.dests.data())],
                           job.count, piece.start, n, o, d.dtype, dev.stream());
          break;
        case DestOp::Nearswap:
        case DestOp::Ram:
        case DestOp::RowLinear:
        case DestOp::Della:
        case DestOp::Sce:
        case DestOp::ArceeFusion:
          throw std::logic_error("internal: a CPU-only op was launched on the device");  // destFits keeps them on the CPU
      }
      WorkerContext::check(rc, "launching a kernel");
    }
    host = dev.download(resultBytes);
  }
  cpuShare();
  if (launches.empty()) return;
  dev.wait();
  for (const Launch& l : launches) {
    const Piece& piece = run_.pieces[l.piece];
    const Dest& d = *l.dest;
    const uint64_t len = piece.count * dtypeSize(d.dtype), at = d.offset + piece.start * dtypeSize(d.dtype);
    BlockAssembler& assembler = *assemblers[d.output];
    if (uint8_t* inPlace = assembler.reserve(at, len)) {
      std::memcpy(inPlace, host + l.at, len);
      assembler.commit(at, len);
    } else {
      assembler.put(at, host + l.at, len);
    }
  }
}

#else  // no CUDA in this build: CUDA plans are refused before any output file exists.

struct DeviceRun::Seat::Context {};

DeviceRun::DeviceRun(const RunView& run) : run_(run) {
  throw ExecError("CudaUnavailable", "cuda: this build of weightmix has no CUDA kernels (it was built without nvcc)");
}
DeviceRun::~DeviceRun() = default;
DeviceRun::Seat::Seat(DeviceRun&, TaskReads&) {}
DeviceRun::Seat::~Seat() = default;
bool DeviceRun::takeSeat() { return false; }
bool DeviceRun::destOnDevice(const Job&, const Dest&, size_t) const { return false; }
bool DeviceRun::destFits(const Job&, const Dest&, size_t) const { return false; }
uint64_t DeviceRun::bytesPerWorker() const { return 0; }
void DeviceRun::runTask(Seat&, const Task&, const TaskReads&, const std::function<void()>&, const std::vector<std::unique_ptr<BlockAssembler>>&) {}

#endif

}  // namespace cuda
}  // namespace wm
