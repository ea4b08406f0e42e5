// SCE as a tensor-local job (local_job.h): a dest whose statistics are left open (kernels/sce.h's
// SceParams::open) gets them from the tensor its worker holds in memory, instead of the planner's
// passes (lib/recipes/sce-statistics.ts: up to five radix passes over the variance keys, then the sums
// of squares, each re-reading the files and computing every variance again). The variances are
// computed once, into scratch memory (4 bytes per element, from the run's local pool), which the cut's
// window pass and the sums of squares then read; the sums' pass writes the keep bits over them (SceParams::keepMap),
// which the merge reads. The same cut set, sums and weights as the
// streaming passes: test/tensor-local-sce.test.ts compares the bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/sce.h"

namespace wm {

// Whether any sce dest of the job has statistics left to resolve.
bool isLocalSce(const std::vector<SceParams>& dests);

// The scratch bytes resolveLocalSce needs: the variance bits of every open dest that selects (0 < select_topk < 1).
uint64_t localSceScratchBytes(const std::vector<SceParams>& dests, uint64_t count);

// Resolves the open dests' cut and weights from their sources in memory (srcs[s]: element 0 of source s);
// `scratch` holds localSceScratchBytes(dests, count) bytes and must outlive the merge of the job's pieces,
// which reads the keep bits from it (SceParams::keepMap).
void resolveLocalSce(std::vector<SceParams>& dests, const void* const* srcs, const Dtype* types, uint64_t count, uint8_t* scratch);

// Whether the job's open dests all compute their variances again in each pass (SceParams::recomputeVariances: the sources alone fit
// the pool) with one piece length: then resolveLocalSceInChunks resolves them from the tensor read a piece at a time, holding no
// buffer for the whole tensor (the executor's chunked local jobs: fresh memory costs more than reading again, local_job.h).
bool sceResolvesInChunks(const std::vector<SceParams>& dests);

// resolveLocalSce for such dests, with the sources read in order by read(start, n): element `start` of each source, valid for n
// elements, n at most `chunk` rounded up to 4,096 (the worker's buffers, not the pool's). Three passes (the cut's two histograms,
// the sums of squares piece by piece with sceSumSquares, the streaming pass's own step), the same cut and weights; the merge then
// computes the variances again as it goes.
void resolveLocalSceInChunks(std::vector<SceParams>& dests, const Dtype* types, uint64_t count, uint64_t chunk,
                             const std::function<const void* const*(uint64_t start, uint64_t n)>& read);

// The cut that keeps exactly the top trunc(nonzero * selectTopk) rank keys (kernels/sce.h) of the variance
// bits bits[0..count) (nonzero: the elements whose bits are not 0); kRankKeyNone when that is none.
uint64_t sceCutOfBits(const uint32_t* bits, uint64_t count, double selectTopk);
// sceCutOfBits where the zeros among the bits are counted already, for 0 < selectTopk < 1 (then k < count, and the window's cut is
// sceCutOfBits's; at k >= count the two differ): the window pass over them (kernels/sparse_select.h's rankCutsWindowedOfBits, the same
// keys), the histogram passes of sceCutOfBits where the window does not answer.
uint64_t sceCutOfStoredBits(const uint32_t* bits, uint64_t count, uint64_t zeros, double selectTopk);

}  // namespace wm
