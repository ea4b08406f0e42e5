// Tensor-local jobs: a job whose statistics come from the tensor itself (a sparse dest with open
// cuts or rescale factors, kernels/sparsify.h's SparseOpen) runs as one task on one worker, which
// reads all of the tensor's sources into memory once, resolves the statistics there and then merges
// and writes it, instead of the planner's statistics passes re-reading the files (the streaming
// fallback, lib/recipes/sparsify.ts, kept for tensors above the budget). A run holds at most
// kLocalBudgetBytes of such source bytes at once (LocalBuffers); the planner only makes a job local
// when its sources fit in 512 MiB (lib/recipes/sparsify.ts's localStatistics.maxTensorBytes).
//
// Later whole-tensor or per-row statistics (per-row ranks, variance top-k, quantiles, filter-wise
// norms) plug in here: their open parameters are resolved by resolveLocal from the same in-memory sources.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "io.h"
#include "kernels/della.h"
#include "kernels/sparsify.h"
#include "plan.h"

namespace wm {

constexpr uint64_t kLocalBudgetBytes = uint64_t{768} << 20;

// The read buffers of local jobs, shared by the run's workers: at most kLocalBudgetBytes allocated at
// once, in use or spare. Spares are reused (their pages stay faulted in: fresh ones cost a page
// fault and zeroing per 4 KiB, on tmpfs-speed inputs as much as the read) and freed to make room.
class LocalBuffers {
 public:
  explicit LocalBuffers(uint64_t budget) : budget_(budget) {}
  // One buffer of at least sizes[i] bytes each (0: none), once the budget allows it (a request over
  // the whole budget waits until no other is in use).
  std::vector<AlignedBuffer> take(const std::vector<uint64_t>& sizes);
  void giveBack(std::vector<AlignedBuffer>& buffers);

 private:
  uint64_t budget_;
  uint64_t inUse_ = 0, spareBytes_ = 0;
  std::vector<AlignedBuffer> spare_;
  std::mutex mutex_;
  std::condition_variable cv_;
};

// Whether any dest of the job has statistics left to resolve.
bool isLocalJob(const std::vector<SparseParams>& destParams);

// One worker's keep-bit maps (kernels/sparsify.h's SparseModel::keepBits, della.h's DellaModel::keepBits),
// kept from tensor to tensor: fresh pages cost a fault each. `startJob` before each local job; each model
// that keeps its mask as bits then takes the next map (keepBitsBytes(count) bytes, not zeroed: the mask's
// pass writes every bit the merge reads). On huge pages: a map outgrown by a larger tensor is replaced, and
// a vector's zero-filled regrowth faulted ~3,000 4 KiB pages in a della merge of the dense bench pair.
class KeepBitMaps {
 public:
  void startJob() { used_ = 0; }
  uint8_t* next(uint64_t count);

 private:
  std::vector<AlignedBuffer> maps_;
  size_t used_ = 0;
};

// Resolves every open statistic of the job's dests from its sources in memory (srcs[s]: element 0 of
// source s). A model with an open L1 factor and a DARE mask also gets its keep rule as bits in `maps`
// (computed for the L1 sums anyway), which the merge then reads instead of hashing every element
// again; they stay valid until the maps' next job.
void resolveLocal(std::vector<SparseParams>& destParams, const void* const* srcs, const Dtype* types, uint64_t count, KeepBitMaps& maps);

// resolveLocal's cuts, L1 factors and keep bits (the same bytes) from the tensor read in consecutive chunks of `chunk` elements
// (a multiple of 8) instead of held whole (Run's chunked local tasks, executor.cc): the cuts by rankCutsByHistogram's passes
// (histogram_cuts.h), two or three reads of the tensor, then resolveLocalL1InChunks.
void resolveLocalInChunks(std::vector<SparseParams>& destParams, const Dtype* types, uint64_t count, uint64_t chunk, KeepBitMaps& maps,
                          const std::function<const void* const*(uint64_t start, uint64_t n)>& read);
// resolveLocal's L1 factors and keep bits (the same bytes) from the tensor read in consecutive chunks of `chunk` elements
// (a multiple of 8, or the whole tensor): read(start, n) returns the sources at element start, n elements each, valid until
// the next call. resolveLocal calls it with the tensor in memory as one chunk.
void resolveLocalL1InChunks(std::vector<SparseParams>& destParams, const Dtype* types, uint64_t count, uint64_t chunk, KeepBitMaps& maps,
                            const std::function<const void* const*(uint64_t start, uint64_t n)>& read);

// della (kernels/della.h): whether a dest leaves an L1 factor open, and those factors resolved from the
// sources in memory, each model's MAGPRUNE mask kept as bits in `maps` for the merge (valid as above).
bool isLocalDella(const std::vector<DellaParams>& destParams);
void resolveLocalDella(std::vector<DellaParams>& destParams, const void* const* srcs, const Dtype* types, uint64_t count, KeepBitMaps& maps);
// The least run of elements resolveLocalDellaInChunks reads at once: whole blocks of rows of every della dest (the job's
// other dests rank nothing) that start on a byte of keep bits, i.e. lcm(block, 8).
uint64_t dellaChunkUnit(const std::vector<DellaParams>& destParams);
// The same from the tensor read in consecutive chunks of whole units (dellaChunkUnit), about `chunk` elements each (read as
// for resolveLocalL1InChunks).
void resolveLocalDellaInChunks(std::vector<DellaParams>& destParams, const Dtype* types, uint64_t count, uint64_t chunk, KeepBitMaps& maps,
                               const std::function<const void* const*(uint64_t start, uint64_t n)>& read);

}  // namespace wm
