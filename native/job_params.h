// The parameters of a job's della, sce, ram and arcee_fusion dests and its linear dests' open moments, decoded once
// before the run (the per-piece merge reads them), and those a tensor-local job leaves open resolved by
// its worker from its sources in memory (local_job.h). The sparse dests' stay beside them in the
// executor, which the CUDA run also reads.
#pragma once
#include <cstdint>
#include <vector>

#include "local_arcee.h"
#include "local_job.h"
#include "local_moments.h"
#include "plan.h"
#include "kernels/arcee_fusion.h"
#include "kernels/della.h"
#include "kernels/elementwise.h"
#include "kernels/sce.h"

namespace wm {

struct JobParams {
  // [dest]: a default value where the dest has another op; empty where no dest has the op (perDest).
  std::vector<DellaParams> della;
  std::vector<SceParams> sce;
  std::vector<RamParams> ram;
  std::vector<ArceeParams> arcee;
  std::vector<OpenMoments> moments;  // [dest], or empty where no dest is open (local_moments.h)
};

// decode(dest) for the dests of `op` and T{} for the others, [dest]; empty where no dest has `op`: the jobs of an 18,867-tensor
// interpolation then allocate no params of other ops, which only their own dests' index reads.
template <class T, class Decode>
std::vector<T> perDest(const Job& job, DestOp op, Decode decode) {
  std::vector<T> out;
  bool any = false;
  for (const Dest& d : job.dests) any = any || d.op == op;
  if (!any) return out;
  out.reserve(job.dests.size());
  for (const Dest& d : job.dests) out.push_back(d.op == op ? decode(d) : T{});
  return out;
}

// Throws std::invalid_argument where a dest's params are malformed.
JobParams decodeJobParams(const Job& job);

// Whether some dest leaves a statistic open (della's L1 factors, sce's cut and weights, ramplus_tl's λ, arcee_fusion's threshold, a linear dest's moments).
bool hasOpenStatistics(const JobParams& p);

// Whether some dest leaves a statistic open other than della's L1 factors (those a worker can sum over the tensor read in chunks).
bool opensMoreThanL1Factors(const JobParams& p);
// Whether the job's only open statistics are sce dests that local_sce.h's resolveLocalSceInChunks resolves from the tensor read in chunks.
bool opensOnlySceInChunks(const JobParams& p);

// The scratch bytes resolveLocalParams needs beside the sources (sce's variance bits, arcee_fusion's row KLs and keys).
uint64_t localScratchBytes(const JobParams& p, uint64_t count);

// Resolves every open statistic from the sources in memory (srcs[s]: element 0 of source s); `scratch`
// holds localScratchBytes(p, job.count) bytes and `maps` the keep bits, both read by the merge afterwards;
// `coefficients` answers open moments.
void resolveLocalParams(JobParams& p, const Job& job, const void* const* srcs, const Dtype* types, KeepBitMaps& maps, uint8_t* scratch,
                        const CoefficientsFn& coefficients);

}  // namespace wm
