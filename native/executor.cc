#include "executor.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <thread>

#include "block_assembler.h"
#include "cuda/executor_cuda.h"
#include "exec_error.h"
#include "executor_work.h"
#include "io.h"
#include "job_params.h"
#include "local_job.h"
#include "local_sce.h"
#include "output_flusher.h"
#include "output_reservations.h"
#include "plan_validation.h"
#include "task_reads.h"
#include "worker_pool.h"
#include "kernels/sparsify.h"
#include "kernels/della.h"
#include "kernels/elementwise.h"
#include "kernels/histogram_digit.h"
#include "kernels/sce.h"
#include "kernels/arcee_fusion.h"

namespace wm {
namespace {

// Two O_DIRECT writes in flight: 8 MiB blocks to five files on this virtio disk went at 0.82 GB/s one
// at a time, 1.16 GB/s two at a time, 0.96 GB/s four (BENCHMARKS.md, issue 15).
constexpr unsigned kWriterThreads = 2;

uint64_t pieceWeight(const Job& job, uint64_t count) {
  uint64_t w = 0;
  for (const Dest& d : job.dests) w += count * dtypeSize(d.dtype);
  if (job.dests.empty()) {
    for (const Source& s : job.sources) w += count * dtypeSize(s.dtype);
  }
  return w;
}

class Run {
 public:
  Run(const Plan& plan, const std::atomic<bool>& cancel, const CoefficientsFn& coefficients, const ReservedFn& reserved)
      : plan_(plan), cancel_(cancel), coefficients_(coefficients), reserved_(reserved) {}

  ExecResult go(const ProgressFn& progress) {
    std::vector<uint64_t> sizes;
    for (const std::string& p : plan_.inputs) {
      inputs_.push_back(std::make_unique<InputFile>(p));
      sizes.push_back(inputs_.back()->size());
    }
    validatePlan(plan_, sizes);
    prepareSparse();
    buildTasks();
    if (plan_.device == Device::Cuda) {  // before any output file exists
      device_ = std::make_unique<cuda::DeviceRun>(cuda::RunView{plan_, pieces_, tasks_, sparse_, maxSources_});
    }
    for (const OutputSpec& o : plan_.outputs) outputs_.push_back(std::make_unique<OutputFile>(o.path, o.size, plan_.direct));
    flusher_ = flusherOfFilesOnDevices(outputs_);  // each flushed once complete, while the workers go on with the others
    reservations_ = std::make_unique<OutputReservations>(outputs_, reserved_, [this](std::exception_ptr e) { fail(e); });
    // Device writes go to writer threads (a write that copies is done by a worker: BlockAssembler::writeInTurn).
    if (std::any_of(outputs_.begin(), outputs_.end(), [](const auto& f) { return f->directToDevice(); })) {
      writer_ = std::make_unique<BlockWriter>(kWriterThreads, 2 * kWriterThreads);
    }
    for (auto& file : outputs_) assemblers_.push_back(std::make_unique<BlockAssembler>(*file, plan_.blockBytes, blockBuffers_, writer_.get()));
    for (size_t o = 0; o < plan_.outputs.size(); ++o) {
      const OutputSpec& out = plan_.outputs[o];
      if (out.headBytes > 0) assemblers_[o]->put(0, out.head, out.headBytes);
      done_ += out.headBytes;
    }

    unsigned threads = std::max(1u, std::min<unsigned>(plan_.threads, static_cast<unsigned>(std::max<size_t>(tasks_.size(), 1))));
    // Eight waves of 8 MiB ahead whatever the block size: how far to read ahead is the disk's matter, not the block's. Two
    // waves left a CPU-bound method's workers waiting on their reads while this disk had room (cold della, reads competing
    // with the output's writes: 4.67 -> 4.32 s; 16 waves no better; cold interpolate unchanged, BENCHMARKS.md 2026-12-07).
    constexpr uint64_t kPrefetchWaveBytes = 8u << 20;
    prefetchDistance_ = 8 * threads * std::max<uint64_t>(1, kPrefetchWaveBytes / std::max<uint64_t>(plan_.blockBytes, 1));
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
    if (error_ || cancel_.load()) {
      reservations_->stop(error_ ? error_ : std::make_exception_ptr(ExecError("Aborted", "the merge was aborted")));
    } else {
      reservations_->join();
    }
    if (error_) std::rethrow_exception(error_);
    if (cancel_.load()) throw ExecError("Aborted", "the merge was aborted");
    if (writer_) writer_->drain();
    if (flusher_) flusher_->drain();
    for (size_t o = 0; o < outputs_.size(); ++o) {
      if (assemblers_[o]->pendingBlocks() != 0) throw ExecError("PlanInvalid", "plan left bytes of " + outputs_[o]->path() + " unwritten");
      outputs_[o]->finish();
    }
    if (progress) progress(done_.load(), total_);
    ExecResult result;
    result.moments = reduceMoments();
    result.stats = collectStats();
    for (const OutputSpec& o : plan_.outputs) result.bytesWritten += o.size;
    if (flusher_) result.flushedEarly = flusher_->flushedCount();
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
      const uint64_t rows = rowBlock(job);
      for (uint64_t s = 0; s < job.count;) {
        uint64_t n = std::min(maxElems, job.count - s);
        if (es != 0) {
          uint64_t at = job.dests[0].offset + s * es;
          uint64_t toBoundary = (at / plan_.blockBytes + 1) * plan_.blockBytes - at;
          if (toBoundary % es == 0 && toBoundary / es < n) n = toBoundary / es;
        }
        if (rows > 1) n = std::max(rows, n - n % rows);  // della ranks within rows: whole rows per piece
        maxPiece_ = std::max(maxPiece_, n);
        pieces_.push_back({j, s, n});
        s += n;
      }
    }
    total_ = 0;
    for (const OutputSpec& o : plan_.outputs) total_ += o.headBytes;
    // Small tensors are batched: one task holds pieces worth about one block of work.
    size_t first = 0;
    uint64_t acc = 0;
    for (size_t i = 0; i < pieces_.size(); ++i) {
      if (localJob_[pieces_[i].job]) {
        i = addLocalTask(first, i);
        first = i + 1;
        acc = 0;
        continue;
      }
      uint64_t w = pieceWeight(plan_.jobs[pieces_[i].job], pieces_[i].count);
      total_ += w;
      acc += w;
      if (acc >= plan_.blockBytes || i + 1 == pieces_.size()) {
        tasks_.push_back({first, i + 1 - first});
        first = i + 1;
        acc = 0;
      }
    }
    // Per piece only where some job asks for moments (`weightmix diff`, the moments pass): a merge of 18,867 tensors touches no
    // 72 bytes per piece of fresh memory for sums it never takes.
    if (std::any_of(plan_.jobs.begin(), plan_.jobs.end(), [](const Job& j) { return j.moments; })) pieceMoments_.resize(pieces_.size());
    pieceRows_.resize(pieces_.size());
  }

  // Della's and arcee_fusion's pieces hold whole blocks of rows (kernels/della.h, arcee_fusion.h): the block, or 1 for any other job.
  // Whole rows of every op that works within rows, della's blocks and arcee_fusion's rows, whose lengths differ on a tensor of
  // 3 or more dimensions (a batch's fused job can hold both): their lcm.
  static uint64_t rowBlock(const Job& job) {
    DellaModel unused;
    if (job.stat == JobStat::DellaL1) return decodeDellaStat(job.statParams, job.count, unused).block();
    if (job.stat == JobStat::ArceeHistogram) return decodeArceeHistogram(job.statParams, job.sources.size(), job.count).rows.rowLength;
    uint64_t rows = 1;
    for (const Dest& d : job.dests) {
      if (d.op == DestOp::Della) rows = std::lcm(rows, decodeDellaParams(d.params, job.sources.size(), job.count).rows.block());
      if (d.op == DestOp::ArceeFusion) rows = std::lcm(rows, decodeArceeParams(d.params, job.sources.size(), job.count).rowLength);
    }
    return rows;
  }

  // A tensor-local job is one task of all its pieces (after the pending ones, `first` up to `at`); returns its last piece.
  size_t addLocalTask(size_t first, size_t at) {
    if (at > first) tasks_.push_back({first, at - first});
    size_t end = at;
    for (; end < pieces_.size() && pieces_[end].job == pieces_[at].job; ++end) total_ += pieceWeight(plan_.jobs[pieces_[end].job], pieces_[end].count);
    tasks_.push_back({at, end - at, true});
    return end - 1;
  }

  // local_job.h: the tensor's sources read once into buffers of the run's local pool (bounded, given
  // back after the task), its statistics resolved from them, then its pieces merged on the CPU.
  void runLocalTask(const Task& task, TaskReads& chunkReads, AlignedBuffer& out, std::vector<const void*>& srcPtr, std::vector<Dtype>& srcType,
                    KeepBitMaps& maps) {
    const uint32_t j = pieces_[task.first].job;
    const Job& job = plan_.jobs[j];
    if (readsInChunks(j)) return runLocalTaskInChunks(task, chunkReads, out, srcPtr, srcType, maps);
    std::vector<uint64_t> sizes(maxSources_, 0);
    for (size_t s = 0; s < job.sources.size(); ++s) sizes[s] = job.count * dtypeSize(job.sources[s].dtype);
    sizes.push_back(localScratchBytes(params_[j], job.count));  // one more buffer, after the sources' slots
    TaskReads reads(maxSources_);
    reads.buffers = localBuffers_.take(sizes);
    struct GiveBack {
      LocalBuffers& pool;
      std::vector<AlignedBuffer>& buffers;
      ~GiveBack() { pool.giveBack(buffers); }
    } giveBack{localBuffers_, reads.buffers};
    if (cancel_.load() || stop_.load()) return;
    readTask(task, reads);
    // Its read can be hundreds of MiB from a cold disk, and its statistics a pass over them: not begun once cancelled.
    if (cancel_.load() || stop_.load()) return;
    for (size_t s = 0; s < job.sources.size(); ++s) {
      srcPtr[s] = reads.buffers[s].data() + reads.at[s];
      srcType[s] = job.sources[s].dtype;
    }
    maps.startJob();
    resolveLocal(sparse_[j], srcPtr.data(), srcType.data(), job.count, maps);
    resolveLocalParams(params_[j], job, srcPtr.data(), srcType.data(), maps, reads.buffers.back().data(), coefficients_);
    runTaskOnCpu(task, reads, out, srcPtr, srcType);
  }

  // A local job whose open statistics are rank cuts and L1 factors (TIES', breadcrumbs', DARE's, della's) and whose sources take
  // plan.chunkedLocalBytes or more: resolved over the tensor read in chunks into the worker's own buffers, then merged piece by
  // piece like any task, so that its sources never take fresh pool memory (on this VM a fresh page costs more than reading the
  // tensor again from the page cache: an embedding's 2 x 194 MB took 0.1-0.6 s of faults).
  bool readsInChunks(uint32_t j) const {
    // Or an sce job whose variances are computed again in each pass anyway (its sources alone fit the pool): its passes read
    // pieces of the tensor (resolveLocalSceInChunks), not the sources held whole (on the bench pair, the embedding's 583 MB).
    const bool sceAlone = opensOnlySceInChunks(params_[j]) && !isLocalJob(sparse_[j]);
    if (!sceAlone && opensMoreThanL1Factors(params_[j])) return false;
    // A della block of rows wider than a chunk (a 3-D tensor's, a long 1-D row) would be read whole into the worker's
    // buffers, outside the local budget: such a job takes the pool's budgeted buffers instead.
    if (dellaChunkUnit(params_[j].della) > localChunk()) return false;
    const Job& job = plan_.jobs[j];
    uint64_t bytes = 0;
    for (const Source& so : job.sources) bytes += job.count * dtypeSize(so.dtype);
    return bytes >= plan_.chunkedLocalBytes;
  }

  // The elements of a chunk of a local job read in chunks: a block's (a multiple of 8, as the keep bits want).
  uint64_t localChunk() const { return std::max<uint64_t>(8, plan_.blockBytes / 4 / 8 * 8); }

  void runLocalTaskInChunks(const Task& task, TaskReads& reads, AlignedBuffer& out, std::vector<const void*>& srcPtr, std::vector<Dtype>& srcType,
                            KeepBitMaps& maps) {
    const uint32_t j = pieces_[task.first].job;
    const Job& job = plan_.jobs[j];
    for (size_t s = 0; s < job.sources.size(); ++s) srcType[s] = job.sources[s].dtype;
    const uint64_t chunk = localChunk();
    ChunkReads chunks(job, inputs_, chunk);
    const auto read = [&](uint64_t start, uint64_t n) {
      // A pass over a tensor of gigabytes (an embedding) reads hundreds of chunks: a cancel (or another worker's failure) stops
      // it at the next one, as the streamed tasks stop at the next task. With another worker's failure recorded first, this
      // error is not the run's.
      if (cancel_.load() || stop_.load()) throw ExecError("Aborted", "the merge was aborted");
      chunks.read(start, n, reads, srcPtr);
      return static_cast<const void* const*>(srcPtr.data());
    };
    maps.startJob();
    if (isLocalJob(sparse_[j])) resolveLocalInChunks(sparse_[j], srcType.data(), job.count, chunk, maps, read);
    if (isLocalDella(params_[j].della)) resolveLocalDellaInChunks(params_[j].della, srcType.data(), job.count, chunk, maps, read);
    if (opensOnlySceInChunks(params_[j])) resolveLocalSceInChunks(params_[j].sce, srcType.data(), job.count, chunk, read);
    for (size_t p = task.first; p < task.first + task.count; ++p) {
      if (cancel_.load() || stop_.load()) return;
      const Task one{p, 1};
      readTask(one, reads);
      runTaskOnCpu(one, reads, out, srcPtr, srcType);
    }
  }

  void worker() {
    try {
      const uint64_t bufBytes = std::max<uint64_t>(std::max<uint64_t>(1, plan_.blockBytes / 4), maxPiece_) * 4;
      TaskReads reads(maxSources_);
      AlignedBuffer out = AlignedBuffer::hugePages(bufBytes);
      KeepBitMaps keepBits;
      std::vector<const void*> srcPtr(maxSources_);
      std::vector<Dtype> srcType(maxSources_);
      // Declared after `reads`, so that it unpins the read buffers before they are freed.
      std::unique_ptr<cuda::DeviceRun::Seat> seat;
      if (device_) seat = std::make_unique<cuda::DeviceRun::Seat>(*device_, reads);
      for (;;) {
        size_t t = next_.fetch_add(1);
        if (t >= tasks_.size() || stop_.load() || cancel_.load()) break;
        // Two waves of tasks ahead of the pool: enough to keep the disk busy, little page cache.
        if (t + prefetchDistance_ < tasks_.size()) prefetchTask(tasks_[t + prefetchDistance_]);
        if (tasks_[t].local) {
          runLocalTask(tasks_[t], reads, out, srcPtr, srcType, keepBits);
          continue;
        }
        readTask(tasks_[t], reads);
        const auto cpuShare = [&] { runTaskOnCpu(tasks_[t], reads, out, srcPtr, srcType); };
        if (seat && seat->onDevice()) {
          device_->runTask(*seat, tasks_[t], reads, cpuShare, assemblers_);
        } else {
          cpuShare();
        }
      }
    } catch (...) {
      fail(currentExecError());
    }
  }

  // The run's first error is the one it throws; every worker stops at its next task.
  void fail(std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = error;
    stop_.store(true);
  }

  bool goesStraightIntoBlock(const Piece& piece, const Job& job) const { return wm::goesStraightIntoBlock(piece, job, plan_.blockBytes); }

  void readTask(const Task& task, TaskReads& reads) { wm::readTask(plan_, pieces_, inputs_, maxSources_, task, reads); }
  void prefetchTask(const Task& task) { wm::prefetchTask(plan_, pieces_, inputs_, maxSources_, task); }

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
    for (size_t di = 0; di < job.dests.size(); ++di) {
      const Dest& d = destToRun(params_[piece.job].moments, job, di);
      if (device_ && !localJob_[piece.job] && device_->destOnDevice(job, d, piece.job)) continue;  // DeviceRun::runTask produces it
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
          sparseMerge(srcPtr.data(), srcType.data(), sparse_[piece.job][di], job.count,
                      piece.start, n, target, d.dtype);
          break;
        case DestOp::Nearswap:
          nearswapMerge(srcPtr.data(), srcType.data(), decodeNearswapParams(d.params, job.sources.size()), n, target, d.dtype);
          break;
        case DestOp::Ram:
          ramMerge(srcPtr.data(), srcType.data(), params_[piece.job].ram[di], n, target, d.dtype);
          break;
        case DestOp::RowLinear:
          rowLinearMerge(srcPtr.data(), srcType.data(), decodeRowLinearParams(d.params, job.sources.size(), job.count), piece.start, n, target, d.dtype);
          break;
        case DestOp::Della:
          dellaMerge(srcPtr.data(), srcType.data(), params_[piece.job].della[di], job.count, piece.start, n, target, d.dtype);
          break;
        case DestOp::ArceeFusion:
          arceeMerge(srcPtr.data(), srcType.data(), params_[piece.job].arcee[di], piece.start, n, target, d.dtype);
          break;
        case DestOp::Sce:
          sceMerge(srcPtr.data(), srcType.data(), params_[piece.job].sce[di], job.count, piece.start, n, target, d.dtype);
          break;
      }
      if (inPlace != nullptr) assembler.commit(at, n * es);
      else assembler.put(at, static_cast<const uint8_t*>(bytes), n * es);
    }
    done_.fetch_add(pieceWeight(job, n));
  }

  // The pieces of a task that this thread computes (on a device seat: all but the device dests).
  void runTaskOnCpu(const Task& task, const TaskReads& reads, AlignedBuffer& out, std::vector<const void*>& srcPtr,
                    std::vector<Dtype>& srcType) {
    for (size_t p = task.first; p < task.first + task.count; ++p) {
      if (cancel_.load() || stop_.load()) break;
      runPiece(p, reads, task.first, out, srcPtr, srcType);
    }
  }

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

  // Decoded once: the parameters of every dest (job_params.h), and zeroed counters for statistics jobs.
  void prepareSparse() {
    sparse_.resize(plan_.jobs.size());
    statCounts_.resize(plan_.jobs.size());
    rowKl_.resize(plan_.jobs.size());
    params_.reserve(plan_.jobs.size());
    localJob_.reserve(plan_.jobs.size());
    for (size_t j = 0; j < plan_.jobs.size(); ++j) {
      const Job& job = plan_.jobs[j];
      sparse_[j] = perDest<SparseParams>(job, DestOp::Sparse, [&](const Dest& d) { return decodeSparseParams(d.params, job.sources.size()); });
      params_.push_back(decodeJobParams(job));
      localJob_.push_back(isLocalJob(sparse_[j]) || hasOpenStatistics(params_.back()));
      if (job.stat == JobStat::ArceeHistogram) {  // the first pass returns its row KLs (kernels/arcee_fusion.h)
        const ArceeStat s = decodeArceeHistogram(job.statParams, job.sources.size(), job.count);
        if (!s.rows.rowKl) rowKl_[j].assign(job.count / s.rows.rowLength, 0.0);
      }
      size_t counters = job.stat == JobStat::Histogram ? (size_t{1} << static_cast<uint32_t>(job.statParams[2]))
                        : job.stat == JobStat::L1 || job.stat == JobStat::DellaL1 ? 2 * kL1Buckets
                        : job.stat == JobStat::RamCounts ? job.statParams.size() - 2
                        : job.stat == JobStat::SceHistogram ? (size_t{1} << sceHistogramBits(job.statParams)) + 1
                        : job.stat == JobStat::ArceeHistogram ? size_t{3} << static_cast<uint32_t>(job.statParams[4])
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
    // Per thread, kept: no allocation per piece.
    thread_local std::vector<uint64_t> local;
    if (job.stat == JobStat::SceSumSquares) {  // f64 sums, as RowMoments'
      const SceParams p = decodeSceSumSquares(sp, job.sources.size(), job.count);
      std::vector<double>& sums = pieceRows_[static_cast<size_t>(&piece - pieces_.data())];
      sums.assign(p.sources.size(), 0.0);
      sceSumSquares(srcPtr.data(), srcType.data(), p, job.count, piece.start, piece.count, sums.data());
      return;
    }
    if (job.stat == JobStat::RowMoments) {  // f64 sums: kept per piece and added in piece order (collectStats)
      const Groups g = decodeGroups(sp, job.count);
      std::vector<double>& rows = pieceRows_[static_cast<size_t>(&piece - pieces_.data())];
      rows.assign(4 * g.span(piece.start, piece.count), 0.0);
      rowMoments(srcPtr[0], srcType[0], srcPtr[1], srcType[1], g, piece.start, piece.count, rows.data());
      return;
    }
    if (job.stat == JobStat::RamCounts) {
      const RamParams p = decodeRamParams(sp, job.sources.size());
      local.assign(2 * p.sources.size(), 0);
      ramCounts(srcPtr.data(), srcType.data(), p, piece.count, local.data(), local.data() + p.sources.size());
    } else if (job.stat == JobStat::ArceeHistogram) {
      const ArceeStat s = decodeArceeHistogram(sp, job.sources.size(), job.count);
      local.assign(size_t{3} << s.bits, 0);
      arceeHistogram(srcPtr.data(), srcType.data(), s, piece.start, piece.count, local.data(), rowKl_[piece.job].empty() ? nullptr : rowKl_[piece.job].data());
    } else if (job.stat == JobStat::SceHistogram) {
      const SceStat s = decodeSceHistogram(sp, job.sources.size(), job.count);
      local.assign((size_t{1} << s.digit.bits) + 1, 0);
      sceHistogram(srcPtr.data(), srcType.data(), s, job.count, piece.start, piece.count, local.data());
    } else if (job.stat == JobStat::DellaL1) {
      DellaModel m;
      const DellaRows rows = decodeDellaStat(sp, job.count, m);
      local.assign(2 * kL1Buckets, 0);
      dellaL1Buckets(srcPtr[0], srcType[0], srcPtr[1], srcType[1], rows, m, piece.start, piece.count, local.data(), local.data() + kL1Buckets);
    } else if (job.stat == JobStat::Histogram) {
      const HistogramDigit d = decodeHistogramDigit(sp, 0, job.count);
      local.assign(size_t{1} << d.bits, 0);
      radixHistogram(srcPtr[0], srcType[0], srcPtr[1], srcType[1], d.indexBits, d.keyedCount(job.count), d.keyedStart(piece.start), piece.count,
                     d.shift, d.bits, d.prefix, local.data());
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
    std::vector<std::vector<double>> rows(plan_.jobs.size());  // RowMoments: 4 sums per row, pieces added in order
    for (size_t p = 0; p < pieces_.size(); ++p) {
      const Job& job = plan_.jobs[pieces_[p].job];
      if (job.stat == JobStat::SceSumSquares) {
        std::vector<double>& r = rows[pieces_[p].job];
        r.resize(pieceRows_[p].size(), 0.0);
        for (size_t k = 0; k < r.size(); ++k) r[k] += pieceRows_[p][k];
        continue;
      }
      if (job.stat != JobStat::RowMoments || pieces_[p].count == 0) continue;
      std::vector<double>& r = rows[pieces_[p].job];
      const Groups g = decodeGroups(job.statParams, job.count);
      r.resize(4 * g.count(job.count), 0.0);
      const size_t at = 4 * g.first(pieces_[p].start);
      for (size_t k = 0; k < pieceRows_[p].size(); ++k) r[at + k] += pieceRows_[p][k];
    }
    for (size_t j = 0; j < plan_.jobs.size(); ++j) {
      const Job& job = plan_.jobs[j];
      if (job.stat == JobStat::Histogram) {
        for (size_t c = 0; c < (size_t{1} << static_cast<uint32_t>(job.statParams[2])); ++c) out.push_back(static_cast<double>(statCounts_[j][c].load()));
      } else if (job.stat == JobStat::L1 || job.stat == JobStat::DellaL1) {
        uint64_t b[2 * kL1Buckets];
        for (size_t c = 0; c < 2 * kL1Buckets; ++c) b[c] = statCounts_[j][c].load();
        out.push_back(l1Total(b));
        out.push_back(l1Total(b + kL1Buckets));
      } else if (job.stat == JobStat::RamCounts) {
        for (size_t c = 0; c < job.statParams.size() - 2; ++c) out.push_back(static_cast<double>(statCounts_[j][c].load()));
      } else if (job.stat == JobStat::ArceeHistogram) {
        for (size_t c = 0; c < (size_t{3} << static_cast<uint32_t>(job.statParams[4])); ++c) out.push_back(static_cast<double>(statCounts_[j][c].load()));
        out.insert(out.end(), rowKl_[j].begin(), rowKl_[j].end());
      } else if (job.stat == JobStat::SceHistogram) {
        for (size_t c = 0; c <= (size_t{1} << sceHistogramBits(job.statParams)); ++c) out.push_back(static_cast<double>(statCounts_[j][c].load()));
      } else if (job.stat == JobStat::RowMoments || job.stat == JobStat::SceSumSquares) {
        out.insert(out.end(), rows[j].begin(), rows[j].end());
      }
    }
    return out;
  }

  std::vector<Moments> reduceMoments() const {
    if (pieceMoments_.empty()) return {};  // no job asked for moments: all zero (ExecResult)
    // Summed in piece order: the same totals for any thread count.
    std::vector<Moments> perJob(plan_.jobs.size());
    for (size_t p = 0; p < pieces_.size(); ++p) {
      if (!plan_.jobs[pieces_[p].job].moments) continue;
      perJob[pieces_[p].job].add(pieceMoments_[p]);
    }
    return perJob;
  }

  const Plan& plan_;
  const std::atomic<bool>& cancel_;
  std::vector<std::unique_ptr<InputFile>> inputs_;
  std::vector<std::unique_ptr<OutputFile>> outputs_;
  // Spares for every output's blocks (declared before the assemblers, which use it until they go).
  BlockBuffers blockBuffers_{plan_.blockBytes};
  std::unique_ptr<OutputFlusher> flusher_;  // goes after the writer and the workers that hand it files, before the files
  std::unique_ptr<BlockWriter> writer_;  // goes before the files and spares it writes from
  std::vector<std::unique_ptr<BlockAssembler>> assemblers_;
  std::unique_ptr<OutputReservations> reservations_;  // destroyed before the writer and the files: its stop() frees a write waiting for a reservation
  std::vector<Piece> pieces_;
  std::vector<Task> tasks_;
  std::vector<Moments> pieceMoments_;
  std::vector<std::vector<double>> rowKl_;  // ArceeHistogram jobs without given KLs: each row's KL, written by the piece that holds the row
  std::vector<std::vector<double>> pieceRows_;                      // RowMoments jobs: each piece's row sums
  std::vector<std::vector<SparseParams>> sparse_;                   // [job][dest] (perDest); a local job's resolved by its worker
  std::vector<JobParams> params_;                                   // [job]: the other dests' (job_params.h), the same
  const CoefficientsFn& coefficients_;
  const ReservedFn& reserved_;
  std::vector<bool> localJob_;                                      // [job]: local_job.h
  LocalBuffers localBuffers_{kLocalBudgetBytes};
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> statCounts_;  // [job][counter]
  size_t maxSources_ = 0;
  uint64_t maxPiece_ = 0;  // elements of the largest piece (a della row block may exceed a block's worth)
  std::unique_ptr<cuda::DeviceRun> device_;  // a CUDA plan's backend (reads the members above)
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

ExecResult executePlan(const Plan& plan, const ProgressFn& progress, const std::atomic<bool>& cancel, const CoefficientsFn& coefficients,
                       const ReservedFn& reserved) {
  Run run(plan, cancel, coefficients, reserved);
  return run.go(progress);
}

}  // namespace wm
